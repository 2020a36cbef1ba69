"""Faults: a broker restart, a Redis restart, an ingest worker killed mid-stream.
Each uses its own broker or Redis process (on a free port) so it can be killed
without disturbing anything else.  Nothing valid may be lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from data.models import SensorReadingRow
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.close import at
from tests.mqttkit import Publisher, both_mqtt_paths, wait_until
from tests.servicekit import Mosquitto, RedisServer

ROOT = Path(__file__).resolve().parents[2]


def count(engine, model):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def distinct_msg_ids(engine):
    with engine.connect() as conn:
        return set(conn.execute(select(SensorReadingRow.msg_id)).scalars())


def readings(prefix: str, start: int, n: int):
    now = time.time()
    for i in range(start, start + n):
        yield f"{prefix}/v1/sensors/S1/state", {"ts": now + i * 1e-3, "lel": i % 20, "msg_id": f"m{i}"}


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


def test_broker_restart_loses_no_alarm(settings, sqlite_engine, redis_client, broker):
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={"mqtt_url": broker.url, "mqtt_reconnect_max_s": 1.0})
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    try:
        assert w.conn.subscribed.wait(10)
        with Publisher(broker.url) as pub:
            for topic, body in readings(s.mqtt_prefix, 0, 50):
                pub.publish(topic, body)
        wait_until(lambda: count(sqlite_engine, SensorReadingRow) == 50)
        broker.stop()
        wait_until(lambda: not w.conn.connected.is_set())
        broker.start()
        # The worker reconnects and subscribes again by itself.
        assert wait_until(lambda: w.conn.connected.is_set(), 15)
        with Publisher(broker.url) as pub:
            for topic, body in readings(s.mqtt_prefix, 50, 50):
                pub.publish(topic, body)
        wait_until(lambda: count(sqlite_engine, SensorReadingRow) == 100, 15)
        assert w.conn.connects >= 2
    finally:
        w.stop()


def test_messages_queued_while_the_worker_is_away_are_delivered(settings, sqlite_engine, redis_client, broker):
    """The persistent session: alarms published while ingest restarts are not lost."""
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={"mqtt_url": broker.url})
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    assert w.conn.subscribed.wait(10)
    w.stop()
    with Publisher(broker.url) as pub:
        for topic, body in readings(s.mqtt_prefix, 0, 40):
            pub.publish(topic, body, qos=1)
    w2 = IngestWorker(s, sqlite_engine, redis_client)  # same client id: same session
    w2.start()
    try:
        wait_until(lambda: count(sqlite_engine, SensorReadingRow) == 40, 15)
    finally:
        w2.stop()


def test_redis_restart_loses_nothing_and_the_worker_keeps_running(settings, sqlite_engine, tmp_path):
    write_small_city(sqlite_engine)
    rs = RedisServer(tmp_path)
    rs.start()
    client = redis.Redis.from_url(rs.url, socket_timeout=2, retry_on_timeout=False)
    s = settings.model_copy(update={"redis_url": rs.url})
    w = IngestWorker(s, sqlite_engine, client)
    w.start()
    try:
        assert w.conn.subscribed.wait(10)
        with Publisher(s.mqtt_url) as pub:
            for topic, body in readings(s.mqtt_prefix, 0, 30):
                pub.publish(topic, body)
            wait_until(lambda: count(sqlite_engine, SensorReadingRow) == 30)
            rs.stop()
            for topic, body in readings(s.mqtt_prefix, 30, 30):  # while Redis is down
                pub.publish(topic, body)
            time.sleep(1.0)
            assert count(sqlite_engine, SensorReadingRow) == 30, "stored although Redis was down"
            rs.start()
        wait_until(lambda: count(sqlite_engine, SensorReadingRow) == 60, 20)
        assert distinct_msg_ids(sqlite_engine) == {f"m{i}" for i in range(60)}
        assert w._thread.is_alive()
    finally:
        w.stop()
        rs.stop()


@both_mqtt_paths
def test_worker_killed_mid_stream_loses_nothing(settings, tmp_path, broker):
    """kill -9 of an `app.py ingest` process while messages flow; a restart with
    the same worker number picks up its session; every msg_id is stored once."""
    db = tmp_path / "kill.sqlite3"
    from data.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    write_small_city(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIAN_")}
    env.update(ANJIAN_MQTT_URL=broker.url, ANJIAN_REDIS_URL=settings.redis_url, ANJIAN_DATABASE_URL=f"sqlite:///{db}",
               ANJIAN_DATA_DIR=str(tmp_path / "var"), ANJIAN_MQTT_PREFIX=settings.mqtt_prefix,
               ANJIAN_REDIS_NAMESPACE=settings.redis_namespace, ANJIAN_MQTT_CLIENT_ID=f"k{uuid.uuid4().hex[:6]}",
               ANJIAN_INGEST_BATCH_MAX="50", ANJIAN_MQTT_FAST_PATH=str(settings.mqtt_fast_path).lower())

    def start():
        p = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "ingest", "--worker-no", "0"], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ingest.log", "ab"))
        return p

    n = 3000
    proc = start()
    try:
        with Publisher(broker.url) as pub:
            gen = list(readings(settings.mqtt_prefix, 0, n))
            # The worker is subscribed (a persistent session from here on) once it
            # stores the first message, sent again until it does (the same msg_id:
            # stored once): on a busy machine its start takes seconds.

            def first_stored():
                pub.client.publish(gen[0][0], __import__("json").dumps(gen[0][1]), qos=1)
                return count(engine, SensorReadingRow) >= 1

            wait_until(first_stored, 60, 0.5)
            for k, (topic, body) in enumerate(gen[1:], 1):
                pub.client.publish(topic, __import__("json").dumps(body), qos=1)
                if k == n // 3:
                    time.sleep(0.3)
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(10)
            time.sleep(1.0)
        stored_at_kill = count(engine, SensorReadingRow)
        assert stored_at_kill < n, "the worker finished before it was killed; the test proves nothing"
        proc = start()
        try:
            wait_until(lambda: count(engine, SensorReadingRow) == n, 60, 0.25)
        except AssertionError:
            got = distinct_msg_ids(engine)
            missing = sorted({f"m{i}" for i in range(n)} - got, key=lambda m: int(m[1:]))
            log_tail = (tmp_path / "ingest.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"stored {len(got)} of {n} ({stored_at_kill} at the kill); missing {len(missing)}: "
                                 f"{missing[:5]} ... {missing[-5:]}; the workers' log ends:\n{log_tail}") from None
        assert distinct_msg_ids(engine) == {f"m{i}" for i in range(n)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        engine.dispose()


def test_a_stalled_database_holds_back_only_history(settings, tmp_path, redis_client):
    """SQL stalls (another writer holds SQLite's write lock for a few seconds): the
    worker's front thread goes on putting readings into live state, where the
    screens and the alert engine read them; history catches up afterwards, every
    reading once."""
    import sqlite3

    from data.db import make_engine, migrate
    from data.live import LiveState

    db = tmp_path / "stall.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    write_small_city(engine)
    s = settings.model_copy(update={"ingest_batch_max": 10})
    w = IngestWorker(s, engine, redis_client)
    w.start()
    live = LiveState(redis_client, s.redis_namespace)
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        assert w.conn.subscribed.wait(10)
        blocker.execute("BEGIN IMMEDIATE")  # the write lock, held
        with Publisher(s.mqtt_url) as pub:
            for topic, body in readings(s.mqtt_prefix, 0, 5):
                pub.publish(topic, body, qos=1)
        # Live state follows while history cannot be written.
        st = wait_until(lambda: (x := live.sensor_states(["S1"]).get("S1")) and x.lel_pct == 4 and x, 10)
        assert st.level == "normal"
        assert count(engine, SensorReadingRow) == 0
        time.sleep(2.0)
        assert count(engine, SensorReadingRow) == 0, "stored although the database was locked"
        blocker.execute("ROLLBACK")
        wait_until(lambda: count(engine, SensorReadingRow) == 5, 20)
        assert distinct_msg_ids(engine) == {f"m{i}" for i in range(5)}
        assert w._thread.is_alive() and all(t.is_alive() for t in w.stage_threads.values())
    finally:
        blocker.close()
        w.stop()


def test_an_alarm_does_not_wait_for_the_threads_behind_the_front_one(settings, tmp_path, redis_client):
    """Overload: the threads after the front one cannot take more (here the database
    is locked, so history stops and the geo thread waits for it), the queues between
    the threads are full, and pings keep coming.  An alarm published then still
    reaches live state (the screens and the alert engine) at once, and everything
    is stored once the database is back: the alarm, and the fixes before and after it."""
    import sqlite3

    from data.db import make_engine, migrate
    from data.live import LiveState
    from data.models import PingRow
    from tests.citykit import ENTERPRISE_A

    db = tmp_path / "overload.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    write_small_city(engine)
    # Small batches and one batch of room between the threads: a few dozen fixes fill the pipeline.
    s = settings.model_copy(update={"ingest_batch_max": 10, "ingest_catch_up_max": 10})
    w = IngestWorker(s, engine, redis_client)
    w.start()
    live = LiveState(redis_client, s.redis_namespace)
    blocker = sqlite3.connect(db, isolation_level=None)
    p = s.mqtt_prefix
    t0 = time.time() - 600
    try:
        assert w.conn.subscribed.wait(10)
        blocker.execute("BEGIN IMMEDIATE")
        with Publisher(s.mqtt_url) as pub:
            for k in range(200):
                pub.publish(f"{p}/v1/inspectors/I1/location", {"ts": t0 + k, "lat": ENTERPRISE_A[1],
                                                                "lon": ENTERPRISE_A[2], "msg_id": f"f{k}"}, qos=0)
            # The pipeline is full: fixes wait in the ping queue, behind batches that cannot be stored.
            wait_until(lambda: w.ping_q.qsize() > 0, 10)
            pub.publish(f"{p}/v1/sensors/S1/state", {"ts": time.time(), "lel": 62, "alarm": "high", "msg_id": "a1"})
            st = wait_until(lambda: (x := live.sensor_states(["S1"]).get("S1")) and x.level == "high" and x, 5)
            assert st.lel_pct == 62
            assert w.ping_q.qsize() > 0, "the fixes before the alarm were all taken: nothing was overtaken"
            for k in range(200, 220):
                pub.publish(f"{p}/v1/inspectors/I1/location", {"ts": t0 + k, "lat": ENTERPRISE_A[1],
                                                                "lon": ENTERPRISE_A[2], "msg_id": f"f{k}"}, qos=0)
        assert count(engine, SensorReadingRow) == 0
        blocker.execute("ROLLBACK")
        wait_until(lambda: count(engine, SensorReadingRow) == 1 and count(engine, PingRow) == 220, 30)
        assert distinct_msg_ids(engine) == {"a1"}
        assert w.shed == 0
        assert w._thread.is_alive() and all(t.is_alive() for t in w.stage_threads.values())
    finally:
        blocker.close()
        w.stop()


def test_shedding_keeps_each_inspectors_newest_fix_on_the_map(settings, sqlite_engine, redis_client):
    """Overload: the ping queue is full (here: 200 fixes arrive before the worker's
    threads take any, into a queue of 20).  An inspector sends 200 fixes and then
    falls silent (a phone in a basement).  The map must show the last fix received,
    and every fix is either stored or counted as shed.  When the newest ping gave
    way instead of the oldest, the map showed fix 19 of 0..199 for good: the last
    fixes received were shed, and nothing came after them to supersede them."""
    from data.live import LiveState
    from data.models import PingRow
    from tests.citykit import ENTERPRISE_A

    write_small_city(sqlite_engine)
    n, room = 200, 20
    s = settings.model_copy(update={"ingest_queue_max": room})
    w = IngestWorker(s, sqlite_engine, redis_client)
    topic = f"{s.mqtt_prefix}/v1/inspectors/I1/location".encode()
    t0 = time.time() - 600
    for k in range(n):  # as paho's thread hands them over, faster than anything takes them
        body = {"ts": t0 + k, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2] + k * 1e-5, "msg_id": f"f{k}"}
        w._on_raw_publish(topic, json.dumps(body).encode(), 0, 0)
    assert (w.shed, w.ping_q.qsize()) == (n - room, room)
    w.start()
    try:
        wait_until(lambda: count(sqlite_engine, PingRow) == room and w.ping_q.qsize() == 0, 30)
        shown = LiveState(redis_client, s.redis_namespace).inspector_fixes(["I1"])["I1"]
        assert shown.ts == at(t0 + n - 1), (
            f"the map shows fix {shown.ts - t0:.0f} of 0..{n - 1}: the newest fixes were shed")
        with sqlite_engine.connect() as conn:
            stored = set(conn.execute(select(PingRow.msg_id)).scalars())
        # Every fix stored or counted as shed, none twice; those kept were the newest.
        assert stored == {f"f{k}" for k in range(n - room, n)} and w.shed == n - room
        assert w._thread.is_alive() and all(t.is_alive() for t in w.stage_threads.values())
    finally:
        w.stop()


def test_a_shed_ping_is_counted_as_shed_not_again_as_a_sequence_gap(settings, sqlite_engine, redis_client):
    """A phone that numbers its fixes (``seq``) lets the ingest see fixes lost before
    they reached it (docs/mqtt.md, "Sequence gaps").  Fixes the worker shed itself did
    reach it: they are counted as shed, once, and are no gap.  Before, each of them was
    counted twice, and health blamed the network for the ingest's own shedding."""
    from data.live import LiveState
    from tests.citykit import ENTERPRISE_A

    write_small_city(sqlite_engine)
    n, room = 200, 20
    s = settings.model_copy(update={"ingest_queue_max": room})
    w = IngestWorker(s, sqlite_engine, redis_client)
    live = LiveState(redis_client, s.redis_namespace)
    t0 = time.time() - 600
    live.track_sequences([("i", "I1", 0)])  # the phone was heard before: its counter stands at 0
    # Fixes of an inspector nobody registered, shed: no counter is kept for them.
    for k in range(1, 3):
        body = {"ts": t0 + k, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2], "seq": k}
        w._on_raw_publish(f"{s.mqtt_prefix}/v1/inspectors/NOBODY/location".encode(), json.dumps(body).encode(), 0, 0)
    for k in range(1, n + 1):
        body = {"ts": t0 + k, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2], "seq": k, "msg_id": f"g{k}"}
        w._on_raw_publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location".encode(), json.dumps(body).encode(), 0, 0)
    assert w.shed == n + 2 - room
    w.start()
    try:
        wait_until(lambda: w.ping_q.qsize() == 0 and w.processed >= room, 30)
        time.sleep(0.5)
        counters, _at, _device = live.sequence_gap()
        assert counters.get("gap", 0) == 0, counters
        # A fix lost on the way still shows: seq 201 never comes, 202 does.
        with Publisher(s.mqtt_url) as pub:
            assert w.conn.subscribed.wait(10)
            pub.publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location",
                        {"ts": t0 + n + 2, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2], "seq": n + 2}, qos=1)
        wait_until(lambda: live.sequence_gap()[0].get("gap", 0) == 1, 10)
        assert not redis_client.hexists(live.key("seq"), "i:NOBODY")
    finally:
        w.stop()


