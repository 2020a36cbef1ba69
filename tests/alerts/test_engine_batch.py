"""The alert engine's batch path for gas events, on a real Redis and real SQL.

A batch of heartbeats must cost no SQL writes, and whatever a batch decides
must be what the same events decide one at a time (``on_gas_event``).
"""

from __future__ import annotations

import time

import pytest
import redis
from sqlalchemy import event, func, insert, select

from alerts.escalation import Ladder
from alerts.model import SENSOR_OFFLINE
from alerts.rules import SensorMemory
from data.alert_store import ALERT_FIELDS, AlertStore
from data.live import GAS_LANES, LiveState
from data.models import Alert, AlertEvent, AuditEntry, Sensor
from geo.types import GasReading
from ingest.alert_engine import READ_COUNT, AlertEngine
from tests.citykit import write_small_city
from tests.mqttkit import IngestListening

# Fields of an alert that come from the wall clock of the run (arming the
# ladder, the row's bookkeeping), not from the events.
CLOCK_FIELDS = {"id", "escalate_at", "created_at", "updated_at"}


@pytest.fixture
def city(settings, engine, redis_client):
    """The small city plus sensors A0000.. and B0000.. (twins: one path each), and an engine not started."""
    write_small_city(engine)
    with engine.begin() as conn:
        conn.execute(insert(Sensor), [
            {"id": f"{p}{i:04d}", "enterprise_id": "E1", "lat": 22.62, "lon": 114.02, "street_id": "ST1",
             "grid_id": "G1"} for p in "AB" for i in range(600)])
    store = AlertStore(engine, LiveState(redis_client, settings.redis_namespace), Ladder.from_settings(settings),
                       mqtt_prefix=settings.mqtt_prefix)
    eng = AlertEngine(settings, engine, redis_client, store, settings.mqtt_url)
    eng.registry.load()
    eng._ensure_groups()
    # The engine reads only while it holds the lease; driven by hand here, for the whole test.
    assert eng.streams.lease(eng.id, 3600.0)
    # And the sweeps count a device's silence only while an ingest listens: one has, for long.
    listening = IngestListening(redis_client, settings.redis_namespace)
    yield {"settings": settings, "engine": engine, "redis": redis_client, "store": store, "alert_engine": eng}
    listening.close()


def ev(sensor: str, ts: float, level: str = "normal", lel: float | None = None) -> dict:
    """A gas:events entry as ingest writes it (data.live)."""
    return {"sensor": sensor, "ts": repr(ts), "level": level, "prev": "", "lel": "" if lel is None else repr(lel),
            "alarm": "", "late": "0"}


def push(city, events: list[dict]) -> None:
    r, ns = city["redis"], city["settings"].redis_namespace
    pipe = r.pipeline(transaction=False)
    for f in events:
        pipe.xadd(f"{ns}:gas:events", f)
    pipe.execute()


def group_info(city, lane: str = "gas:events") -> dict:
    ns = city["settings"].redis_namespace
    return city["redis"].xinfo_groups(f"{ns}:{lane}")[0]


def drain(city) -> int:
    """Read new gas events (both lanes) through read_streams until none are left; returns the reads."""
    reads = 0
    while True:
        infos = [group_info(city, lane) for lane in GAS_LANES]
        if all(info["pending"] == 0 and info["lag"] == 0 for info in infos):
            return reads
        assert reads < 1000, "the engine does not drain the stream"
        city["alert_engine"].read_streams(False)
        reads += 1


def one_by_one(city, events: list[dict]) -> None:
    for f in events:
        city["alert_engine"].on_gas_event(f)


def alerts(city, sensor_prefix: str | None = None) -> list[dict]:
    with city["engine"].connect() as conn:
        rows = conn.execute(select(Alert.__table__).order_by(Alert.id)).all()
    out = [dict(r._mapping) for r in rows]
    if sensor_prefix:
        out = [a for a in out if (a["sensor_id"] or "").startswith(sensor_prefix)]
    return out


def gas_alarms(city, sensor: str) -> list[dict]:
    return [a for a in alerts(city) if a["type"] == "gas_alarm" and a["sensor_id"] == sensor]


def memory(city, sensor: str) -> SensorMemory | None:
    raw = city["redis"].hget(f"{city['settings'].redis_namespace}:sensor:memory", sensor)
    return SensorMemory.from_json(raw) if raw else None


def row_counts(city) -> tuple[int, int, int]:
    with city["engine"].connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (Alert, AlertEvent, AuditEntry))


def heartbeats(sensors: int, n: int, t0: float, prefix: str = "A") -> list[dict]:
    return [ev(f"{prefix}{i % sensors:04d}", t0 + i * 0.01) for i in range(n)]


