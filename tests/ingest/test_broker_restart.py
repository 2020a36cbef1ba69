"""A broker restart mid-burst loses no alarm (issue 14 §1).

A private Mosquitto with the embedded broker's configuration (persistence on),
an ingest worker, and a device publisher with a persistent session that
publishes QoS 1 gas readings with unique msg_ids throughout: before the
restart, while the broker is down (paho queues them in the publisher and sends
them when it is back), and while the broker is back but the ingest has not
reconnected yet.  Every reading the broker acknowledged must be in SQL history
exactly once, counted message by message.

The earlier broker-restart test (test_faults.py) published only after the
ingest was back, so it missed the loss: with a shared subscription on
Mosquitto 2.0 (``mqtt_shared_subscriptions=always``), everything published
before the ingest subscribed again was lost."""

from __future__ import annotations

import json
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from data.models import SensorReadingRow
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.mqttkit import wait_until
from tests.servicekit import Mosquitto


class DevicePublisher:
    """A gas detector's client: persistent session (clean_session false), QoS 1,
    paho's own reconnect; what it publishes while the broker is away waits in
    paho's queue.  ``sent`` keeps (msg_id, MQTTMessageInfo, broker up, ingest
    connected) per message; a message counts as acknowledged once its PUBACK
    came (``on_publish`` with its mid; fewer than 65,536 messages, so a mid
    names one message)."""

    def __init__(self, broker: Mosquitto):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gas-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311, clean_session=False)
        self._acked_mids: set[int] = set()
        self.client.on_publish = lambda _c, _u, mid, reason_code, _p: (
            None if reason_code.is_failure else self._acked_mids.add(mid))
        self.client.max_queued_messages_set(0)  # no bound: nothing refused while the broker is away
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert wait_until(self.client.is_connected, 10)
        self.sent: list[tuple[str, mqtt.MQTTMessageInfo, bool, bool]] = []

    def publish(self, topic: str, body: dict, *, broker_up: bool, ingest_connected: bool) -> None:
        info = self.client.publish(topic, json.dumps(body), qos=1)
        self.sent.append((body["msg_id"], info, broker_up, ingest_connected))

    def acknowledged(self) -> set[str]:
        acked = set(self._acked_mids)
        return {m for m, info, _up, _conn in self.sent if info.mid in acked}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored_msg_ids(engine) -> tuple[int, set[str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(SensorReadingRow.msg_id).where(SensorReadingRow.sensor_id == "S1")).scalars().all()
    return len(rows), set(rows)


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path)
    b.start()
    yield b
    b.stop()


# (name, seconds the broker stays down, the ingest's first and longest reconnect wait)
OUTAGES = {
    # A graceful restart (SIGTERM, start again at once); the ingest's default backoff.
    "graceful-restart": (0.0, 0.5, 5.0),
    # The broker is back but the ingest is not yet: its reconnect waits 4-8 s, and
    # the device publishes in that window (lost with a shared subscription).
    "ingest-still-away": (0.0, 8.0, 8.0),
    # A longer outage: 10 s down, the device queues in paho meanwhile.
    "ten-second-outage": (10.0, 0.5, 5.0),
}


@pytest.mark.parametrize("outage", list(OUTAGES))
def test_a_broker_restart_mid_burst_loses_no_acknowledged_reading(settings, sqlite_engine, redis_client, broker,
                                                                  outage):
    down_s, first_s, cap_s = OUTAGES[outage]
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={"mqtt_url": broker.url, "mqtt_reconnect_min_s": first_s,
                                    "mqtt_reconnect_max_s": cap_s, "ingest_batch_max": 100})
    w = IngestWorker(s, sqlite_engine, redis_client)
    assert not w.shares(w.conn.protocol), "a single worker subscribes plainly"
    w.start()
    topic = f"{s.mqtt_prefix}/v1/sensors/S1/state"
    pub = None
    try:
        assert w.conn.subscribed.wait(10)
        pub = DevicePublisher(broker)
        broker_up = threading.Event()
        broker_up.set()
        k = 0

        def burst(n: int, pause_s: float = 0.002) -> None:
            nonlocal k
            for _ in range(n):
                body = {"ts": time.time(), "lel": 5 + k % 60, "msg_id": f"r{k}"}
                pub.publish(topic, body, broker_up=broker_up.is_set(), ingest_connected=w.conn.connected.is_set())
                k += 1
                time.sleep(pause_s)

        burst(600)  # the ingest is busy with these when the broker goes
        broker.stop()
        broker_up.clear()
        burst(200, down_s / 200 if down_s else 0.002)  # the broker is down: queued in the device's paho
        broker.start()
        back_at = time.monotonic()
        broker_up.set()
        # The broker is back.  Publish at once, and on until the ingest is back too.
        assert wait_until(pub.client.is_connected, 10)
        while not w.conn.connected.is_set():
            burst(20)
            assert k < 20000, "the ingest never reconnected"
        away_s = time.monotonic() - back_at
        burst(600)
        if outage != "ingest-still-away":
            # Our backoff: the first retry within 0.5 s, the longest wait 5 s (paho's
            # own went to 30 s: a 21.6 s outage kept the ingest away ~10 s longer).
            assert away_s <= cap_s + 1.5, f"the ingest came back {away_s:.1f}s after the broker"
        in_window = [m for m, _i, up, conn in pub.sent if up and not conn]
        if outage == "ingest-still-away":
            assert len(in_window) >= 50, f"only {len(in_window)} published while the ingest was away: no test"
        wait_until(lambda: len(pub.acknowledged()) == len(pub.sent), 30, 0.2)
        acked = pub.acknowledged()
        try:
            wait_until(lambda: stored_msg_ids(sqlite_engine)[1] >= acked, 40, 0.25)
        except AssertionError:
            pass  # the count below says what is missing
        rows, stored = stored_msg_ids(sqlite_engine)
        lost = sorted(acked - stored, key=lambda m: int(m[1:]))
        lost_in_window = sorted(set(lost) & set(in_window), key=lambda m: int(m[1:]))
        assert not lost, (f"{len(lost)} of {len(acked)} acknowledged readings lost ({len(lost_in_window)} of the "
                          f"{len(in_window)} published while the broker was up and the ingest away): "
                          f"{lost[:5]} ... {lost[-5:]}")
        assert rows == len(stored), "a reading stored twice"
        assert stored == acked == {f"r{i}" for i in range(k)}
        assert w.conn.connects >= 2
    finally:
        if pub is not None:
            pub.close()
        w.stop()


