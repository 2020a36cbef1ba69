"""The live-state streams and idempotency memory on a real Redis (data/live.py):
the change stream in version order whoever writes it, the alert engine's event
stream never trimmed past what the engine has not acknowledged (and a loss
counted when it happens anyway), and msg_id memory bounded per device."""

from __future__ import annotations

import threading
import time

import orjson

from alerts.escalation import Ladder
from data.alert_store import AlertStore
from data.live import (APPLIED, DUPLICATE, GAS_EVENTS_GROUP, GAS_EVENTS_MAXLEN, LOST_TRIMMED, MSG_ID_CAP, OLDER,
                       LiveState)
from geo.types import GasReading, Ping


def test_the_change_stream_is_in_version_order_with_every_writer_at_once(settings, redis_client, sqlite_engine):
    """A screen stops reading the stream at the first version it already has; any
    entry out of order is a change it never draws."""
    live = LiveState(redis_client, settings.redis_namespace)
    store = AlertStore(sqlite_engine, live, Ladder.from_settings(settings))
    now = time.time()

    def writer(k: int, t: int):
        for i in range(150):
            if k == 0:
                live.set_availability("sensor", f"S{i}", i % 2 == 0, now + i)
            elif k == 1:
                live.set_availability("inspector", f"I{i}", True, now + i)
            elif k == 2:
                store.notify([i + 1])
            else:
                live.apply_pings([Ping(inspector_id=f"P{t}-{i}", ts=now + i, lat=22.6, lon=114.0)])

    threads = [threading.Thread(target=writer, args=(k, t)) for k in range(4) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    versions = [int(f[b"v"]) for _, f in redis_client.xrange(live.key("changes"))]
    assert len(versions) == 8 * 150
    assert versions == sorted(versions) and len(set(versions)) == len(versions), "entries out of version order"
    assert versions[-1] == live.version()


def _readings(ids, ts, level="normal", prefix="m"):
    return [GasReading(sensor_id=s, ts=ts, lel_pct=None, ppm=None, alarm=None, batt_pct=None, source="t",
                       msg_id=f"{prefix}{s}{ts}") for s in ids]


def _fill(live, n, ts0, chunk=2000):
    ts = ts0
    while n > 0:
        k = min(chunk, n)
        live.apply_sensor_readings(_readings([f"H{j}" for j in range(k)], ts), ["normal"] * k)
        ts += 1
        n -= k


def test_readings_that_are_not_heartbeats_take_the_alarm_lane(settings, redis_client):
    """ns:gas:alarms gets every reading that is not normal or follows one that was
    not, and every availability change, in order; ns:gas:events gets the rest."""
    live = LiveState(redis_client, settings.redis_namespace)
    t = time.time() - 100
    steps = [("normal", "events"), ("normal", "events"), ("high", "alarms"), ("high", "alarms"),
             ("normal", "alarms"), ("normal", "events"), ("test", "alarms"), ("normal", "alarms"),
             ("fault", "alarms"), ("normal", "alarms"), ("low", "alarms"), ("normal", "alarms"),
             ("normal", "events")]
    for i, (level, _) in enumerate(steps):
        live.apply_sensor_readings(_readings(["S1"], t + i), [level])
    live.set_availability("sensor", "S1", False, t + 50)
    live.set_availability("inspector", "I1", False, t + 50)  # not the engine's
    live.apply_sensor_readings(_readings(["S1"], t + 60), ["normal"])  # heard again: the stored level is normal
    lanes = {lane: [(float(f[b"ts"]) - t, f[b"level"].decode()) for _, f in redis_client.xrange(live.key("gas", lane))]
             for lane in ("alarms", "events")}
    assert lanes["alarms"] == [(i, level) for i, (level, lane) in enumerate(steps) if lane == "alarms"] + [(50, "offline")]
    assert lanes["events"] == [(i, level) for i, (level, lane) in enumerate(steps) if lane == "events"] + [(60, "normal")]


def test_unread_gas_events_are_never_trimmed(settings, redis_client):
    """The engine away (its groups exist, read nothing): 20 alarms, then more
    heartbeats than the stream's cap; every alarm and every heartbeat is still there to read."""
    live = LiveState(redis_client, settings.redis_namespace)
    key, alarms = live.key("gas", "events"), live.key("gas", "alarms")
    for k in (key, alarms):
        redis_client.xgroup_create(k, GAS_EVENTS_GROUP, id="0", mkstream=True)
    now = time.time()
    live.apply_sensor_readings(_readings([f"A{k}" for k in range(20)], now - 10), ["high"] * 20)
    _fill(live, GAS_EVENTS_MAXLEN + 5000, now)
    assert redis_client.xlen(key) == GAS_EVENTS_MAXLEN + 5000
    assert [f[b"sensor"] for _, f in redis_client.xrange(key, count=3)] == [b"H0", b"H1", b"H2"], "the oldest stay"
    assert [f[b"level"] for _, f in redis_client.xrange(alarms)] == [b"high"] * 20
    assert live.events_lost() == ({}, None)

    # Once the engine has read and acknowledged them, the stream shrinks back to its cap (lazily: "~").
    entries = redis_client.xreadgroup(GAS_EVENTS_GROUP, "engine", {key: ">"}, count=GAS_EVENTS_MAXLEN)[0][1]
    redis_client.xack(key, GAS_EVENTS_GROUP, *[e for e, _ in entries])
    _fill(live, 10, now + 1000)
    left = redis_client.xlen(key)
    assert left < GAS_EVENTS_MAXLEN + 5000, "acknowledged entries beyond the cap go"
    assert redis_client.xrange(key, count=1)[0][0] > entries[-1][0] or left >= 5000, "only acknowledged ones"
    assert redis_client.xpending(key, GAS_EVENTS_GROUP)["pending"] == 0


def test_no_engine_yet_its_group_is_made_so_it_reads_from_the_start(settings, redis_client):
    live = LiveState(redis_client, settings.redis_namespace)
    key = live.key("gas", "events")
    now = time.time()
    live.apply_sensor_readings(_readings(["N1"], now - 10), ["normal"])
    _fill(live, GAS_EVENTS_MAXLEN + 10, now)
    (group,) = redis_client.xinfo_groups(key)
    assert group["name"].decode() == GAS_EVENTS_GROUP and group["last-delivered-id"] == b"0-0"
    assert redis_client.xrange(key, count=1)[0][1][b"sensor"] == b"N1"


def test_past_the_memory_ceiling_the_loss_is_counted(settings, redis_client):
    live = LiveState(redis_client, settings.redis_namespace, gas_events_max_unread=GAS_EVENTS_MAXLEN + 1000)
    key = live.key("gas", "events")
    redis_client.xgroup_create(key, GAS_EVENTS_GROUP, id="0", mkstream=True)
    _fill(live, GAS_EVENTS_MAXLEN + 3000, time.time())
    assert redis_client.xlen(key) == GAS_EVENTS_MAXLEN + 1000
    lost, at = live.events_lost()
    assert lost == {LOST_TRIMMED: 2000} and at is not None


def test_msg_ids_are_remembered_per_device_within_a_bound(settings, redis_client):
    live = LiveState(redis_client, settings.redis_namespace, msg_id_ttl_s=3600)
    now = time.time()
    pings = [Ping(inspector_id="I1", ts=now + i, lat=22.6, lon=114.0, msg_id=f"m{i}") for i in range(300)]
    assert set(live.apply_pings(pings)) == {0}
    # A redelivery of the newest ones, however often: applied once.
    kept = MSG_ID_CAP - 16  # at least the newest this many
    for _ in range(3):
        assert live.apply_pings(pings[-kept:]) == [DUPLICATE] * kept
    key = live.key("msgid", "i", "I1")
    assert kept <= redis_client.zcard(key) < MSG_ID_CAP
    assert redis_client.object("encoding", key) == b"listpack"
    assert 0 < redis_client.ttl(key) <= 3600
    # Another device's msg_id of the same text is its own.
    assert live.apply_pings([Ping(inspector_id="I2", ts=now, lat=22.6, lon=114.0, msg_id="m299")]) == [0]
    # Sensors too.
    r = _readings(["S1"], now)
    assert live.apply_sensor_readings(r, ["normal"])[0][0] == 0
    assert live.apply_sensor_readings(r, ["normal"])[0][0] == DUPLICATE
    assert redis_client.zcard(live.key("msgid", "s", "S1")) == 1


def test_a_big_batch_of_fixes_goes_in_short_script_calls_with_the_same_outcome(settings, redis_client):
    """A script holds Redis, and every client behind it (the alarms too), for its whole
    run: a batch of 1,200 fixes goes in calls of at most 500, and a fix repeated
    across a call's edge, or older than one in an earlier call, is told apart as in
    one call."""
    live = LiveState(redis_client, settings.redis_namespace)
    now = time.time()
    pings = [Ping(inspector_id=f"I{i % 700}", ts=now + i, lat=22.6, lon=114.0, msg_id=f"m{i}") for i in range(1200)]
    pings[600] = Ping(inspector_id="I10", ts=now + 10, lat=22.6, lon=114.0, msg_id="m10")  # I10's fix again
    pings[650] = Ping(inspector_id="I0", ts=now - 5, lat=22.7, lon=114.1, msg_id="late")  # older than I0's first
    sizes: list[int] = []
    script = live._apply_pings

    def counting(keys, args):
        sizes.append(len(orjson.loads(args[1])))
        return script(keys=keys, args=args)

    live._apply_pings = counting
    codes = live.apply_pings(pings)
    assert sizes == [500, 500, 200]
    assert codes[600] == DUPLICATE and codes[650] == OLDER
    assert codes.count(APPLIED) == 1198
    fixes = live.inspector_fixes([f"I{i}" for i in range(700)])  # in reads of at most 500 too
    assert len(fixes) == 698, "I600 and I650 sent only the fixes replaced above"
    assert fixes["I0"].ts == now + 700 and fixes["I10"].ts == now + 710
    heard = live.inspector_last_heard([f"I{i}" for i in range(700)] + ["NEVER"])
    assert heard == {i: f.ts for i, f in fixes.items()}
