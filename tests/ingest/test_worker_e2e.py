"""End to end through the real Mosquitto, Redis and SQL: publish as devices do,
then look where a user would look (live state, history, dead letters)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from data.live import LiveState
from data.models import DeadLetter, PingRow, SensorReadingRow
from geo.coords import wgs84_to_gcj02
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.mqttkit import Publisher, both_mqtt_paths, wait_until
from tests.close import deg


@pytest.fixture
def city_engine(engine):
    write_small_city(engine)
    return engine


@pytest.fixture
def worker(request, settings, city_engine, redis_client):
    # The number of worker threads (ingest/worker.py), 3 unless a test asks.
    w = IngestWorker(settings, city_engine, redis_client, threads=getattr(request, "param", 3))
    w.start()
    assert w.conn.subscribed.wait(10), "worker did not connect to the broker"
    yield w
    w.stop()


@pytest.fixture
def pub(settings):
    p = Publisher(settings.mqtt_url)
    yield p
    p.close()


def count(engine, model, *where):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def dead_letter_reasons(engine):
    with engine.connect() as conn:
        return {r.topic: r.reason for r in conn.execute(select(DeadLetter.topic, DeadLetter.reason))}


@pytest.mark.parametrize("worker", [1, 2, 3], indirect=True, ids=lambda n: f"{n}-threads")
def test_three_formats_reach_live_state_and_history(settings, worker, pub, city_engine, redis_client):
    p = settings.mqtt_prefix
    now = time.time()
    lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]
    pub.publish(f"{p}/v1/inspectors/I1/location", {"ts": now, "lat": lat, "lon": lon, "acc": 8, "msg_id": "m1"})
    pub.publish(f"{settings.owntracks_topic}/liuyang/phone",
                {"_type": "location", "tst": int(now), "lat": lat + 0.001, "lon": lon, "acc": 12, "vel": 18,
                 "batt": 77, "tid": "ly"})
    pub.publish(f"{settings.z2m_topic}/longhua/e2/kitchen/gas",
                {"gas": True, "gas_density": 62, "battery": 90, "linkquality": 120})
    pub.publish(f"{p}/v1/sensors/S1/state", {"ts": now, "lel": 3.5, "alarm": "none", "msg_id": "s1"})

    live = LiveState(redis_client, settings.redis_namespace)
    fixes = wait_until(lambda: (f := live.inspector_fixes(["I1", "I2"])) and len(f) == 2 and f)
    assert fixes["I1"].lat == deg(lat) and fixes["I1"].acc_m == 8
    assert fixes["I2"].source == "owntracks"
    assert fixes["I2"].speed_mps == pytest.approx(5.0)  # OwnTracks vel is km/h
    states = wait_until(lambda: (s := live.sensor_states(["S1", "S2"])) and len(s) == 2 and s)
    assert states["S2"].level == "high"
    assert states["S1"].level == "normal"
    wait_until(lambda: count(city_engine, PingRow) == 2 and count(city_engine, SensorReadingRow) == 2)
    wait_until(lambda: worker.processed == 4)  # every message through the last thread, acknowledged


def test_gcj02_ping_is_stored_in_wgs84(settings, worker, pub, redis_client):
    lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]
    glon, glat = wgs84_to_gcj02(lon, lat)
    pub.publish(f"{settings.mqtt_prefix}/v1/inspectors/I1/location",
                {"ts": time.time(), "lat": glat, "lon": glon, "crs": "gcj02"})
    live = LiveState(redis_client, settings.redis_namespace)
    fix = wait_until(lambda: live.inspector_fixes(["I1"]).get("I1"))
    assert fix.lat == pytest.approx(lat, abs=1e-7) and fix.lon == pytest.approx(lon, abs=1e-7)


@both_mqtt_paths
def test_msg_id_applied_once_and_older_fix_never_overwrites(settings, worker, pub, city_engine, redis_client):
    topic = f"{settings.mqtt_prefix}/v1/inspectors/I1/location"
    now = time.time()
    lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]
    pub.publish(topic, {"ts": now, "lat": lat, "lon": lon, "msg_id": "dup"})
    pub.publish(topic, {"ts": now, "lat": lat, "lon": lon, "msg_id": "dup"})
    pub.publish(topic, {"ts": now - 60, "lat": lat + 0.01, "lon": lon, "msg_id": "late"})
    wait_until(lambda: count(city_engine, PingRow) == 2)
    time.sleep(0.3)
    assert count(city_engine, PingRow) == 2, "the duplicate msg_id was stored twice"
    live = LiveState(redis_client, settings.redis_namespace)
    assert live.inspector_fixes(["I1"])["I1"].lat == deg(lat), "an older fix overwrote the newer one"
    # Counters are flushed after the batch is acked: wait for them, then check
    # that the duplicate is counted once.
    wait_until(lambda: live.counters("dropped").get("duplicate_msg_id") == 1)
    time.sleep(0.3)
    assert live.counters("dropped").get("duplicate_msg_id") == 1


@both_mqtt_paths
def test_bad_messages_are_dead_lettered_with_reasons_and_ingest_keeps_running(settings, worker, pub, city_engine,
                                                                              redis_client):
    p = settings.mqtt_prefix
    now = time.time()
    bad = {
        f"{p}/v1/inspectors/I1/location": b"{not json",
        f"{p}/v1/inspectors/NOBODY/location": {"ts": now, "lat": 22.6, "lon": 114.0},
        f"{p}/v1/inspectors/I2/location": {"ts": now, "lat": 39.9, "lon": 116.4},  # Beijing
        f"{p}/v1/sensors/S1/state": {"ts": now + 86400, "lel": 3},
        f"{p}/v1/sensors/S2/state": {"ts": now, "lel": 250},
    }
    for topic, payload in bad.items():
        pub.publish(topic, payload)
    reasons = wait_until(lambda: (r := dead_letter_reasons(city_engine)) and len(r) == len(bad) and r)
    assert reasons == {
        f"{p}/v1/inspectors/I1/location": "bad_json",
        f"{p}/v1/inspectors/NOBODY/location": "unknown_device",
        f"{p}/v1/inspectors/I2/location": "outside_service_area",
        f"{p}/v1/sensors/S1/state": "ts_in_future",
        f"{p}/v1/sensors/S2/state": "out_of_range",
    }
    # ...and a good message after them still flows.
    pub.publish(f"{p}/v1/inspectors/I1/location", {"ts": now, "lat": 22.62, "lon": 114.02})
    wait_until(lambda: count(city_engine, PingRow) == 1)
    live = LiveState(redis_client, settings.redis_namespace)
    assert sum(live.counters("rejected").values()) == len(bad)


def test_a_device_imported_just_after_a_registry_reload_is_not_dead_lettered(settings, worker, pub, city_engine):
    """An unknown device makes the worker reload its registry, at most every 2 s; a
    device imported within those 2 s must still have its first messages applied."""
    from sqlalchemy import insert

    from data.models import Sensor

    p = settings.mqtt_prefix
    now = time.time()
    pub.publish(f"{p}/v1/sensors/NOBODY/state", {"ts": now, "lel": 1})  # unknown: the worker reloads now
    wait_until(lambda: dead_letter_reasons(city_engine).get(f"{p}/v1/sensors/NOBODY/state") == "unknown_device")
    with city_engine.begin() as conn:  # imported a moment later
        conn.execute(insert(Sensor), [{"id": "SNEW", "enterprise_id": "E1", "lat": 22.62, "lon": 114.02,
                                       "street_id": "ST1", "grid_id": "G1"}])
    pub.publish(f"{p}/v1/sensors/SNEW/state", {"ts": now + 0.5, "lel": 2})
    wait_until(lambda: count(city_engine, SensorReadingRow, SensorReadingRow.sensor_id == "SNEW") == 1, 5)
    assert f"{p}/v1/sensors/SNEW/state" not in dead_letter_reasons(city_engine)


@both_mqtt_paths
def test_a_burst_in_three_formats_is_stored_once_and_acknowledged(settings, sqlite_engine, redis_client):
    """Both message paths (the client's fast path, and paho's own with the
    mqtt_fast_path setting off): a burst of QoS 1 readings and QoS 0 fixes in our
    scheme, OwnTracks and Zigbee2MQTT is stored once each, and acknowledged: a
    worker that takes over the session afterwards gets nothing again."""
    import paho.mqtt.client as mqtt

    from ingest.paho_fast import FastClient as _Client

    write_small_city(sqlite_engine)
    p = settings.mqtt_prefix
    w = IngestWorker(settings, sqlite_engine, redis_client)
    assert w.conn.fast_path is settings.mqtt_fast_path
    assert type(w.conn.client) is (_Client if settings.mqtt_fast_path else mqtt.Client)
    w.start()
    try:
        assert w.conn.subscribed.wait(10)
        now = time.time()
        lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]
        n = 600
        with Publisher(settings.mqtt_url) as pub:
            for i in range(n):
                pub.client.publish(f"{p}/v1/sensors/S1/state",
                                   f'{{"ts": {now - n + i}, "lel": {i % 20}, "msg_id": "r{i}"}}', qos=1)
                if i % 3 == 0:
                    pub.client.publish(f"{p}/v1/inspectors/I1/location",
                                       f'{{"ts": {now - n + i}, "lat": {lat}, "lon": {lon}, "msg_id": "f{i}"}}', qos=0)
            pub.publish(f"{settings.owntracks_topic}/liuyang/phone",
                        {"_type": "location", "tst": int(now), "lat": lat, "lon": lon, "acc": 12})
            pub.publish(f"{settings.z2m_topic}/longhua/e2/kitchen/gas", {"gas": True, "gas_density": 62})
        wait_until(lambda: count(sqlite_engine, SensorReadingRow) == n + 1
                   and count(sqlite_engine, PingRow) == n // 3 + 1, 30)
        wait_until(lambda: w.processed == n + n // 3 + 2)
        live = LiveState(redis_client, settings.redis_namespace)
        assert live.sensor_states(["S2"])["S2"].level == "high"
        assert live.inspector_fixes(["I2"])["I2"].source == "owntracks"
    finally:
        w.stop()
    again = IngestWorker(settings, sqlite_engine, redis_client)  # the same client id: the same session
    again.start()
    try:
        assert again.conn.subscribed.wait(10)
        time.sleep(1.5)
        assert again.processed == 0, "messages came again: they were not acknowledged"
    finally:
        again.stop()
    assert count(sqlite_engine, SensorReadingRow) == n + 1


def test_alarms_are_never_shed_when_the_ping_queue_overflows(settings, city_engine, redis_client):
    small = settings.model_copy(update={"ingest_queue_max": 5})
    w = IngestWorker(small, city_engine, redis_client)
    # Not started: on_message is fed directly, as paho's thread would, while
    # the worker thread is not draining.
    from paho.mqtt.client import MQTTMessage

    def msg(topic, payload):
        m = MQTTMessage(topic=topic.encode())
        m.payload = payload
        m.qos = 0
        return m

    p = small.mqtt_prefix
    # Valid fixes: garbage is refused before the queue (IngestWorker._screen), only valid pings fill it.
    fix = f'{{"ts": {time.time() - 10}, "lat": 22.6, "lon": 114.0}}'.encode()
    for i in range(20):
        w._on_message(msg(f"{p}/v1/inspectors/I1/location", fix))
    for i in range(8):
        w._on_message(msg(f"{p}/v1/sensors/S1/state", b'{"ts": 1, "lel": 60}'))
    assert w.ping_q.qsize() == 5 and w.shed == 15
    assert w.prio_q.qsize() == 8
    batch = w.next_batch()
    assert [i.topic.endswith("/state") for i in batch[:8]] == [True] * 8, "alarms did not come first"


def test_a_topic_that_is_not_utf8_is_dead_lettered_and_the_rest_flow_on(settings, city_engine, redis_client):
    """Mosquitto refuses such topics, but a bridge or a lax broker may pass one on:
    both of paho's paths into the worker (its MQTTMessage and the client's fast
    path) must dead-letter it with a reason, not drop it in paho's thread."""
    from paho.mqtt.client import MQTTMessage

    w = IngestWorker(settings, city_engine, redis_client)
    w._load_registry()
    p = settings.mqtt_prefix
    m = MQTTMessage(topic=f"{p}/v1/sensors/".encode() + b"\xe7\x93/state")  # 瓦 (e7 93 a6) cut short
    m.payload, m.qos = b'{"ts": 1, "lel": 60}', 1
    w._on_message(m)
    w._on_raw_publish(f"{p}/v1/inspectors/".encode() + b"\xff/location", b'{"ts": 1, "lat": 22.6, "lon": 114.0}', 0, 0)
    now = time.time()
    w._on_raw_publish(f"{p}/v1/inspectors/I1/location".encode(),
                      f'{{"ts": {now}, "lat": {ENTERPRISE_A[1]}, "lon": {ENTERPRISE_A[2]}}}'.encode(), 0, 0)
    w.process(w.next_batch())
    reasons = dead_letter_reasons(city_engine)
    assert reasons == {f"{p}/v1/sensors/\\xe7\\x93/state": "unknown_topic",
                       f"{p}/v1/inspectors/\\xff/location": "unknown_topic"}
    with city_engine.connect() as conn:
        details = sorted(conn.execute(select(DeadLetter.detail)).scalars())
    assert all("not valid UTF-8" in d for d in details), details
    assert count(city_engine, PingRow, PingRow.inspector_id == "I1") == 1, "the valid fix beside them was lost"