def test_thousands_of_heartbeats_and_one_high_alarm_make_one_alert(city):
    t0 = time.time() - 100
    events = heartbeats(500, 4000, t0)
    events[2000:2000] = [ev("A0042", t0 + 20.001, "high", 62.0), ev("A0042", t0 + 20.002, "high", 70.0)]
    push(city, events)
    drain(city)

    assert [a["sensor_id"] for a in alerts(city)] == ["A0042"], "heartbeats opened alerts"
    (a,) = gas_alarms(city, "A0042")
    assert a["state"] == "open" and a["severity"] == "critical"
    assert a["count"] == 2 and a["peak_lel"] == 70.0
    # A0042's later heartbeats (normal) mark it back to normal; it stays open until someone resolves it.
    last_a0042 = max(float(f["ts"]) for f in events if f["sensor"] == "A0042")
    assert a["returned_to_normal_at"] is not None and t0 + 20.002 < a["returned_to_normal_at"] <= last_a0042
    # Every sensor's memory is its newest event.
    for sid in ("A0000", "A0042", "A0499"):
        assert memory(city, sid).last_seen == max(float(f["ts"]) for f in events if f["sensor"] == sid)
    assert memory(city, "A0042").level == "normal" and len(memory(city, "A0042").changes) == 2
    info = group_info(city)
    assert info["pending"] == 0 and info["lag"] == 0


def test_high_normal_high_within_one_batch_is_one_alert(city):
    t0 = time.time() - 100
    events = heartbeats(100, 400, t0)
    events[50:50] = [ev("A0007", t0 + 0.505, "high", 55.0)]
    events[150:150] = [ev("A0007", t0 + 1.505, "normal", 1.0)]
    events[250:250] = [ev("A0007", t0 + 2.505, "high", 65.0)]
    assert len(events) <= READ_COUNT  # one batch
    push(city, events)
    assert drain(city) == 1

    (a,) = gas_alarms(city, "A0007")
    assert a["count"] == 2 and a["peak_lel"] == 65.0
    # A0007's heartbeat after the second high (at t0 + 3.07) returns it to normal again.
    later = [float(f["ts"]) for f in events if f["sensor"] == "A0007" and float(f["ts"]) > t0 + 2.505]
    assert a["returned_to_normal_at"] == later[0]
    mem = memory(city, "A0007")
    assert mem.flaps >= 1, "the third change inside the flap window is flapping"
    with city["engine"].connect() as conn:
        history = conn.execute(select(AlertEvent.action).where(AlertEvent.alert_id == a["id"])).scalars().all()
    assert history == ["open"]


def test_the_slow_path_sees_the_memory_earlier_events_of_its_batch_left(city):
    """A late alarm right after a newer heartbeat (still unwritten) is late, as one by one."""
    t = time.time() - 100
    push(city, [ev("A0009", t + 10), ev("A0010", t + 10), ev("A0009", t + 5, "high", 70.0)])
    assert drain(city) == 1
    (a,) = gas_alarms(city, "A0009")
    assert a["details"]["late"] is True
    assert a["returned_to_normal_at"] == t + 10, "by the newer reading it is normal again already"
    mem = memory(city, "A0009")
    assert mem.level == "normal" and mem.last_seen == t + 10, "a late reading does not change the memory"


def test_an_open_offline_alert_learns_the_sensor_is_heard_again(city):
    eng = city["alert_engine"]
    info = eng.registry.sensors["A0003"]
    eng._availability(info, time.time() - 5000, online=False)  # silent for long: offline
    (off,) = [a for a in alerts(city) if a["type"] == SENSOR_OFFLINE]
    assert off["returned_to_normal_at"] is None

    now = time.time()
    push(city, heartbeats(50, 400, now - 10))
    drain(city)
    (back,) = [a for a in alerts(city) if a["type"] == SENSOR_OFFLINE]
    first_heard = min(float(f["ts"]) for f in heartbeats(50, 400, now - 10) if f["sensor"] == "A0003")
    assert back["id"] == off["id"] and back["returned_to_normal_at"] == first_heard
    assert back["state"] == "open", "back online: it stays open until a person resolves it"


def test_an_offline_event_then_a_heartbeat_in_one_batch(city):
    """The batch learns of the alert it opened itself and sends the heartbeat the slow way."""
    t = time.time()
    push(city, [ev("A0001", t - 1), {"sensor": "A0001", "ts": repr(t), "level": "offline", "prev": "", "lel": "",
                                      "alarm": ""}, ev("A0001", t + 1), ev("A0002", t + 1)])
    assert drain(city) == 1
    (off,) = alerts(city)
    assert off["type"] == SENSOR_OFFLINE and off["sensor_id"] == "A0001"
    assert off["returned_to_normal_at"] == t + 1


