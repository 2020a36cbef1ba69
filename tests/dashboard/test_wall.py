"""The wall's callbacks, called as plain functions: 204 when nothing changed, a Patch
of only the inspectors that moved, KPIs that match SQL and the API, the takeover."""

from __future__ import annotations

import json
import time

import pytest
from dash import Patch, no_update
from dash.exceptions import PreventUpdate

from dashboard.mapkit import InspectorRows, inspector_columns
from dashboard.pages import layers, wall
from geo.types import Ping
from tests.dashboard import webkit


@pytest.fixture
def fed(web):
    ctx, server, _app, users = web
    now = time.time()
    info = webkit.feed_city(ctx.engine, ctx.live, now, n_inspectors=2, visits=2, duplicates=1)
    return ctx, server, users, info, now


def tick(server, principal, state=None, order=None, lang="zh-CN"):
    with webkit.as_user(server, principal, lang):
        return webkit.wall_polls(state, order)


def later(state: dict) -> dict:
    """The wall's state as the next poll after the inspector layer's interval sees it."""
    return dict(state, inspectors=dict(state["inspectors"], t=state["inspectors"]["t"] - wall.INSPECTOR_LAYER_EVERY_S))


def test_first_tick_draws_everything_then_nothing_until_something_changes(fed):
    ctx, server, users, info, _now = fed
    out = tick(server, users["wall"])
    data = out["inspectors"]
    assert [f["id"] for f in data["features"]] == sorted(info["inspectors"])
    assert out["order"] == sorted(info["inspectors"])
    assert out["on_duty"] == "2"
    # The wall's features carry no tooltip: nobody hovers on a wall, and bytes count.
    assert set(data["features"][0]["properties"]) == {"id", "c", "s"}
    state = out["state"]
    with pytest.raises(PreventUpdate):
        tick(server, users["wall"], state, out["order"])


def test_a_moved_inspector_is_sent_as_a_one_feature_patch(fed):
    ctx, server, users, info, now = fed
    first = tick(server, users["wall"])
    mover = info["inspectors"][1]
    ctx.live.apply_pings([Ping(mover, now + 1, 22.64, 114.04, msg_id="move-1")])
    out = tick(server, users["wall"], later(first["state"]), first["order"])
    patch = out["inspectors"]
    assert isinstance(patch, Patch)
    ops = patch.to_plotly_json()["operations"]
    assert len(ops) == 1
    assert ops[0]["location"] == ["features", first["order"].index(mover)]
    assert ops[0]["params"]["value"]["geometry"]["coordinates"] == [114.04, 22.64]
    assert out["order"] is no_update
    assert len(json.dumps(patch.to_plotly_json())) < 1000  # a few hundred bytes, not the city


def test_a_new_inspector_is_appended(web):
    ctx, server, _app, users = web
    now = time.time()
    webkit.feed_city(ctx.engine, ctx.live, now, n_inspectors=1, visits=0, duplicates=0)  # I1 only
    first = tick(server, users["wall"])
    assert first["order"] == ["I1"]
    ctx.live.apply_pings([Ping("I2", now + 1, 22.63, 114.03, msg_id="new-1")])
    out = tick(server, users["wall"], later(first["state"]), first["order"])
    ops = out["inspectors"].to_plotly_json()["operations"]
    assert [op["operation"] for op in ops] == ["Append"]
    assert out["order"] == ["I1", "I2"]


def test_an_alarm_goes_out_at_once_and_the_inspectors_at_their_interval(fed):
    """The inspector layer is redrawn whole by the browser on every change, so it moves
    every INSPECTOR_LAYER_EVERY_S; an alarm does not wait for it."""
    ctx, server, users, info, now = fed
    first = tick(server, users["wall"])
    ctx.live.apply_pings([Ping(info["inspectors"][1], now + 1, 22.64, 114.04, msg_id="move-2")])
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    out = tick(server, users["wall"], first["state"], first["order"])
    assert out["takeover"]["id"] == str(alert_id) and out["open_gas"] == "1"
    assert out["inspectors"] is no_update
    again = tick(server, users["wall"], later(out["state"]), first["order"])
    assert isinstance(again["inspectors"], Patch)