def test_a_burst_of_readings_while_history_stalls_is_all_stored(settings, tmp_path, redis_client):
    """1,500 QoS 1 readings arrive while the database is locked, so the worker
    acknowledges none of them for a while.  The worker announces its Receive
    Maximum (ingest/client.py), so the broker hands them all over instead of
    keeping 20 in flight (Mosquitto's default) and queueing the rest up to its
    max_queued_messages (1,000 by default), past which it drops them silently.
    All 1,500 are stored once the database is back."""
    import sqlite3

    from data.db import make_engine, migrate

    db = tmp_path / "burst.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    write_small_city(engine)
    w = IngestWorker(settings, engine, redis_client)
    w.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        assert w.conn.subscribed.wait(10)
        blocker.execute("BEGIN IMMEDIATE")
        infos = []
        with Publisher(settings.mqtt_url) as pub:
            for topic, body in readings(settings.mqtt_prefix, 0, 1500):
                infos.append(pub.client.publish(topic, json.dumps(body), qos=1))
            for info in infos:
                info.wait_for_publish(20)  # the broker has each one
        time.sleep(1.0)
        assert count(engine, SensorReadingRow) == 0
        blocker.execute("ROLLBACK")
        wait_until(lambda: count(engine, SensorReadingRow) == 1500, 30)
        assert distinct_msg_ids(engine) == {f"m{i}" for i in range(1500)}
    finally:
        blocker.close()
        w.stop()
