"""What the web process reads once for all its screens, against the real stores:
the mirror of inspector fixes (dashboard.context.InspectorMirror) must equal a
full read of Redis after any run of updates, and the shared open-alerts read
(WebContext.open_alerts) must show every alert change at once."""

from __future__ import annotations

import random
import time

from dashboard.pages import layers
from data.auth import Principal
from geo.types import Ping
from tests.dashboard import webkit


def full_read(ctx, ids):
    return {i: (f.ts, f.lat, f.lon) for i, f in ctx.live.inspector_fixes(ids).items()}


def mirrored(ctx, ids):
    return {i: (f.ts, f.lat, f.lon) for i, f in ctx.mirror.fixes(ids).items()}


def test_the_mirror_follows_every_fix_and_a_trimmed_stream(web):
    ctx = web[0]
    ids = {f"I{k}": None for k in range(1, 41)}  # the mirror is asked for the registry's dict of inspectors
    rng = random.Random(7)
    now = time.time()
    assert mirrored(ctx, ids) == {}, "nobody has reported yet"
    for step in range(30):
        batch = [Ping(inspector_id=f"I{rng.randint(1, 40)}", ts=now + step + rng.random(),
                      lat=22.6 + rng.random() / 100, lon=114.0 + rng.random() / 100) for _ in range(rng.randint(1, 8))]
        # Now and then a fix older than the one stored: it must not win in the mirror either.
        batch.append(Ping(inspector_id="I1", ts=now - 100, lat=22.5, lon=113.9))
        ctx.live.apply_pings(batch)
        if step % 3 == 0:
            assert mirrored(ctx, ids) == full_read(ctx, ids), f"after step {step}"
    assert mirrored(ctx, ids) == full_read(ctx, ids)

    # The change stream trimmed behind the mirror (a web process asleep for long): it reads everything again.
    ctx.live.apply_pings([Ping(inspector_id="I2", ts=now + 100, lat=22.61, lon=114.01)])
    ctx.redis.xtrim(ctx.live.key("changes"), maxlen=0)
    ctx.live.apply_pings([Ping(inspector_id="I3", ts=now + 100, lat=22.62, lon=114.02)])
    for _ in range(10):  # bump the version without an inspector entry (other kinds of change)
        ctx.redis.incr(ctx.live.key("ver"))
    got = mirrored(ctx, ids)
    assert got["I2"] == (now + 100, 22.61, 114.01) and got["I3"] == (now + 100, 22.62, 114.02)
    assert got == full_read(ctx, ids)


def test_the_shared_open_alerts_show_every_change_at_once(web):
    ctx = web[0]
    assert ctx.open_alerts(500) == []
    a = webkit.open_alert(ctx, "inspector_offline", inspector_id="I1", severity="warning")
    (row,) = ctx.open_alerts(500)
    assert row["id"] == a and row["state"] == "open"
    assert ctx.open_alerts(500) is ctx.open_alerts(500), "unchanged alerts are read once"

    disp = Principal(user_id=web[3]["dispatcher"], username="disp1", role="dispatcher")
    ctx.alerts.act(a, "ack", disp)
    (row,) = ctx.open_alerts(500)
    assert row["state"] == "acknowledged", "an action is seen by the very next read"
    ctx.alerts.act(a, "resolve", disp, outcome="back_online")
    assert ctx.open_alerts(500) == [], "a resolved alert leaves the open list"


def test_with_more_active_alerts_than_a_screen_reads_the_critical_ones_stay(web):
    """A city with hundreds of detectors offline must not push an older gas alarm off the screens."""
    ctx = web[0]
    now = time.time()
    gas = webkit.open_alert(ctx, "gas_alarm", enterprise_id="E1", severity="critical", at=now - 3600)
    for k in range(30):
        webkit.open_alert(ctx, "inspector_offline", inspector_id=f"X{k}", severity="warning", at=now - 60 + k)
    rows = ctx.open_alerts(10)
    assert len(rows) == 10
    assert rows[0]["id"] == gas, "the oldest alert, but the only critical one, comes first"
    # Then by severity, newest first (the queue order of every screen, docs/screens.md): the
    # nine newest of the thirty warnings.
    assert [r["first_seen_ts"] for r in rows[1:]] == [now - 60 + k for k in range(29, 20, -1)]