def test_open_gas_alarm_takes_the_wall_over_until_acknowledged(fed):
    ctx, server, users, _info, _now = fed
    first = tick(server, users["wall"])
    assert first["takeover"] is None and first["open_gas"] == "0"
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    out = tick(server, users["wall"], first["state"], first["order"])
    assert out["open_gas"] == "1"
    assert out["takeover"]["id"] == str(alert_id)
    assert out["card_class"] == "aj-takeover aj-show"
    assert "深圳市龙华区老王餐饮店" in json.dumps(out["card"], default=lambda c: c.to_plotly_json(), ensure_ascii=False)
    assert [f["properties"]["st"] for f in out["alarms"]["features"]] == ["open"]
    ctx.alerts.act(alert_id, "ack", users["dispatcher"])
    after = tick(server, users["wall"], out["state"], first["order"])
    assert after["takeover"] is None and after["card_class"] == "aj-takeover"
    assert after["open_gas"] == "1"  # still open (acknowledged), no longer pulsing
    assert [f["properties"]["st"] for f in after["alarms"]["features"]] == ["acknowledged"]


def test_a_warning_does_not_take_over(fed):
    ctx, server, users, _info, _now = fed
    webkit.open_alert(ctx, sensor_id="S2", severity="warning", lel=25)
    out = tick(server, users["wall"])
    assert out["takeover"] is None and out["open_gas"] == "1"


def test_kpis_match_the_api(fed, client_as):
    ctx, server, users, info, _now = fed
    with webkit.as_user(server, users["wall"]):
        out = wall.wall_slow_tick(1)
    resp = client_as("wall").get("/api/v1/kpis")
    if resp.status_code == 200:
        api = resp.get_json()
    else:  # the route's blueprint not registered in this build: the function it answers with
        from data import geo_queries

        api = geo_queries.kpis(ctx.engine, ctx.redis, ctx.settings.redis_namespace, ctx.settings.interval_days(),
                               time.time())
    assert out["visits"] == str(api["visits_today"]) == str(info["visits"])
    assert out["duplicates"] == str(api["duplicates_today"]) == str(info["duplicates"])
    assert out["coverage"] == f"{api['coverage_pct']:.1f}%"
    for colour in ("red", "orange", "yellow", "blue"):
        assert out[f"overdue_{colour}"] == str(api["overdue"].get(colour, 0))
    with webkit.as_user(server, users["wall"]):
        trails = wall.wall_trails(1)
    assert {f["id"] for f in trails["features"]} == set(info["inspectors"])
    assert all(len(f["geometry"]["coordinates"]) <= 12 for f in trails["features"])


def test_kpi_on_duty_matches_the_api(fed, client_as):
    ctx, server, users, _info, _now = fed
    out = tick(server, users["wall"])
    api = client_as("wall").get("/api/v1/inspectors").get_json()
    assert out["on_duty"] == str(sum(1 for d in api if d["status"] != "offline"))


def test_enterprise_layer_is_not_resent_while_the_view_stays_inside(fed):
    _ctx, server, users, _info, _now = fed
    with webkit.as_user(server, users["wall"]):
        out = wall.wall_enterprises(12, [[22.60, 114.0], [22.65, 114.1]], None)
        assert out["data"]["features"] and out["last"]["band"] == "r7"
        again = wall.wall_enterprises(12.2, [[22.61, 114.01], [22.64, 114.09]], out["last"])
        assert again["data"] is no_update
        zoomed = wall.wall_enterprises(16, [[22.615, 114.015], [22.625, 114.025]], out["last"])
        assert zoomed["last"]["band"] == "points"


def count_pings(ctx, lat: float, lon: float, n) -> None:
    """Ping counters for the live heat, as the ingest keeps them (``data.geo_queries.heat_key``):
    ``n`` pings this hour in the res-9 cell of (lat, lon)."""
    from data.geo_queries import LIVE_RES, heat_key
    from geo.cells import latlng_to_cell
    from geo.heat import hour_bucket

    key = heat_key(ctx.settings.redis_namespace, "pings", hour_bucket(time.time()))
    ctx.redis.hset(key, latlng_to_cell(lat, lon, LIVE_RES), n)


