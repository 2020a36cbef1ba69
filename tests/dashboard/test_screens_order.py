"""Issue 18, on the server: the one alert order (unacknowledged, then severity, then
newest) in GET /api/v1/alerts and on the screens' lists; allowed_actions that match
the caller; CSRF refusals and the console's mute audited."""

from __future__ import annotations

import json
import re
import sqlite3
import time

from data import audit
from data.alert_store import SYSTEM, queue_key
from data.auth import create_token, create_user
from dashboard.pages import dispatch, layers
from tests.dashboard import webkit


def _five_alerts(ctx) -> list[int]:
    """Acknowledged critical alerts (old and new) and open ones: the open ones must come first."""
    now = time.time()
    old_acked = webkit.open_alert(ctx, sensor_id="S1", at=now - 300)
    new_acked = webkit.open_alert(ctx, "sensor_fault", sensor_id="S2", at=now - 100)
    for a in (old_acked, new_acked):
        ctx.alerts.act(a, "ack", SYSTEM)
    open_warning = webkit.open_alert(ctx, "sensor_offline", sensor_id="S1", severity="warning", at=now - 200)
    open_critical_old = webkit.open_alert(ctx, "sensor_fault", sensor_id="S1", at=now - 400)
    open_critical_new = webkit.open_alert(ctx, sensor_id="S2", at=now - 50)
    return [open_critical_new, open_critical_old, open_warning, new_acked, old_acked]


def test_the_api_lists_unacknowledged_first_then_severity_then_newest(web, client_as):
    ctx, _server, _app, _users = web
    expected = _five_alerts(ctx)
    got = [a["id"] for a in client_as("dispatcher").get("/api/v1/alerts?state=open").get_json()]
    assert got == expected
    # A limit keeps the top of that order, not the newest ids.
    got = [a["id"] for a in client_as("dispatcher").get("/api/v1/alerts?state=open&limit=2").get_json()]
    assert got == expected[:2]
    # The screens sort with the same key.
    rows = ctx.alerts.list(state="open")
    assert sorted(rows, key=queue_key) == rows


def test_the_dispatcher_queue_shows_a_new_critical_alarm_above_acknowledged_ones(web):
    ctx, server, _app, users = web
    expected = _five_alerts(ctx)
    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_tick(1, 0, None, {})
    html = out["queue"]
    rows = [html.index(f'id="queue-row-{a}"') for a in expected if f'id="queue-row-{a}"' in html]
    assert len(rows) == len(expected) and rows == sorted(rows)
    # Each row carries its place in the one order, which sorts as the rows are drawn:
    # a pushed alarm's row goes in by it (assets/anjian.js, showNewRows).
    orders = re.findall(r'id="queue-row-\d+" data-order="(\d+)"', html)
    assert len(orders) == len(expected) and orders == sorted(orders) and len(set(orders)) == len(orders)
    with webkit.as_user(server, users["wall"]):
        from dashboard.pages import wall

        items = wall.side_list(ctx.alerts.list(state="open"), ctx.registry(), wall.city(), "zh-CN")
    assert [i.to_plotly_json()["props"]["data-order"] for i in items if "data-order" in i.to_plotly_json()["props"]] \
        == orders[:wall.SIDE_ITEMS]
    # The ticker too (a tour found it by last heard, its first-seen times out of order).
    with webkit.as_user(server, users["wall"]):
        reg = ctx.registry()
        alarms = sorted(ctx.alerts.list(state="open"), key=lambda a: a["id"])  # any order in
        line = [layers.alert_line(a, reg, wall.city(), "zh-CN") for a in ctx.alerts.list(state="open")]
        spans = wall.ticker(alarms, reg, wall.city(), "zh-CN")
    assert [x.children for x in spans[:len(line)]] == line
    # The banner flashes for the two critical alarms nobody acknowledged; the sound store names them.
    assert "aj-flash" in out["banner_class"]
    assert out["alarm"] == {"ids": expected[:2]}