def test_the_reconnect_backoff_starts_short_and_doubles_with_jitter_to_its_cap():
    import random

    from ingest.client import Backoff

    b = Backoff(0.5, 5.0, rng=random.Random(7))
    waits = [b.next() for _ in range(8)]
    ceilings = [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings)), waits
    b.reset()
    assert b.next() <= 0.5


def test_a_worker_that_subscribed_shared_before_gets_each_message_once_when_it_subscribes_plainly(
        settings, sqlite_engine, redis_client, broker):
    """The session of a worker that used ``$share`` (an older release, or
    mqtt_shared_subscriptions=always) still holds that subscription: on connect
    the worker drops it, or it would get every message twice."""
    write_small_city(sqlite_engine)
    base = {"mqtt_url": broker.url}
    old = IngestWorker(settings.model_copy(update={**base, "mqtt_shared_subscriptions": "always"}), sqlite_engine,
                       redis_client)
    old.start()
    assert old.conn.subscribed.wait(10)
    time.sleep(0.3)
    old.stop()
    w = IngestWorker(settings.model_copy(update=base), sqlite_engine, redis_client)  # same client id, plain
    w.start()
    try:
        assert w.conn.subscribed.wait(10)
        time.sleep(0.3)
        pub = DevicePublisher(broker)
        for i in range(20):
            pub.publish(f"{settings.mqtt_prefix}/v1/sensors/S1/state", {"ts": time.time(), "lel": 3, "msg_id": f"d{i}"},
                        broker_up=True, ingest_connected=True)
        wait_until(lambda: len(pub.acknowledged()) == 20, 10)
        wait_until(lambda: stored_msg_ids(sqlite_engine)[0] == 20, 15)
        time.sleep(1.0)
        pub.close()
        assert w.processed == 20, f"{w.processed} messages for 20 published: the shared subscription is still there"
    finally:
        w.stop()


def test_auto_shares_only_among_several_workers_and_a_worker_outside_the_count_refuses(settings, sqlite_engine,
                                                                                      redis_client):
    one = IngestWorker(settings, sqlite_engine, redis_client)
    assert not one.shares(mqtt.MQTTv5)
    assert all(not f.startswith("$share/") for f, _q in one._subscriptions(mqtt.MQTTv5))
    two = settings.model_copy(update={"ingest_workers": 2})
    w1 = IngestWorker(two, sqlite_engine, redis_client, worker_no=1)
    assert w1.shares(mqtt.MQTTv5) and not w1.shares(mqtt.MQTTv311)
    assert any(f.startswith(f"$share/{two.mqtt_share_group}/") for f, _q in w1._subscriptions(mqtt.MQTTv5))
    never = two.model_copy(update={"mqtt_shared_subscriptions": "never"})
    assert not IngestWorker(never, sqlite_engine, redis_client).shares(mqtt.MQTTv5)
    with pytest.raises(ValueError, match="ANJIAN_INGEST_WORKERS"):
        IngestWorker(settings, sqlite_engine, redis_client, worker_no=1)


def test_refused_credentials_stop_the_connection_without_retrying(tmp_path, caplog):
    """Our reconnect loop gives up on a refusal that retrying cannot fix."""
    import subprocess

    from ingest.client import MqttConnection

    b = Mosquitto(tmp_path)
    passwd = b.dir / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "ingest", "right"], check=True,
                   capture_output=True)
    passwd.chmod(0o644)
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true", f"allow_anonymous false\n"
                                                                           f"password_file {passwd}"))
    b.start()
    try:
        conn = MqttConnection(f"mqtt://ingest:wrong@127.0.0.1:{b.port}", "t-refused", lambda p: [], lambda m: None,
                              protocol="5", reconnect_min_s=0.05, reconnect_max_s=0.1)
        conn.start()
        try:
            assert wait_until(lambda: conn.fatal, 10)
            assert "refused t-refused" in conn.fatal
            tried = conn.backoff.attempt
            time.sleep(1.0)
            assert conn.backoff.attempt == tried, "retried after a fatal refusal"
            assert not conn._supervisor.is_alive()
        finally:
            conn.stop()
        ok = MqttConnection(f"mqtt://ingest:right@127.0.0.1:{b.port}", "t-accepted", lambda p: [], lambda m: None,
                            protocol="5")
        ok.start()
        try:
            assert ok.connected.wait(10) and ok.fatal is None
        finally:
            ok.stop()
    finally:
        b.stop()