def test_heat_layer_from_known_counters_and_overdue_enterprises(fed):
    """Activity from the live counters, gaps from the enterprises overdue in SQL."""
    ctx, server, users, _info, now = fed
    from sqlalchemy import update

    from data.models import Enterprise

    count_pings(ctx, 22.62, 114.02, 4)
    # Of the small city's two enterprises (never inspected, so overdue), E2 (blue) was
    # inspected just now: the red E1 alone is a gap, weighing 365 / its interval.
    with ctx.engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == "E2").values(last_inspected_at=now))
    with webkit.as_user(server, users["wall"]):
        act = wall.wall_heat(1, "activity", "today", 12)
        gaps = wall.wall_heat(1, "gaps", "today", 14)
    assert len(act["data"]["features"]) == 1
    assert (act["hideout"]["max"], act["hideout"]["mode"]) == (4.0, "activity")
    assert len(gaps["data"]["features"]) == 1
    assert gaps["hideout"]["mode"] == "gaps"
    assert gaps["hideout"]["max"] == pytest.approx(365 / ctx.settings.interval_days()["red"])
    # A wall that already draws this layer is sent nothing; another mode or zoom is sent.
    with webkit.as_user(server, users["wall"]):
        with pytest.raises(PreventUpdate):
            wall.wall_heat(2, "activity", "today", 12, drawn=act["hideout"])
        finer = wall.wall_heat(2, "activity", "today", 15, drawn=act["hideout"])
    assert finer["hideout"]["fp"] != act["hideout"]["fp"]


def test_heat_layer_survives_a_failing_source(fed, caplog):
    ctx, server, users, _info, _now = fed
    count_pings(ctx, 22.62, 114.02, 4)
    count_pings(ctx, 22.63, 114.07, "not a count")  # a broken counter: the heat query raises
    with webkit.as_user(server, users["wall"]):
        out = wall.wall_heat(1, "activity", "1h", 12)
    assert out["data"]["features"] == []
    assert out["hideout"] == {"max": 1, "mode": "activity", "fp": None}
    assert any(r.getMessage() == "heat layer (activity, res 7) failed" and r.exc_info for r in caplog.records)


def test_heat_layer_from_the_geo_queries(fed):
    """The wall asks data.geo_queries (as /api/v1/heatmap does): every ping fed is counted."""
    ctx, server, users, info, _now = fed
    # The live counters, as the ingest keeps them (data.geo_queries.heat_key): one per ping, res 9, per hour.
    from sqlalchemy import select

    from data.geo_queries import LIVE_RES, heat_key
    from data.models import PingRow
    from geo.cells import latlng_to_cell
    from geo.heat import hour_bucket

    with ctx.engine.connect() as conn:
        for ts, lat, lon in conn.execute(select(PingRow.ts, PingRow.lat, PingRow.lon)):
            ctx.redis.hincrby(heat_key(ctx.settings.redis_namespace, "pings", hour_bucket(ts)),
                              latlng_to_cell(lat, lon, LIVE_RES), 1)
    with webkit.as_user(server, users["wall"]):
        act = wall.wall_heat(1, "activity", "1h", 14)
        gaps = wall.wall_heat(1, "gaps", "1h", 12)
    assert sum(f["properties"]["v"] for f in act["data"]["features"]) == 20 * len(info["inspectors"])
    assert gaps["data"]["features"] and gaps["hideout"]["mode"] == "gaps"


def test_english_wall(fed):
    ctx, server, users, _info, _now = fed
    webkit.open_alert(ctx, sensor_id="S1")
    out = tick(server, users["wall"], lang="en")
    text = json.dumps(out["ticker"], default=lambda c: c.to_plotly_json(), ensure_ascii=False)
    assert "Critical" in text and "Gas alarm" in text and "紧急" not in text


def test_stale_inspectors_are_patched_without_a_version_bump(fed):
    """A fix that ages past the offline limit bumps no version; the poll still patches it."""
    ctx, server, users, info, now = fed
    first = tick(server, users["wall"])
    drawn = first["state"]["inspectors"]
    state = dict(drawn, t=now - 3600)  # the last poll was long ago
    aged = [dict(d, last_fix_ts=now - layers.STALE_S - 1, status="offline") for d in ctx.snapshot().inspectors_json()]
    with webkit.as_user(server, users["wall"]):
        from dashboard.pages.common import city

        data, order, _news = layers.inspectors_update(ctx, city(), aged, state, first["order"], drawn["v"],
                                                      now, "zh-CN")
    ops = data.to_plotly_json()["operations"]
    assert len(ops) == len(info["inspectors"]) and order is no_update
    assert all(op["params"]["value"]["properties"]["s"] == "offline" for op in ops)