def test_the_registry_and_the_city_map_hold_one_copy_of_each_enterprise_name(web):
    """Each enterprise's id and name is one string object in the web process, however
    many of its reads hold it (the registry, its sensors, the city map): held twice they
    were 52 MB of a worker at city scale (docs/benchmarks.md §16)."""
    ctx, server, _app, _users = web
    reg = ctx.registry()
    with server.app_context():
        from dashboard.pages.common import city

        c = city()
    assert len(c.ent_ids) >= 2
    for i, eid in enumerate(c.ent_ids):
        key = next(k for k in reg.enterprise_names if k == eid)
        assert key is eid and reg.enterprise_names[eid] is c.ent_names[i], eid
    sensor_eids = [s[0] for s in reg.sensors.values() if s[0] is not None]
    assert sensor_eids and all(any(e is k for k in reg.enterprise_names) for e in sensor_eids)


def test_the_kept_inspector_rows_equal_rows_built_anew_after_any_run_of_changes(web):
    """The mirror keeps each inspector's row between polls (InspectorMirror.rows, 20,000
    rows at ten times a city): after moves, visits begun and ended, last wills, returns,
    fixes going stale, a trimmed change stream and a full read, the kept rows must be
    exactly what a build from nothing gives, and a row nothing touched is not rebuilt."""
    from dashboard.context import INSPECTOR_STALE_S, Registry, inspector_rows_anew

    ctx = web[0]
    ids = [f"I{k}" for k in range(1, 41)]
    reg = Registry(inspectors={i: (f"巡查员{i}", "U1", "执法科") for i in ids}, sensors={},
                   enterprise_names={"E1": "老王餐饮店", "E2": "华丰电子"})
    rng = random.Random(11)
    now = time.time()
    ctx.live.apply_pings([Ping(inspector_id=i, ts=now - rng.random() * 60, lat=22.6, lon=114.0) for i in ids[:30]])

    def both(at: float) -> list[dict]:
        avail, visiting = ctx.live.availability("inspector"), ctx.visiting()
        got = ctx.mirror.rows(reg, avail, visiting, at)
        assert got == inspector_rows_anew(reg, ctx.live.inspector_fixes(ids), avail, visiting, at)
        # the columns beside the rows (mapkit.InspectorRows), which the layers filter and count by
        assert (got.lat.tolist(), got.lon.tolist(), got.ts.tolist(), got.on.tolist()) == (
            [d["lat"] for d in got], [d["lon"] for d in got], [d["last_fix_ts"] for d in got],
            [d["status"] != "offline" for d in got])
        return got

    before = both(now)
    assert len(before) == 30 and {d["status"] for d in before} == {"on_duty"}
    for step in range(1, 31):
        t = now + step
        moved = rng.sample(ids[:30], 4)
        if step == 10:
            moved.append(ids[30])  # a first fix: one more row
        ctx.live.apply_pings([Ping(inspector_id=i, ts=t, lat=22.6 + rng.random() / 100, lon=114.0) for i in moved])
        touched = set(moved)
        if step % 4 == 0:
            who = rng.choice(ids[:30])
            ctx.redis.hset(ctx.live.key("visiting"), who, rng.choice(["E1", "E2"]))
            touched.add(who)
        if step % 5 == 0:
            ctx.redis.hdel(ctx.live.key("visiting"), *ids[:10])
            touched |= set(ids[:10])
        if step % 6 == 0:
            who = rng.choice(ids[:30])
            ctx.live.set_availability("inspector", who, False, t + 0.5)  # a last will
            touched.add(who)
        if step == 20:  # a web process asleep for long: the change stream no longer reaches back
            ctx.redis.xtrim(ctx.live.key("changes"), maxlen=0)
            ctx.redis.incr(ctx.live.key("ver"))
        rows = both(t + 1)
        kept = {d["id"] for d in before} & {d["id"] for d in rows if any(d is b for b in before)}
        assert not kept & set(moved), f"step {step}: a moved inspector's row was not built again"
        if step != 10:  # not when the set of inspectors changed (all built again)
            assert {d["id"] for d in before} - touched - {d["id"] for d in rows if any(d is b for b in before)} == set(), \
                f"step {step}: an untouched row was built again"
        before = rows
    ctx.mirror.FULL_EVERY_S = 0.0  # the periodic full read: unchanged fixes keep their rows
    again = both(now + 32)
    assert all(a is b for a, b in zip(before, again)), "a full read of unchanged fixes built rows again"
    later = both(now + INSPECTOR_STALE_S + 60)  # no fix for ten minutes: offline
    assert {d["status"] for d in later} == {"offline"}
    # Off shift (no fix for two hours) by the columns as by the rows: some are, some are not.
    off = now + layers.OFF_SHIFT_S + 10
    shown = layers.shown_inspectors(both(off), off)
    assert [d["id"] for d in shown] == [d["id"] for d in layers.shown_inspectors(list(both(off)), off)]
    assert 0 < len(shown) < 31 and shown.ts.tolist() == [d["last_fix_ts"] for d in shown]