def test_a_worker_refuses_a_thread_count_it_has_no_split_for(settings, city_engine, redis_client):
    with pytest.raises(ValueError, match="threads must be one of"):
        IngestWorker(settings, city_engine, redis_client, threads=4)


def test_batches_that_waited_are_stored_together_as_if_one_by_one(settings, city_engine, redis_client):
    """A history thread that fell behind writes the batches waiting for it in one
    transaction: every fix, reading and dead letter of each is stored, a msg_id
    repeated across them once, and each batch still counts its own messages."""
    import json

    from ingest.pipeline import HISTORY_FROM, PIPELINE, Batch, Item, run_pipeline, run_together

    w = IngestWorker(settings, city_engine, redis_client)  # not started: its pipeline, without MQTT
    w.registry.load()
    p = settings.mqtt_prefix
    now = time.time()

    def item(topic, body):
        return Item(topic, body if isinstance(body, bytes) else json.dumps(body).encode(), 1, 0, time.time())

    fixes = [item(f"{p}/v1/inspectors/I1/location", {"ts": now - 60 + k, "lat": 22.62, "lon": 114.02,
                                                       "msg_id": f"f{k}"}) for k in range(5)]
    batches = [
        Batch(items=fixes[:2] + [item(f"{p}/v1/sensors/S1/state", {"ts": now, "lel": 4, "msg_id": "s1"})]),
        Batch(items=fixes[2:4] + [item(f"{p}/v1/inspectors/I1/location", b"{not json")]),
        # f3 again: a redelivery that landed in the next batch
        Batch(items=[fixes[4], item(f"{p}/v1/inspectors/I1/location", {"ts": now - 57, "lat": 22.62, "lon": 114.02,
                                                                         "msg_id": "f3"})]),
    ]
    for b in batches:
        run_pipeline(b, w.ctx, until=HISTORY_FROM)
    assert count(city_engine, PingRow) == 0, "nothing is written before the history step"

    run_together(batches, w.ctx)

    assert [b.next_step for b in batches] == [len(PIPELINE)] * 3
    assert count(city_engine, PingRow) == 5 and count(city_engine, SensorReadingRow) == 1
    assert dead_letter_reasons(city_engine) == {f"{p}/v1/inspectors/I1/location": "bad_json"}
    # The redelivered f3 is counted as ignored (a duplicate), not applied: each
    # message in exactly one count.
    assert [dict(b.kinds) for b in batches] == [{"location": 2, "gas_state": 1}, {"location": 2},
                                                {"location": 1}]
    assert [b.dropped["duplicate_msg_id"] for b in batches] == [0, 0, 1]
    with pytest.raises(ValueError, match="same step"):
        run_together([Batch(items=[]), batches[0]], w.ctx)


