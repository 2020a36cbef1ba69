"""Messages the broker dropped do not go unnoticed (issue 14 §1).

Mosquitto drops a QoS 0 message for a subscriber whose queue is full (a client
that reads too slowly, beyond ``max_queued_messages``), and says so only in its
log and in its own count, ``$SYS/broker/publish/messages/dropped``.  At ten times a
city's load it dropped most of the ingest's fixes that way, and the fixes carried
no ``seq``, so nothing in Anjian showed it (docs/benchmarks.md section 22).

Here a real Mosquitto with a small queue, a real ingest worker and Redis, and a
subscriber that stops reading (its socket's buffer small): a flood of QoS 0
messages for it is partly dropped by the broker.  The subscriber then reads what
it was sent, message by message, so the drops are known exactly; Anjian's
``/metrics`` must count that many, and health turn ``degraded`` and say why."""

from __future__ import annotations

import socket
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dashboard.context import WebContext
from dashboard.metrics import WebMetrics
from data.live import LiveState
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.mqttkit import wait_until
from tests.servicekit import Mosquitto

FLOOD = 20_000


class StalledSubscriber:
    """An MQTT 3.1.1 client on a raw socket with a small receive buffer: it
    subscribes to ``topic`` and then reads nothing until ``drain``."""

    def __init__(self, port: int, topic: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        cid = b"stalled-screen"
        var = b"\x00\x04MQTT\x04\x02\x01\x2c"  # clean session, keepalive 300 s
        payload = len(cid).to_bytes(2, "big") + cid
        self.sock.sendall(bytes([0x10, len(var) + len(payload)]) + var + payload)
        assert self._packet()[0] == 0x20  # CONNACK
        t = topic.encode()
        body = b"\x00\x01" + len(t).to_bytes(2, "big") + t + b"\x00"
        self.sock.sendall(bytes([0x82, len(body)]) + body)
        assert self._packet()[0] == 0x90  # SUBACK

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            buf += chunk
        return buf

    def _packet(self) -> tuple[int, bytes]:
        kind = self._read(1)[0]
        length, shift = 0, 0
        while True:
            b = self._read(1)[0]
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return kind & 0xF0, self._read(length)

    def drain(self, quiet_s: float = 2.0) -> int:
        """Read until the broker has sent nothing for ``quiet_s``: the PUBLISH packets received."""
        got = 0
        self.sock.settimeout(quiet_s)
        try:
            while True:
                kind, _body = self._packet()
                got += kind == 0x30
        except TimeoutError:
            return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def small_queue_broker(tmp_path):
    b = Mosquitto(tmp_path)
    conf = b.conf.read_text().replace("max_queued_messages 1000000", "max_queued_messages 100")
    b.conf.write_text(conf + "sys_interval 1\n")
    b.start()
    yield b
    b.stop()


def flood(port: int, n: int, live: LiveState, seen_before: float) -> int:
    """``n`` QoS 0 messages for a subscriber that stopped reading, which then reads what
    it was sent: returns how many the broker dropped, once the worker has reported a
    count above ``seen_before``."""
    stalled = StalledSubscriber(port, "screens/flood")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-publisher-{n}")
    try:
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        for _ in range(n):
            pub.publish("screens/flood", b"x" * 200, qos=0)
        assert wait_until(lambda: pub.want_write() is False and dropped_metric(live) > seen_before, 20)
        time.sleep(3)  # the broker's count settles (sys_interval 1) and the worker reports it
        received = stalled.drain()
        assert 0 < received < n
        return n - received
    finally:
        pub.loop_stop()
        pub.disconnect()
        stalled.close()


def dropped_metric(live: LiveState) -> float:
    text = generate_latest(WebMetrics(live).registry).decode()
    return next(s.value for f in text_string_to_metric_families(text)
                if f.name == "anjian_broker_dropped_messages" for s in f.samples)


def test_messages_the_broker_dropped_are_counted_and_turn_health_degraded(
        small_queue_broker, settings, sqlite_engine, redis_client):
    write_small_city(sqlite_engine)
    # The setting's default, which the test fixtures turn off (tests/conftest.py).
    default_topic = type(settings).model_fields["mqtt_broker_dropped_topic"].default
    assert default_topic == "$SYS/broker/publish/messages/dropped"
    s = settings.model_copy(update={"mqtt_url": small_queue_broker.url, "mqtt_broker_dropped_topic": default_topic})
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    live = LiveState(redis_client, s.redis_prefix)
    web = WebContext(s, sqlite_engine, redis_client, s.mqtt_url)
    try:
        assert w.conn.subscribed.wait(10)
        assert wait_until(lambda: web.health()["ingest_workers"] == 1, 10)
        before = web.health()
        assert before["broker_dropped"] == 0 and before["status"] == "ok", before
        assert dropped_metric(live) == 0

        dropped = flood(small_queue_broker.port, FLOOD, live, 0)
        # Counted message by message: what the broker did not send is what /metrics says it dropped.
        assert wait_until(lambda: dropped_metric(live) == dropped, 10), (dropped_metric(live), dropped)

        web._health = None  # health is cached for a few seconds
        health = web.health()
        assert health["status"] == "degraded"
        assert health["broker_dropped"] == dropped
        assert health["broker_dropped_at"]
        assert any("MQTT broker dropped" in r for r in health["reasons"]), health["reasons"]
        # The broker's statistics are not devices' messages: none was received as one.
        assert live.counters("received").get("total", 0) == 0
    finally:
        w.stop()


def test_drops_after_a_broker_restart_are_counted_on_top_of_those_before(
        small_queue_broker, settings, sqlite_engine, redis_client):
    """A restart resets the broker's count: the drops after it are added to those before,
    message by message, through the worker's reconnect."""
    write_small_city(sqlite_engine)
    default_topic = type(settings).model_fields["mqtt_broker_dropped_topic"].default
    s = settings.model_copy(update={"mqtt_url": small_queue_broker.url, "mqtt_broker_dropped_topic": default_topic})
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    live = LiveState(redis_client, s.redis_prefix)
    try:
        assert w.conn.subscribed.wait(10)
        first = flood(small_queue_broker.port, FLOOD * 3 // 2, live, 0)
        assert wait_until(lambda: dropped_metric(live) == first, 10), (dropped_metric(live), first)
        connects = w.conn.connects
        small_queue_broker.stop()
        small_queue_broker.start()
        assert wait_until(lambda: w.conn.connects > connects and w.conn.subscribed.is_set(), 20)
        # Fewer than before, so that the broker's new count is below its old one: a restart.
        # (The sockets between the broker and the stalled subscriber hold some 14,000 of
        # these messages before the broker's queue fills: a flood smaller than that drops none.)
        second = flood(small_queue_broker.port, FLOOD, live, first)
        assert second < first
        assert wait_until(lambda: dropped_metric(live) == first + second, 10), (dropped_metric(live), first, second)
    finally:
        w.stop()


def test_a_restarted_workers_report_of_the_same_count_adds_nothing_and_a_broker_restart_counts_afresh(
        redis_client, namespace):
    """The arithmetic of the broker's count against real Redis: every worker reports
    the same number (counted once), and a broker that restarted counts from 0 again."""
    live = LiveState(redis_client, namespace)
    assert live.broker_dropped() == (0, None, None)
    assert live.report_broker_dropped(40) == 40  # nothing recorded: Mosquitto's first report is its first drops
    assert live.report_broker_dropped(40) == 0  # a second worker, the same count
    assert live.report_broker_dropped(55) == 15
    assert live.report_broker_dropped(7) == 7  # below the last: the broker started over
    total, at, value = live.broker_dropped()
    assert (total, value) == (62, 7) and at is not None