def test_a_dispatched_gas_alarm_stays_in_the_queue_under_a_wave_of_notices(web):
    """The tour: unacknowledged notices (inspectors offline) sort above an acknowledged gas
    alarm; past the queue's 50 rows they pushed it out, and nothing else showed it."""
    ctx, server, _app, users = web
    now = time.time()
    gas = webkit.open_alert(ctx, sensor_id="S1", at=now - 900)
    ctx.alerts.act(gas, "ack", SYSTEM)
    notices = [webkit.open_alert(ctx, "inspector_offline", inspector_id="I1", severity="info", lel=None,
                                 at=now - k) for k in range(dispatch.QUEUE_MAX + 10)]
    with webkit.as_user(server, users["dispatcher"]):
        html = dispatch.dispatch_tick(1, 0, None, {})["queue"]
        drawn = [int(m) for m in re.findall(r'id="queue-row-(\d+)"', html)]
        assert drawn[:dispatch.QUEUE_MAX] == notices[:dispatch.QUEUE_MAX]  # the one order, first
        assert drawn[dispatch.QUEUE_MAX:] == [gas]  # and the gas alarm after them, not lost
        assert "另有 10 条" in html  # the notices not drawn are counted
        # The selected alert is drawn too, wherever it sorts.
        html = dispatch.dispatch_tick(2, 0, notices[-1], {})["queue"]
        assert f'id="queue-row-{notices[-1]}"' in html and "另有 9 条" in html


def test_allowed_actions_follow_the_callers_role_and_area(web, client_as):
    ctx, server, _app, _users = web
    in_g1 = webkit.open_alert(ctx, sensor_id="S1")
    create_user(ctx.engine, "off3", webkit.PASSWORD, "officer", streets=["ST1"], grids=["G1"])  # no inspector
    no_inspector = server.test_client()
    assert webkit.login(no_inspector, "off3").status_code == 302

    def actions(role):
        c = no_inspector if role == "officer3" else client_as(role)
        rows = c.get("/api/v1/alerts?state=open").get_json()
        return next((a["allowed_actions"] for a in rows if a["id"] == in_g1), None)

    assert actions("wall") == []
    assert {"ack", "assign"} <= set(actions("dispatcher"))
    assert {"ack", "assign"} <= set(actions("officer"))
    assert "close" not in actions("officer")
    assert actions("officer2") is None  # not in their area: not listed at all
    assert "assign" not in actions("officer3") and "ack" in actions("officer3")
    assert client_as("wall").get(f"/api/v1/alerts/{in_g1}").get_json()["allowed_actions"] == []
    # Sent to someone else: arrival is not the officer's to report, through the API either.
    ctx.alerts.act(in_g1, "assign", _users["dispatcher"], assignee_id="I2")
    assert "arrive" in actions("dispatcher") and "arrive" not in actions("officer")
    off = client_as("officer")
    refused = off.post(f"/api/v1/alerts/{in_g1}/arrive", json={}, headers={webkit.CSRF_HEADER: webkit.csrf_of(off)})
    assert refused.status_code == 403, refused.get_json()
    assert ctx.alerts.get(in_g1)["state"] == "dispatched"
    # Sent to the officer's own inspector: theirs to report.
    ctx.alerts.act(in_g1, "assign", _users["dispatcher"], assignee_id="I1")
    assert "arrive" in actions("officer")
    done = off.post(f"/api/v1/alerts/{in_g1}/arrive", json={}, headers={webkit.CSRF_HEADER: webkit.csrf_of(off)})
    assert done.status_code == 200 and ctx.alerts.get(in_g1)["state"] == "on_scene", done.get_json()


def test_a_csrf_refusal_is_audited_like_a_role_refusal(web, client_as):
    ctx, server, _app, _users = web
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    key = webkit.key_of(server, "dispatch", "dispatch_act")
    body = webkit.callback_body(key, [{"id": "dispatch-command", "property": "data",
                                       "value": {"type": "alert-action", "alert": alert_id, "action": "ack"}}],
                                [{"id": "dispatch-action-done", "property": "data", "value": 0}])
    before = len(audit.entries(ctx.engine, action="access_denied"))
    resp = webkit.call_callback(client_as("dispatcher"), body, csrf="forged")
    assert resp.status_code == 403
    denied = audit.entries(ctx.engine, action="access_denied")
    assert len(denied) == before + 1 and denied[-1].actor == "disp1"
    assert json.loads(denied[-1].detail)["reason"] == "csrf"
    assert audit.verify(ctx.engine) is None