def test_a_partition_by_topic_applies_every_message_once(settings, sqlite_engine, redis_client):
    """Two workers, one per partition (settings.ingest_topics), as two `app.py ingest`
    processes run them: the sensors worker takes the gas readings (ours and
    Zigbee2MQTT's) on a connection of its own, the locations worker the fixes, OwnTracks
    and unknown topics; the sensor readings its catch-all also receives are counted as
    left to the other partition. Every message is stored once, counted message by
    message, and the two have their own client ids."""
    write_small_city(sqlite_engine)
    p = settings.mqtt_prefix
    sensors = IngestWorker(settings.model_copy(update={"ingest_topics": "sensors"}), sqlite_engine, redis_client)
    places = IngestWorker(settings.model_copy(update={"ingest_topics": "locations"}), sqlite_engine, redis_client)
    assert sensors.worker_id != places.worker_id and "sensors" in sensors.worker_id
    for w in (sensors, places):
        w.start()
    try:
        assert sensors.conn.subscribed.wait(10) and places.conn.subscribed.wait(10)
        now = time.time()
        lat, lon = ENTERPRISE_A[1], ENTERPRISE_A[2]
        n = 300
        with Publisher(settings.mqtt_url) as pub:
            for i in range(n):
                pub.client.publish(f"{p}/v1/sensors/S1/state",
                                   f'{{"ts": {now - n + i}, "lel": {i % 20}, "msg_id": "r{i}"}}', qos=1)
                pub.client.publish(f"{p}/v1/inspectors/I1/location",
                                   f'{{"ts": {now - n + i}, "lat": {lat}, "lon": {lon}, "msg_id": "f{i}"}}', qos=1)
            pub.publish(f"{settings.owntracks_topic}/liuyang/phone",
                        {"_type": "location", "tst": int(now), "lat": lat, "lon": lon, "acc": 12})
            pub.publish(f"{settings.z2m_topic}/longhua/e2/kitchen/gas", {"gas": True, "gas_density": 62})
            pub.publish(f"{p}/v2/sensors/S1/state", {"ts": now, "lel": 1.0})
        wait_until(lambda: sensors.processed == n + 1 and places.processed == n + 2 and places.skipped == n, 30)
        wait_until(lambda: count(sqlite_engine, SensorReadingRow) == n + 1 and count(sqlite_engine, PingRow) == n + 1)
        assert dead_letter_reasons(sqlite_engine) == {f"{p}/v2/sensors/S1/state": "unknown_topic"}
        time.sleep(1.5)  # more than a heartbeat: the counters are flushed
        live = LiveState(redis_client, settings.redis_namespace)
        assert live.counters("dropped").get("other_partition") == n
        assert sensors.received == n + 1 and places.received == 2 * n + 2  # its n fixes, n skipped, OwnTracks, v2
        assert live.sensor_states(["S2"])["S2"].level == "high"
        assert live.inspector_fixes(["I2"])["I2"].source == "owntracks"
        assert set(live.workers()) >= {sensors.worker_id, places.worker_id}
    finally:
        for w in (sensors, places):
            w.stop()
    assert count(sqlite_engine, SensorReadingRow) == n + 1 and count(sqlite_engine, PingRow) == n + 1
