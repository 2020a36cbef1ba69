"""Anjian on a Redis Cluster (issue 14 §4, ``ANJIAN_REDIS_CLUSTER=true``).

A local cluster of 3 masters and 3 replicas of the installed ``redis-server``
(``tests.servicekit.RedisCluster``, made with ``redis-cli --cluster create``)
stands for the production cluster.  Live state, the engine's streams, leases and
scripts run on it unchanged; every key carries the namespace as a hash tag, so
each multi-key script and transaction stays in one slot.  The fault test kills
the master that serves that slot mid burst (``kill -9``); its replica takes over,
and every acknowledged alarm is in history and counted in its alert once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select

from alerts.escalation import Ladder
from data.alert_store import AlertStore
from data.live import LiveState, connect
from data.models import Alert, Sensor, SensorReadingRow
from geo.types import GasReading, Ping
from ingest.alert_engine import AlertEngine
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.mqttkit import Publisher, wait_until
from tests.servicekit import RedisCluster


@pytest.fixture(scope="module")
def rcluster(tmp_path_factory):
    c = RedisCluster(tmp_path_factory.mktemp("rc"))
    c.start()
    yield c
    c.stop()


@pytest.fixture
def csettings(settings, rcluster):
    return settings.model_copy(update={"redis_url": rcluster.url, "redis_cluster": True})


def keys_everywhere(rcluster, prefix: str) -> list[str]:
    """Every key under ``prefix`` on every master (a cluster's SCAN is per node)."""
    import redis

    out = []
    for port in rcluster.procs:
        r = redis.Redis(port=port)
        if r.execute_command("ROLE")[0] == b"master":
            out += [k.decode() for k in r.scan_iter(match=prefix + ":*", count=1000)]
    return out


def test_live_state_on_a_cluster_keeps_every_key_in_one_slot(csettings, rcluster):
    assert csettings.redis_prefix == "{" + csettings.redis_namespace + "}"
    r = connect(csettings.redis_url, cluster=True)
    live = LiveState(r, csettings.redis_prefix)
    now = time.time()
    pings = [Ping("I1", now, 22.6, 114.0, acc_m=5.0, msg_id="p1"), Ping("I2", now, 22.7, 114.1, acc_m=5.0, msg_id="p2")]
    assert live.apply_pings(pings) == [0, 0]
    assert live.apply_pings(pings[:1]) == [2], "a redelivered msg_id is applied once"
    fixes = live.inspector_fixes(["I1", "I2"])
    assert sorted(fixes) == ["I1", "I2"] and fixes["I2"].lat == pytest.approx(22.7)
    rd = [GasReading("S1", now, lel_pct=30.0, alarm="high", msg_id="g1")]
    assert [st for st, _ in live.apply_sensor_readings(rd, ["high"])] == [0]
    assert live.sensor_states(["S1"])["S1"].level == "high"
    assert live.track_sequences([("s", "S1", 1), ("s", "S1", 4)])[0] == 2
    live.set_availability("sensor", "S1", False, now)
    assert live.availability("sensor")["S1"][0] is False
    live.count_lost("test", 1)
    live.heartbeat("w0", lag=0.1)
    assert "w0" in live.workers()
    assert live.version() >= 2
    keys = keys_everywhere(rcluster, csettings.redis_prefix)
    assert len(keys) >= 8, keys
    slots = {r.keyslot(k) for k in keys}
    assert slots == {r.keyslot(csettings.redis_prefix)}, "a key left the namespace's slot"


def test_the_screens_change_feed_login_throttle_and_leases_on_a_cluster(csettings):
    """What the web process and the engines use besides live state: the change feed
    the screens follow (XREAD, blocking), the login throttle, the engine's lease."""
    from data.engine_streams import EngineStreams
    from data.login_throttle import LoginThrottle
    from data.screen_queries import newest_change_id, read_changes

    r = connect(csettings.redis_url, cluster=True)
    live = LiveState(r, csettings.redis_prefix)
    start = newest_change_id(live)
    live.apply_pings([Ping("I9", time.time(), 22.6, 114.0, msg_id="c1")])
    got = read_changes(live, start, 10, 200)
    assert [f[b"kind"] for _id, f in got] == [b"inspector"] and got[0][1][b"ids"] == b"I9"
    assert read_changes(live, got[-1][0], 10, 100) == [], "blocks, then nothing new"
    throttle = LoginThrottle(r, csettings.redis_prefix, max_failures=2, lockout_s=60)
    assert throttle.retry_after_s("chen", "10.0.0.1") == 0
    throttle.fail("chen", "10.0.0.1")
    throttle.fail("chen", "10.0.0.1")
    assert throttle.retry_after_s("chen", "10.0.0.1") > 0
    throttle.reset("chen", "10.0.0.1")
    assert throttle.retry_after_s("chen", "10.0.0.1") == 0
    streams = EngineStreams(r, live, ("gas:events",), "engine")
    assert streams.lease("a", 3.0) and not streams.lease("b", 3.0) and streams.lease("a", 3.0)


def test_the_geo_engine_on_a_cluster_finds_a_duplicate_visit_and_counts_heat(csettings, engine):
    """The geo engine's scripts (visit states compare-and-set, heat) on the cluster."""
    from data.geo_store import GeoStore
    from data.registry import Registry
    from tests.geo.test_geo_store_e2e import leave, stay, visits

    write_small_city(engine)
    reg = Registry(engine)
    reg.load()
    r = connect(csettings.redis_url, cluster=True)
    geo = GeoStore(csettings, engine, r, reg)
    t0 = time.time() - 4 * 3600
    geo.process(stay("I1", t0, 15))  # unit U1
    geo.process(leave("I1", t0 + 15 * 60))
    geo.process(stay("I2", t0 + 2 * 3600, 12))  # unit U2, the same enterprise two hours later
    geo.process(leave("I2", t0 + 2 * 3600 + 12 * 60))
    rows = visits(engine)
    assert len(rows) == 2 and rows[1].duplicate_of == rows[0].id
    heat = [k for k in keys_everywhere_client(r, csettings.redis_prefix) if ":heat:" in k]
    assert heat, "no heat counted"


def keys_everywhere_client(r, prefix: str) -> list[str]:
    return [k.decode() for k in r.scan_iter(match=prefix + ":*", count=1000, target_nodes=r.PRIMARIES)]


def small_city_with_sensors(engine, n: int) -> list[str]:
    write_small_city(engine)
    ids = [f"K{i:03d}" for i in range(n)]
    with engine.begin() as conn:
        conn.execute(insert(Sensor), [{"id": s, "enterprise_id": "E1", "lat": 22.62, "lon": 114.02,
                                       "street_id": "ST1", "grid_id": "G1"} for s in ids])
    return ids


def test_ingest_and_alert_engine_run_on_a_cluster(csettings, sqlite_engine):
    sensors = small_city_with_sensors(sqlite_engine, 5)
    r = connect(csettings.redis_url, cluster=True)
    store = AlertStore(sqlite_engine, LiveState(r, csettings.redis_prefix), Ladder.from_settings(csettings),
                       mqtt_prefix=csettings.mqtt_prefix)
    eng = AlertEngine(csettings, sqlite_engine, r, store, csettings.mqtt_url)
    w = IngestWorker(csettings, sqlite_engine, r)
    w.start()
    eng.start()
    try:
        assert w.conn.subscribed.wait(15)
        now = time.time()
        with Publisher(csettings.mqtt_url) as pub:
            for i, s in enumerate(sensors):
                pub.publish(f"{csettings.mqtt_prefix}/v1/sensors/{s}/state",
                            {"ts": now + i * 1e-3, "lel": 40, "msg_id": f"a{i}"}, qos=1)

        def opened():
            with sqlite_engine.connect() as conn:
                return sorted(conn.execute(select(Alert.sensor_id).where(Alert.type == "gas_alarm")).scalars())
        assert wait_until(lambda: opened() == sensors, 20), opened()
    finally:
        eng.stop()
        w.stop()


def test_the_engines_loss_count_runs_inside_the_cluster(csettings, sqlite_engine):
    """The alert engine counts gas events deleted before it read them with a script
    inside Redis (``EngineStreams._deleted_unread``); on a cluster that script must
    route to the namespace's slot.  In both lanes: entries deleted unread behind a
    backlog that is still there are counted once, and nothing is counted twice."""
    from data.engine_streams import GROUP
    from data.live import GAS_LANES, LOST_UNREAD

    small_city_with_sensors(sqlite_engine, 1)
    r = connect(csettings.redis_url, cluster=True)
    live = LiveState(r, csettings.redis_prefix)
    store = AlertStore(sqlite_engine, live, Ladder.from_settings(csettings), mqtt_prefix=csettings.mqtt_prefix)
    eng = AlertEngine(csettings, sqlite_engine, r, store, csettings.mqtt_url)
    eng._ensure_groups()
    for k, lane in enumerate(GAS_LANES, start=1):
        key = eng.streams.key(lane)
        ids = [r.xadd(key, {"sensor": "X", "ts": str(i), "level": "normal"}) for i in range(5)]
        got = r.xreadgroup(GROUP, eng.consumer, {key: ">"}, count=1)  # the engine read one
        r.xack(key, GROUP, got[0][1][0][0])
        r.xdel(key, ids[1], ids[2])  # two it never read, deleted; two still waiting behind them
        eng.check_gas_loss()
        assert live.counters("events_lost").get(LOST_UNREAD) == 2 * k, lane
        eng.check_gas_loss()
        assert live.counters("events_lost").get(LOST_UNREAD) == 2 * k, f"{lane}: counted twice"


def test_a_master_killed_mid_burst_loses_no_acknowledged_alarm(tmp_path, rcluster, namespace):
    """``app.py ingest``, ``alerts`` and ``web`` on the cluster, as docs/deploy.md starts
    them.  Gas alarms flow (QoS 1, unique msg_ids); mid burst the master that holds
    the namespace's slot is killed (``kill -9``) and its replica takes over.  Every
    alarm the broker acknowledged is in history once, and counted once in its
    sensor's alert; the web answers throughout and names the replicas in health."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from data.db import make_engine, migrate
    from data.embedded import free_port
    from tests.appkit import clean_env, get_json
    from tests.conftest import TEST_MQTT_URL

    root = Path(__file__).resolve().parents[2]
    app = [sys.executable, str(root / "app.py")]
    db = tmp_path / "anjian.sqlite3"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    sensors = small_city_with_sensors(engine, 30)
    per_sensor = 20
    port = free_port(18250)
    env = clean_env(ANJIAN_DATA_DIR=tmp_path / "var", ANJIAN_MQTT_URL=TEST_MQTT_URL, ANJIAN_REDIS_URL=rcluster.url,
                    ANJIAN_REDIS_CLUSTER="true", ANJIAN_DATABASE_URL=f"sqlite:///{db}", ANJIAN_MQTT_PREFIX=namespace,
                    ANJIAN_REDIS_NAMESPACE=namespace, ANJIAN_MQTT_CLIENT_ID=f"{namespace}-ingest",
                    ANJIAN_MQTT_SESSION_EXPIRY_S=120, ANJIAN_WEB_PORT=port, ANJIAN_INGEST_BATCH_MAX=20)
    token = subprocess.run([*app, "token", "create", "--role", "dispatcher"], env=env, cwd=tmp_path, check=True,
                           capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    procs: dict[str, subprocess.Popen] = {}
    logs = {n: tmp_path / f"{n}.log" for n in ("ingest", "alerts", "web")}
    for name, argv in (("ingest", ["ingest", "--worker-no", "0"]), ("alerts", ["alerts"]), ("web", ["web"])):
        with logs[name].open("w") as out:
            procs[name] = subprocess.Popen([*app, *argv], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True)
    killed = None
    base = f"http://127.0.0.1:{port}"

    def tail(name: str) -> str:
        return logs[name].read_text(errors="replace")[-3000:]

    def stored() -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(select(SensorReadingRow.msg_id)).scalars())

    try:
        def up():
            dead = {n: p.poll() for n, p in procs.items() if p.poll() is not None}
            assert not dead, {n: tail(n) for n in dead}
            try:
                h = get_json(f"{base}/api/v1/health")
            except OSError:
                return False
            return h["ingest_workers"] == 1 and "MQTT connected" in tail("alerts") and h

        wait_until(up, 120, 0.5)
        master = rcluster.master_of("{" + namespace + "}")
        sent = []
        now = time.time()
        with Publisher(TEST_MQTT_URL) as pub:
            # The ingest subscribes (a persistent session from here on) before the burst:
            # the first alarm is sent again until it is stored (the same msg_id: once).
            first = (f"{namespace}/v1/sensors/{sensors[0]}/state", {"ts": now, "lel": 40, "msg_id": "r0-0"})

            def first_stored():
                pub.publish(*first)
                return "r0-0" in stored()

            wait_until(first_stored, 60, 0.5)
            sent.append("r0-0")
            for k in range(1, per_sensor):
                for i, sid in enumerate(sensors):
                    msg = f"r{k}-{i}"
                    pub.publish(f"{namespace}/v1/sensors/{sid}/state",
                                {"ts": now + k + i * 1e-3, "lel": 40, "msg_id": msg})
                    sent.append(msg)
                if k == per_sensor // 3:
                    rcluster.kill(master)
                    killed = master
                time.sleep(0.05)
            # the first reading of sensors 1.. (k = 0), after the rest: late, and counted too
            for i, sid in enumerate(sensors[1:], 1):
                pub.publish(f"{namespace}/v1/sensors/{sid}/state", {"ts": now + i * 1e-3, "lel": 40,
                                                                    "msg_id": f"r0-{i}"})
                sent.append(f"r0-{i}")
        assert len(sent) == len(set(sent)) == len(sensors) * per_sensor
        rcluster.wait_failover(master, "{" + namespace + "}")

        def all_stored():
            return len(stored()) == len(sent)

        try:
            wait_until(all_stored, 90, 0.5)
        except AssertionError:
            missing = sorted(set(sent) - stored())
            raise AssertionError(f"{len(missing)} acknowledged alarms not in history: {missing[:10]}\n"
                                 f"{tail('ingest')}") from None

        def counted():
            with engine.connect() as conn:
                rows = conn.execute(select(Alert.sensor_id, Alert.count).where(Alert.type == "gas_alarm")).all()
            return rows

        def each_counted_once():
            rows = counted()
            return sorted(s for s, _ in rows) == sensors and all(c == per_sensor for _, c in rows)

        try:
            wait_until(each_counted_once, 60, 0.5)
        except AssertionError:
            raise AssertionError(f"alerts (sensor, count), {per_sensor} each expected: {sorted(counted())}\n"
                                 f"{tail('alerts')}") from None
        alerts = get_json(f"{base}/api/v1/alerts?state=open&limit=500", token)
        listed = {a["sensor_id"] for a in alerts if a["type"] == "gas_alarm"}
        assert listed == set(sensors), "the API lists every sensor's alert"
        h = get_json(f"{base}/api/v1/health")
        assert h["redis"] == "ok" and h["redis_replicas"]["wanted"] == 1, h
        # The promoted master has no replica until the killed node comes back: said so.
        assert h["redis_replicas"]["have"] == 0 and h["status"] == "degraded", h
        assert any("replicas" in r for r in h.get("reasons", [])), h
        assert all(p.poll() is None for p in procs.values()), {n: tail(n) for n in procs}
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        for n, p in procs.items():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        engine.dispose()
        if killed is not None:  # back as a replica, for the module's other tests
            rcluster.start_node(killed)
            rcluster.wait_ok()