def test_an_api_state_change_with_the_login_cookie_alone_is_refused_and_audited(web, client_as):
    """What the tour did: a form on another port of the same host (same site, so the
    Lax session cookie goes along) POSTed an acknowledgement, and it was accepted."""
    ctx, server, _app, _users = web
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    c = server.test_client()
    assert webkit.login(c, "disp1").status_code == 302
    before = len(audit.entries(ctx.engine, action="access_denied"))
    forged = c.post(f"/api/v1/alerts/{alert_id}/ack", data={"note": "x"},
                    headers={"Origin": "http://127.0.0.1:9999", "Referer": "http://127.0.0.1:9999/evil.html"})
    assert forged.status_code == 403 and forged.get_json()["error"] == "csrf"
    wrong = c.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers={webkit.CSRF_HEADER: "guessed"})
    assert wrong.status_code == 403 and wrong.get_json()["error"] == "csrf"
    assert c.get(f"/api/v1/alerts/{alert_id}").get_json()["state"] == "open"  # nothing changed
    denied = audit.entries(ctx.engine, action="access_denied")[before:]
    assert [(e.actor, e.target, json.loads(e.detail)["reason"]) for e in denied] == \
        [("disp1", f"/api/v1/alerts/{alert_id}/ack", "csrf")] * 2
    assert json.loads(denied[0].detail)["origin"] == "http://127.0.0.1:9999"
    # Our own page sends the header it reads from the cookie, and a program its token.
    ok = c.post(f"/api/v1/alerts/{alert_id}/ack", json={}, headers={webkit.CSRF_HEADER: webkit.csrf_of(c)})
    assert ok.status_code == 200 and ok.get_json()["state"] == "acknowledged"
    token, _ = create_token(ctx.engine, "dispatcher", "disp1")
    r = server.test_client().post(f"/api/v1/alerts/{alert_id}/resolve", json={"outcome": "false_alarm"},
                                  headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.get_json()
    assert audit.verify(ctx.engine) is None


def test_muting_the_console_is_one_click_and_audited(web):
    ctx, server, _app, users = web
    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_mute(1, False)
        assert out["muted"] is True and out["label"] == "取消静音"
        assert dispatch.dispatch_mute(2, True)["muted"] is False
    assert [e.actor for e in audit.entries(ctx.engine, action="alarm_sound_muted")] == ["disp1"]
    assert [e.actor for e in audit.entries(ctx.engine, action="alarm_sound_unmuted")] == ["disp1"]


def _walk(arrivals: dict, seconds: int, dwell=20.0, overview=15.0, hold_max=120.0, acked=None):
    """The wall's takeover a second at a time, as its tick runs it: ``arrivals`` second ->
    new alarm ids (most urgent first among the waiting: the newest first, as the wall
    sorts critical alarms); ``acked`` second -> ids acknowledged. Returns what was shown
    each second (an id, or None for the overview)."""
    from dashboard.pages.wall import takeover_step

    waiting, st, shown = [], None, []
    for now in range(seconds):
        waiting = list(arrivals.get(now, [])) + waiting
        waiting = [i for i in waiting if i not in (acked or {}).get(now, [])]
        st, cur, _next = takeover_step(st, waiting, float(now), dwell, overview, hold_max)
        shown.append(cur)
    return shown


def test_the_takeover_schedule_cycles_the_alarms_then_shows_the_overview():
    shown = _walk({0: ["b", "a"]}, 120)
    assert shown[0] == "b" and shown[19] == "b" and shown[20] == "a" and shown[39] == "a"
    assert shown[40] is None and shown[54] is None  # the overview for 15 s
    assert shown[55] == "b" and shown[75] == "a" and shown[95] is None  # the next round
    assert _walk({0: ["a"]}, 600, overview=0.0)[599] == "a"  # one alarm, no overview: it stays
    assert _walk({}, 10) == [None] * 10
    # Acknowledged while shown: the next one at once.
    shown = _walk({0: ["b", "a"]}, 30, acked={5: ["b"]})
    assert shown[4] == "b" and shown[5] == "a"


def test_alarms_arriving_every_forty_seconds_still_let_the_overview_come_and_every_alarm_be_shown():
    """A critical alarm every 40 s, none acknowledged, 16 waiting at the start (the second
    tour: 16 -> 43 in 12 minutes, the overview never came and alarms 3 to 43 were never
    shown, because each new one restarted the round)."""
    arrivals = {0: [f"s{k}" for k in range(16)]}
    for t in range(40, 720, 40):
        arrivals[t] = [f"n{t}"]
    shown = _walk(arrivals, 720)
    # The overview at least every hold_max + overview seconds.
    starts = [t for t in range(1, 720) if shown[t] is None and shown[t - 1] is not None]
    assert starts and starts[0] <= 121, starts
    assert all(b - a <= 120 + 15 + 1 for a, b in zip(starts, starts[1:])), starts
    assert all(all(shown[t] is None for t in range(s, min(s + 15, 720))) for s in starts)
    # Each new alarm shown the second it came, or right after an overview.
    for t in range(40, 720, 40):
        first = next(k for k in range(t, 720) if shown[k] == f"n{t}")
        assert first - t <= 15, (t, first)
    # And the waiting ones are not starved: every one of the 16 is shown.
    assert {f"s{k}" for k in range(16)} <= set(shown), sorted(set(shown) - {None})


def test_a_new_alarm_is_shown_at_once_while_the_wall_has_not_held_alarms_long():
    shown = _walk({0: ["a"], 10: ["b"]}, 60)
    assert shown[9] == "a" and shown[10] == "b"  # at once
    assert shown[29] == "b" and shown[30] is None  # both shown: the overview

def test_alarms_that_come_in_bursts_are_shown_in_their_order_each_for_its_turn():
    """Five alarms in three bursts, a second apart (a leak sets off several detectors): each
    burst's newest was on the wall for a second and counted as shown, so the round showed
    n1, n3, n5 and the card counted 1, 3, 5 (issue 18, second tour)."""
    shown = _walk({0: ["n4", "n5"], 1: ["n2", "n3"], 2: ["n1"]}, 160)
    turns = [x for k, x in enumerate(shown) if not k or x != shown[k - 1]]
    assert turns[2:] == ["n1", "n2", "n3", "n4", "n5", None, "n1", "n2", "n3"], turns
    assert shown[2:22] == ["n1"] * 20 and shown[22:42] == ["n2"] * 20  # each a whole turn


def test_the_wall_takes_over_with_the_newest_critical_alarm_and_labels_it(web):
    from dashboard.pages import wall

    ctx, server, _app, users = web
    now = time.time()
    webkit.feed_city(ctx.engine, ctx.live, now, n_inspectors=2, visits=0, duplicates=0)
    older = webkit.open_alert(ctx, sensor_id="S2", at=now - 900)
    newer = webkit.open_alert(ctx, sensor_id="S1", at=now - 5)

    def tick(state=None, order=None):
        with webkit.as_user(server, users["wall"]):
            return webkit.wall_polls(state, order)

    out = tick()
    # The most urgent first: the newest, not the one that has held the wall for 15 minutes.
    assert out["takeover"]["id"] == str(newer)
    assert out["takeover"]["label"] == "紧急报警 1/2：深圳市龙华区老王餐饮店"
    card = json.dumps(out["card"], default=lambda c: c.to_plotly_json(), ensure_ascii=False)
    assert "第 1 / 2 条" in card
    # Past its dwell time, the wall moves on to the next one, then to the overview
    # (the schedule's clocks moved back stand in for waiting).
    dwell, overview = ctx.settings.wall_takeover_dwell_s, ctx.settings.wall_overview_s

    def after(prev, seconds):
        alerts = dict(prev["state"]["alerts"])
        alerts["take"] = {k: (v - seconds if k in ("cur_at", "hold_at", "ov_at") else v)
                          for k, v in alerts["take"].items()}
        alerts["take_next"] = 0  # due: the poll looks again
        return tick(dict(prev["state"], alerts=alerts), out["order"])

    nxt = after(out, dwell + 1)
    assert nxt["takeover"]["id"] == str(older) and nxt["takeover"]["label"].startswith("紧急报警 2/2")
    back = after(nxt, dwell)
    assert back["takeover"] is None and back["card_class"] == "aj-takeover"
    again = after(back, overview)
    assert again["takeover"]["id"] == str(newer)


def test_tiles_are_served_from_an_mbtiles_file(web, client_as, tmp_path):
    from dashboard.mapkit import tile_preset
    from tests.dashboard.mbtileskit import solid_png, write_mbtiles, xyz

    ctx, _server, _app, _users = web
    raster, vector = tmp_path / "base.mbtiles", tmp_path / "vector.mbtiles"
    write_mbtiles(raster, (22.60, 114.00, 22.65, 114.10), zooms=[12])
    write_mbtiles(vector, (22.60, 114.00, 22.65, 114.10), zooms=[12], fmt="pbf")
    saved = ctx.settings
    try:
        ctx.settings = saved.model_copy(update={"tiles": "mbtiles", "tiles_mbtiles_path": raster})
        preset = tile_preset(ctx.settings)
        assert preset.name == "mbtiles" and preset.tiles[0].url == "/tiles/{z}/{x}/{y}"
        x, y = xyz(22.62, 114.02, 12)
        c = client_as("wall")
        resp = c.get(f"/tiles/12/{x}/{y}")
        assert resp.status_code == 200 and resp.mimetype == "image/png"
        assert resp.data == solid_png((40, 90, 60))  # the XYZ row found in TMS order
        assert c.get(f"/tiles/12/{x}/{y + 40}").status_code == 404  # not in the file
        assert server_get_anonymous(web, f"/tiles/12/{x}/{y}") in (302, 401)  # a login, like every page
        ctx.settings = saved.model_copy(update={"tiles": "mbtiles", "tiles_mbtiles_path": vector})
        resp = c.get(f"/tiles/12/{x}/{y}")
        assert resp.mimetype == "application/x-protobuf" and resp.headers["Content-Encoding"] == "gzip"
        preset = tile_preset(ctx.settings)  # vector tiles: drawn by the browser (Leaflet.VectorGrid)
        assert not preset.offline and not preset.tiles and preset.vector.url == "/tiles/{z}/{x}/{y}"
        assert preset.vector.max_native_zoom == 12
        tj = c.get("/tiles/tilejson.json").get_json()  # what the browser reads to draw it
        assert tj["tiles"] == ["/tiles/{z}/{x}/{y}"] and tj["format"] == "pbf"
        assert (tj["minzoom"], tj["maxzoom"]) == (12, 12) and tj["bounds"] == [114.00, 22.60, 114.10, 22.65]
        assert [v["id"] for v in tj["vector_layers"]] == ["water", "transportation", "building"]
        assert server_get_anonymous(web, "/tiles/tilejson.json") in (302, 401)
        with sqlite3.connect(vector) as conn:  # zooms are optional metadata: then read from the tiles
            conn.execute("DELETE FROM metadata WHERE name IN ('minzoom', 'maxzoom')")
        tj = c.get("/tiles/tilejson.json").get_json()
        assert (tj["minzoom"], tj["maxzoom"]) == (12, 12)
        ctx.settings = saved.model_copy(update={"tiles": "mbtiles", "tiles_mbtiles_path": tmp_path / "none.mbtiles"})
        assert tile_preset(ctx.settings).offline
    finally:
        ctx.settings = saved


def server_get_anonymous(web, path: str) -> int:
    _ctx, server, _app, _users = web
    return server.test_client().get(path).status_code