# Each sensor's sequence, in seconds after t0, interleaved across sensors.
SEQUENCES = {
    0: [(0, "normal", 0.0), (1, "normal", None), (2, "normal", 0.0)],
    1: [(0, "normal", 0.0), (1, "high", 62.0), (2, "high", 70.0), (3, "normal", 2.0), (4, "low", 30.0),
        (5, "normal", 1.0)],
    2: [(0, "high", 60.0), (1, "normal", 0.0), (2, "high", 61.0), (3, "normal", 0.0), (4, "high", 66.0),
        (5, "normal", 0.0)],
    3: [(0, "fault", None), (1, "normal", 0.0), (2, "tamper", None), (3, "low", 25.0)],
    4: [(0, "normal", 0.0), (1, "test", 50.0), (3, "normal", 0.0), (2, "high", 80.0), (4, "normal", 0.0)],
    5: [(0, "offline", None), (1, "normal", 0.0), (2, "normal", 0.0)],
    6: [(0, "normal", 0.0), (1, "online", None), (2, "normal", 0.0), (3, "offline", None), (4, "online", None)],
    7: [(0, "low", 22.0), (1, "low", 24.0), (2, "high", 58.0)],
}


def sequence_events(prefix: str, t0: float, filler: int) -> list[dict]:
    """The SEQUENCES for sensors <prefix>0000..0007, round robin, among heartbeats of other sensors."""
    out = []
    steps = max(len(s) for s in SEQUENCES.values())
    for k in range(steps):
        for i, seq in SEQUENCES.items():
            if k < len(seq):
                dt, level, lel = seq[k]
                out.append(ev(f"{prefix}{i:04d}", t0 + dt, level, lel))
        out += [ev(f"{prefix}{100 + (k * filler + j) % 400:04d}", t0 + k + j * 0.001) for j in range(filler)]
    return out


def comparable(rows: list[dict], prefix: str) -> list[dict]:
    out = []
    for a in rows:
        a = {k: v for k, v in a.items() if k not in CLOCK_FIELDS}
        if a["type"] == SENSOR_OFFLINE:  # opened and reopened at the wall clock
            a.pop("first_seen")
            a.pop("last_seen")
        a["subject"] = a["subject"].replace(f":{prefix}", ":X")
        a["sensor_id"] = a["sensor_id"].replace(prefix, "X")
        out.append(a)
    return sorted(out, key=lambda a: (a["sensor_id"], a["type"]))


def test_batched_and_one_by_one_give_the_same_alerts_and_memories(city):
    t0 = time.time() - 50
    one = sequence_events("A", t0, filler=30)
    batched = sequence_events("B", t0, filler=30)
    one_by_one(city, one)
    push(city, batched)
    drain(city)

    a_rows, b_rows = alerts(city, "A"), alerts(city, "B")
    assert len(a_rows) >= 8, "the sequences should open alerts of every kind"
    assert {a["type"] for a in a_rows} == {"gas_alarm", "sensor_fault", "sensor_offline"}
    assert comparable(b_rows, "B") == comparable(a_rows, "A")
    assert set(ALERT_FIELDS) - CLOCK_FIELDS <= set(a_rows[0])
    with city["engine"].connect() as conn:
        history = conn.execute(select(Alert.sensor_id, Alert.type, AlertEvent.action, AlertEvent.to_state)
                               .join(AlertEvent, AlertEvent.alert_id == Alert.id)
                               .order_by(AlertEvent.id)).all()
    assert sorted((s[1:], t, a, st) for s, t, a, st in history if s.startswith("B")) == \
        sorted((s[1:], t, a, st) for s, t, a, st in history if s.startswith("A"))
    for i in list(SEQUENCES) + [100, 250, 499]:
        a, b = memory(city, f"A{i:04d}"), memory(city, f"B{i:04d}")
        assert (a is None) == (b is None)
        if a is not None:
            assert b.to_dict() | {"sensor_id": None} == a.to_dict() | {"sensor_id": None}