def test_each_callback_reports_its_server_time(fed, client_as):
    """What an operator reads to see a slow screen: a Server-Timing header per callback
    answer, and a per-callback histogram in /metrics."""
    ctx, server, _users, _info, _now = fed
    c = client_as("wall")
    key = webkit.key_of(server, "wall", "wall_slow_tick")
    outputs = [{"id": o.component_id, "property": o.component_property} for o in wall.SLOW_OUTPUTS.values()]
    body = webkit.callback_body(key, [{"id": "wall-slow-tick", "property": "n_intervals", "value": 1}],
                                outputs=outputs)
    resp = webkit.call_callback(c, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    timing = resp.headers["Server-Timing"]
    assert timing.startswith('cb;desc="wall.wall_slow_tick";dur=')
    assert float(timing.rsplit("=", 1)[1]) > 0
    webkit.call_callback(c, body)
    metrics = client_as("dispatcher").get("/metrics").get_data(as_text=True)
    assert 'anjian_web_callback_seconds_count{callback="wall.wall_slow_tick"} 2' in metrics
    assert 'anjian_web_callback_seconds_bucket{callback="wall.wall_slow_tick",le="+Inf"} 2' in metrics


def test_the_page_arrives_with_the_inspectors_drawn_and_the_first_poll_sends_no_layer(fed):
    """At city scale a full inspector layer is 300 KB: it comes with the page, once; the
    first poll draws the alarms and KPIs and sends the inspectors only if one moved."""
    ctx, server, users, info, _now = fed
    with webkit.as_user(server, users["wall"]):
        page = wall.build(users["wall"], "zh-CN")
    layer = webkit.find(page, "wall-inspectors")
    order = webkit.find(page, "wall-order").data
    state = {"inspectors": webkit.find(page, "wall-state").data, "alerts": webkit.find(page, "wall-alert-state").data}
    assert [f["id"] for f in layer.data["features"]] == order == sorted(info["inspectors"])
    out = tick(server, users["wall"], state, order)
    assert out["inspectors"] is no_update and out["order"] is no_update
    assert out["on_duty"] == "2"
    with pytest.raises(PreventUpdate):
        tick(server, users["wall"], out["state"], order)


def _rows(ctx, n: int, now: float) -> list[dict]:
    return [{"id": f"R{k:04d}", "unit": "U1", "lat": 22.6 + k * 1e-4, "lon": 114.0, "status": "on_duty",
             "last_fix_ts": now - 5} for k in range(n)]


def test_the_whole_inspector_layer_is_refreshed_in_rolling_slices_not_one_redraw(fed):
    """At city scale a full redraw is 300 KB in one tick; instead a slice goes out every
    ROLL_EVERY_S and the whole layer goes round within FULL_REDRAW_S."""
    ctx, server, users, _info, now = fed
    rows = _rows(ctx, 240, now)
    with webkit.as_user(server, users["wall"]):
        from dashboard.pages.common import city

        data, order, state = layers.inspectors_update(ctx, city(), rows, {}, None, 7, now, "zh-CN")
        assert len(data["features"]) == 240
        seen: set[int] = set()
        t = now
        while t < now + layers.FULL_REDRAW_S:
            t += layers.ROLL_EVERY_S
            patch, new_order, news = layers.inspectors_update(ctx, city(), rows, state, order, 7, t, "zh-CN")
            state = dict(state, **news)
            ops = patch.to_plotly_json()["operations"]
            assert new_order is no_update and 0 < len(ops) <= 240 * layers.ROLL_EVERY_S / layers.FULL_REDRAW_S + 1
            seen |= {op["location"][1] for op in ops}
    assert seen == set(range(240))


def test_an_inspector_going_off_shift_is_deleted_by_patch_not_by_a_full_redraw(fed):
    ctx, server, users, _info, now = fed
    rows = _rows(ctx, 5, now)
    with webkit.as_user(server, users["wall"]):
        from dashboard.pages.common import city

        _data, order, state = layers.inspectors_update(ctx, city(), rows, {}, None, 7, now, "zh-CN")
        rows[1]["last_fix_ts"] = rows[3]["last_fix_ts"] = now - layers.OFF_SHIFT_S - 10
        state = dict(state, t=now - 1)
        patch, new_order, _news = layers.inspectors_update(ctx, city(), rows, state, order, 7, now + 1, "zh-CN")
    ops = patch.to_plotly_json()["operations"]
    assert [(op["operation"], op["location"]) for op in ops if op["operation"] == "Delete"] == [
        ("Delete", ["features", 3]), ("Delete", ["features", 1])]
    assert new_order == ["R0000", "R0002", "R0004"]


def test_heat_layer_sends_the_cells_of_the_view(fed):
    """A wall zoomed on one street gets that street's cells, not the district's."""
    ctx, server, users, _info, _now = fed
    count_pings(ctx, 22.62, 114.02, 4)  # near the street in view
    count_pings(ctx, 22.75, 113.90, 9)  # far from it
    with webkit.as_user(server, users["wall"]):
        whole = wall.wall_heat(1, "activity", "today", 13)
        street = wall.wall_heat(1, "activity", "today", 13, bounds=[[22.60, 114.00], [22.64, 114.04]],
                                drawn=whole["hideout"])
    assert len(whole["data"]["features"]) == 2
    assert len(street["data"]["features"]) == 1
    assert street["hideout"]["max"] == 9.0  # the colour ramp stays the district's


def _spread(n: int, now: float) -> list[dict]:
    """``n`` inspectors on a 60 x n/60 grid over some 6 x 4 km of the district."""
    return [{"id": f"R{k:05d}", "unit": "U1", "lat": 22.62 + (k // 60) * 4e-2 / (n / 60), "lon": 114.00 + (k % 60) * 1e-3,
             "status": "offline" if k % 10 == 0 else "on_duty", "last_fix_ts": now - 5} for k in range(n)]


WHOLE = [[22.4, 113.8], [22.9, 114.3]]  # the district and around it (Leaflet's [[s, w], [n, e]])


@pytest.fixture(params=["list", "columns"])
def form(request):
    """The rows as a plain list, or as the web's mirror hands them out: with their
    columns as arrays beside them (mapkit.InspectorRows), which the layers filter and
    count by. Both must draw the same."""
    if request.param == "list":
        return list
    return lambda rows: InspectorRows(rows, *inspector_columns(rows))


def test_more_inspectors_than_a_map_can_draw_are_counted_per_cell(fed, form):
    """Ten times a city (20,000) drawn one by one held the console's browser for seconds;
    past INSPECTOR_POINTS_MAX the zoomed-out map shows counts per H3 cell instead, every
    inspector counted once, and sends them again only when a count changes."""
    ctx, server, users, _info, now = fed
    n = layers.INSPECTOR_POINTS_MAX + 500
    rows = _spread(n, now)
    with webkit.as_user(server, users["dispatcher"]):
        from dashboard.pages.common import city

        data, order, state = layers.inspectors_update(ctx, city(), form(rows), {}, None, 7, now, "zh-CN",
                                                      tooltips=True, view=(12, WHOLE))
        feats = data["features"]
        assert state["mode"] == "cells" and order == []
        assert sum(f["properties"]["k"] for f in feats) == n
        assert sum(f["properties"]["on"] for f in feats) == n - n // 10
        assert 1 < len(feats) < 200, len(feats)
        assert "执法人员" in feats[0]["properties"]["tooltip"]
        assert len(json.dumps(data)) < 100_000
        # Nothing moved into another cell: nothing sent.
        again, order2, news = layers.inspectors_update(ctx, city(), form(rows), state, order, 8, now + 4, "zh-CN",
                                                       tooltips=True, view=(12, WHOLE))
        assert again is no_update and order2 is no_update
        # One inspector far away: a new cell with 1 in it, the layer sent whole.
        rows[5] = dict(rows[5], lat=22.80, lon=114.20)
        moved, _o, _n = layers.inspectors_update(ctx, city(), form(rows), dict(state, **news), [], 9, now + 8,
                                                 "zh-CN", tooltips=True, view=(12, WHOLE))
    assert sum(f["properties"]["k"] for f in moved["features"]) == n
    assert 1 in [f["properties"]["k"] for f in moved["features"]]


def test_zoomed_in_the_inspectors_in_view_are_drawn_one_by_one(fed, form):
    """A dispatcher zooming onto an alarm sees each inspector near it, and the layer
    follows the view: inside the drawn area nothing is redrawn, outside it is."""
    ctx, server, users, _info, now = fed
    rows = _spread(layers.INSPECTOR_POINTS_MAX + 500, now)
    street = [[22.625, 114.010], [22.635, 114.020]]
    with webkit.as_user(server, users["dispatcher"]):
        from dashboard.pages.common import city

        c = city()
        data, order, state = layers.inspectors_update(ctx, c, form(rows), {}, None, 7, now, "zh-CN", view=(16, street))
        assert state["mode"] == "area"
        ids_drawn = {f["id"] for f in data["features"]}
        assert all("k" not in f["properties"] for f in data["features"])
        (s, w), (nn, e) = state["area"]
        inside = {d["id"] for d in rows if s <= d["lat"] <= nn and w <= d["lon"] <= e}
        assert ids_drawn == inside and 0 < len(inside) < layers.INSPECTOR_POINTS_MAX
        assert order == sorted(inside)
        # A small pan stays inside the drawn area; a pan along the street leaves it.
        assert not layers.view_left(state, 16, [[22.626, 114.011], [22.636, 114.021]])
        assert layers.view_left(state, 16, [[22.625, 114.030], [22.635, 114.040]])
        # Zoomed out again: counted per cell, and the browser's points replaced whole.
        cells, order2, news = layers.inspectors_update(ctx, c, form(rows), state, order, 7, now + 4, "zh-CN",
                                                       view=(12, WHOLE))
    assert news["mode"] == "cells" and order2 == [] and all("k" in f["properties"] for f in cells["features"])


def test_the_wall_and_console_ticks_draw_cells_past_the_limit(fed, monkeypatch):
    """The ticks pass the map's view: with the limit below the fed city's inspectors,
    both screens' inspector layers are cells, and the inspector list is still drawn."""
    ctx, server, users, info, _now = fed
    monkeypatch.setattr(layers, "INSPECTOR_POINTS_MAX", 1)
    from dashboard.pages import dispatch

    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_inspectors(1, None, {}, None, zoom=12, bounds=WHOLE)
    assert sum(f["properties"]["k"] for f in out["inspectors"]["features"]) == 2
    names = {iid: name for iid, (name, _u, _un) in ctx.registry().inspectors.items()}
    assert all(names[i] in out["inspector_list"] for i in info["inspectors"])
    with webkit.as_user(server, users["wall"]):
        out = wall.wall_inspectors(1, {}, None, zoom=12, bounds=WHOLE)
    assert sum(f["properties"]["k"] for f in out["inspectors"]["features"]) == 2
    assert out["state"]["mode"] == "cells"


def test_every_shared_answer_is_renewed_in_the_background(fed, caplog):
    """The screens' shared answers (KPIs, plan against actual, hazards, trails, heat, the
    console's plan of the day) are renewed by a background thread once stale, outside any
    request.  A read that needed the request there failed every minute, and the wall kept
    a plan figure up to six minutes old (the tour of 2026-12-05 found it in the log)."""
    import logging

    from dashboard.pages import dispatch

    _ctx, server, users, _info, _now = fed
    cache = server.extensions["anjian_cache"]

    def read_everything():
        with webkit.as_user(server, users["wall"]):
            wall.wall_slow_tick(1)
            wall.wall_hazards(1)
            wall.wall_trails(1)
            wall.wall_heat(1, "activity", "today", 12, WHOLE, None)
        with webkit.as_user(server, users["dispatcher"]):
            dispatch.dispatch_plan_today(1)
            dispatch.dispatch_hazards(1)

    read_everything()
    keys = set(cache._data)
    assert {"kpis", "plan_kpis", "plan_today", "trails"} <= keys, keys
    # Every answer past its time to live (but not so old that a caller waits for it).
    long_ago = time.monotonic() - 3600
    for k, (_at, value) in list(cache._data.items()):
        cache._data[k] = (long_ago, value)
    cache.MAX_STALE = 10_000.0
    with caplog.at_level(logging.WARNING, logger="dashboard.pages.common"):
        read_everything()
        deadline = time.time() + 30
        while cache._refreshing and time.time() < deadline:
            time.sleep(0.05)
    assert not cache._refreshing
    assert "background refresh" not in caplog.text, caplog.text
    stale = sorted(str(k) for k, (at, _v) in cache._data.items() if at == long_ago)
    assert stale == [], f"not renewed: {stale}"