def test_five_thousand_heartbeats_write_nothing_to_sql(city):
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    push(city, heartbeats(600, 5000, time.time() - 100))
    before = row_counts(city)
    event.listen(city["engine"], "before_cursor_execute", seen)
    try:
        drain(city)
    finally:
        event.remove(city["engine"], "before_cursor_execute", seen)
    assert row_counts(city) == before == (0, 0, 0)
    assert not {"INSERT", "UPDATE", "DELETE"} & set(statements)
    # One query per batch asks which sensors have an active alert; nothing per event.
    assert statements.count("SELECT") <= -(-5000 // READ_COUNT)
    assert memory(city, "A0599").last_seen is not None


def test_a_bad_entry_is_acked_and_the_rest_of_the_batch_flows(city):
    t = time.time() - 10
    push(city, [ev("A0001", t), {"sensor": "A0002", "ts": "not-a-time", "level": "normal"},
                ev("A0003", t, "bogus-level"), {"nosensor": "x"}, ev("A0004", t + 1, "high", 70.0),
                ev("NOT-REGISTERED", t)])
    drain(city)
    assert [a["sensor_id"] for a in alerts(city)] == ["A0004"]
    assert memory(city, "A0001").last_seen == t and memory(city, "A0002") is None
    info = group_info(city)
    assert info["pending"] == 0 and info["lag"] == 0


def test_an_infra_error_leaves_its_entry_unacked_and_it_is_read_again(city, monkeypatch):
    eng = city["alert_engine"]
    t = time.time() - 10
    push(city, [ev("A0001", t), ev("A0002", t, "high", 70.0), ev("A0003", t)])
    real = eng._gas_reading
    calls = []

    def away_once(*args, **kw):
        calls.append(args)
        if len(calls) == 1:
            raise redis.ConnectionError("Redis went away")
        return real(*args, **kw)

    monkeypatch.setattr(eng, "_gas_reading", away_once)
    with pytest.raises(redis.ConnectionError):
        eng.read_streams(False)
    # The heartbeat before it is handled and acked, with its memory; the alarm and the rest are not.
    assert group_info(city)["pending"] == 2
    assert memory(city, "A0001").last_seen == t and memory(city, "A0003") is None
    assert alerts(city) == []

    assert eng.read_streams(True) is True  # the engine comes back: its own pending entries first
    assert eng.read_streams(True) is False
    (a,) = gas_alarms(city, "A0002")
    assert a["count"] == 1
    assert memory(city, "A0003").last_seen == t
    assert group_info(city)["pending"] == 0


def test_a_stale_active_prefetch_only_takes_the_slow_path(city, monkeypatch):
    """A dispatcher resolved the alert after the prefetch: the slow path sees it, and a new alarm opens a new one."""
    eng, store = city["alert_engine"], city["store"]
    t = time.time() - 10
    monkeypatch.setattr(store, "active_subjects", lambda types, subjects: set(subjects))
    push(city, heartbeats(20, 200, t) + [ev("A0005", t + 5, "high", 65.0)])
    drain(city)
    assert [a["sensor_id"] for a in alerts(city)] == ["A0005"]
    assert memory(city, "A0019").last_seen == max(float(f["ts"]) for f in heartbeats(20, 200, t)
                                                  if f["sensor"] == "A0019")


def offline_alerts(city) -> dict[str, dict]:
    return {a["sensor_id"]: a for a in alerts(city) if a["type"] == SENSOR_OFFLINE}


def test_the_sweep_marks_silent_sensors_offline_once_and_again_after_they_were_heard(city):
    s, eng = city["settings"], city["alert_engine"]
    silence = s.sensor_heartbeat_s * s.sensor_offline_after
    now = time.time()
    push(city, [ev("A0001", now - silence - 60), ev("A0002", now - 5)])
    drain(city)

    eng.sweep_offline(now)
    off = offline_alerts(city)
    assert list(off) == ["A0001"], "only the sensor silent for longer than its heartbeats allow is offline"
    assert off["A0001"]["details"]["last_seen"] == now - silence - 60
    first_id = off["A0001"]["id"]
    before = row_counts(city)
    eng.sweep_offline(now + 15)
    assert row_counts(city) == before, "a sensor still offline changes nothing on the next sweep"

    # A0001 is heard again, then both fall silent: A0001 is offline again (same alert, count 2), A0002 opens.
    push(city, [ev("A0001", now + 20)])
    drain(city)
    assert offline_alerts(city)["A0001"]["returned_to_normal_at"] == now + 20
    eng.sweep_offline(now + 20 + silence + 60)
    off = offline_alerts(city)
    assert sorted(off) == ["A0001", "A0002"]
    assert off["A0001"]["id"] == first_id and off["A0001"]["count"] == 2
    assert off["A0001"]["returned_to_normal_at"] is None


def test_a_new_engine_sweeps_sensors_it_never_read_events_of(city):
    """Readings written by ingest before this engine started count as heard (read from Redis once)."""
    s = city["settings"]
    silence = s.sensor_heartbeat_s * s.sensor_offline_after
    live = LiveState(city["redis"], s.redis_namespace)
    now = time.time()
    readings = [GasReading(sensor_id="B0001", ts=now - silence - 30, lel_pct=0.0, source="anjian"),
                GasReading(sensor_id="B0002", ts=now - 1, lel_pct=0.0, source="anjian")]
    live.apply_sensor_readings(readings, ["normal", "normal"])
    eng = AlertEngine(s, city["engine"], city["redis"], city["store"], s.mqtt_url)
    eng.registry.load()
    eng.sweep_offline(now)
    assert list(offline_alerts(city)) == ["B0001"]
