"""The broker edge in production (issue 14 §5): TLS, passwords and the shipped ACL.

A private Mosquitto runs as docs/deploy.md tells an operator to run it: TLS only,
with a certificate from a CA made in the test, no anonymous clients, a password
file, and the ACL that the repository ships (config/mosquitto/anjian.acl), used
as it is.  The ingest connects as the service account over ``mqtts://``; devices
connect as themselves.  What is checked is what an attacker with one device's
credentials would try: speaking for another device, reading another inspector's
dispatches, connecting without a password, with a wrong one, in plain text, or to
a broker whose certificate the client does not trust."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from data.models import DeadLetter, PingRow, SensorReadingRow
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.mqttkit import wait_until
from tests.servicekit import SecureMosquitto

ACL = Path(__file__).resolve().parents[2] / "config" / "mosquitto" / "anjian.acl"
PREFIX = "anjian"  # the prefix the shipped ACL is written for (the default)
USERS = {"anjian": "svc-" + uuid.uuid4().hex, "I1": "p-i1", "I2": "p-i2", "S1": "p-s1", "S2": "p-s2"}


class Device:
    """One device's MQTT client, over TLS, logged in as ``user``."""

    def __init__(self, broker: SecureMosquitto, user: str, password: str | None = None, *,
                 ca: Path | None = None, tls: bool = True):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv311)
        self.client.username_pw_set(user, USERS.get(user) if password is None else password)
        if tls:
            self.client.tls_set(ca_certs=str(ca or broker.certs["ca"]), cert_reqs=ssl.CERT_REQUIRED)
        self.connack = None
        self.granted: list = []
        self.received: list[tuple[str, dict]] = []
        self.client.on_connect = lambda _c, _u, _f, rc, _p: setattr(self, "connack", rc)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.granted.extend(rcs)
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, json.loads(m.payload)))
        self.broker = broker

    def connect(self) -> Device:
        self.client.connect("localhost", self.broker.port)
        self.client.loop_start()
        return self

    def publish(self, topic: str, body: dict) -> None:
        self.client.publish(topic, json.dumps(body), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path):
    b = SecureMosquitto(tmp_path, ACL, USERS)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def worker(settings, sqlite_engine, redis_client, broker):
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={
        "mqtt_url": broker.url_for("anjian", USERS["anjian"]), "mqtt_tls_ca": broker.certs["ca"],
        "mqtt_prefix": PREFIX, "owntracks_topic": "owntracks", "z2m_topic": "zigbee2mqtt"})
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    assert w.conn.subscribed.wait(10), "the ingest did not subscribe over TLS"
    yield w
    w.stop()


def fix(msg_id: str) -> dict:
    return {"ts": time.time(), "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2], "acc": 8, "msg_id": msg_id}


def test_each_device_speaks_only_for_itself(worker, broker, sqlite_engine):
    """Over TLS with the shipped ACL: every message a device sends under its own id is
    stored once; every message it sends under another id is refused by the broker
    (named in its log) and never reaches the history."""
    log_lines_before = broker.log_text().count("Denied PUBLISH")
    assert "refused" not in broker.log_text().lower()
    i1, s1 = Device(broker, "I1").connect(), Device(broker, "S1").connect()
    try:
        assert wait_until(lambda: i1.client.is_connected() and s1.client.is_connected(), 10)
        own_fixes = [f"i1-{k}" for k in range(20)]
        own_readings = [f"s1-{k}" for k in range(20)]
        for k in range(20):
            i1.publish(f"{PREFIX}/v1/inspectors/I1/location", fix(own_fixes[k]))
            i1.publish(f"{PREFIX}/v1/inspectors/I2/location", fix(f"spoof-i2-{k}"))
            s1.publish(f"{PREFIX}/v1/sensors/S1/state", {"ts": time.time(), "lel": 3.0, "msg_id": own_readings[k]})
            s1.publish(f"{PREFIX}/v1/sensors/S2/state",
                       {"ts": time.time(), "lel": 80.0, "alarm": "high", "msg_id": f"spoof-s2-{k}"})
        # A device cannot send a dispatch either (only the service account writes those).
        i1.publish(f"{PREFIX}/v1/inspectors/I2/dispatch", {"task_id": "fake"})

        def stored():
            with sqlite_engine.connect() as conn:
                pings = conn.execute(select(PingRow.inspector_id, PingRow.msg_id)).all()
                readings = conn.execute(select(SensorReadingRow.sensor_id, SensorReadingRow.msg_id)).all()
            return pings, readings

        assert wait_until(lambda: len(stored()[0]) >= 20 and len(stored()[1]) >= 20, 15)
        # The refusals are the broker's: each one is in its log, counted.
        assert wait_until(lambda: broker.log_text().count("Denied PUBLISH") - log_lines_before >= 41, 10), \
            broker.log_text()[-2000:]
        time.sleep(1.0)  # anything that got through would be in by now
        pings, readings = stored()
        assert sorted(pings) == sorted(("I1", m) for m in own_fixes)
        assert sorted(readings) == sorted(("S1", m) for m in own_readings)
        # Nothing of the spoofs reached the ingest at all: not even as a dead letter.
        with sqlite_engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one() == 0
    finally:
        i1.close()
        s1.close()


def test_a_device_reads_only_its_own_dispatches(worker, broker):
    """I1 subscribes to its own dispatch and task topics, to I2's dispatches and to the
    whole prefix.  Mosquitto 2.0 grants every subscription and applies the ACL at
    delivery: I1 gets its own dispatch and task, and nothing else that passes through
    the broker (I2's dispatch, I2's location, a gas reading)."""
    i1, i2, s1 = Device(broker, "I1").connect(), Device(broker, "I2").connect(), Device(broker, "S1").connect()
    svc = Device(broker, "anjian").connect()
    try:
        assert wait_until(lambda: all(d.client.is_connected() for d in (i1, i2, s1, svc)), 10)
        i1.client.subscribe([(f"{PREFIX}/v1/inspectors/I1/dispatch", 1), (f"{PREFIX}/v1/inspectors/I1/tasks", 1),
                             (f"{PREFIX}/v1/inspectors/I2/dispatch", 1), (f"{PREFIX}/#", 1), ("owntracks/#", 1)])
        assert wait_until(lambda: len(i1.granted) == 5, 10)
        svc.publish(f"{PREFIX}/v1/inspectors/I2/dispatch", {"task_id": "for-i2"})
        i2.publish(f"{PREFIX}/v1/inspectors/I2/location", fix("i2-own"))
        s1.publish(f"{PREFIX}/v1/sensors/S1/state", {"ts": time.time(), "lel": 3.0, "msg_id": "s1-own"})
        svc.publish(f"{PREFIX}/v1/inspectors/I1/dispatch", {"task_id": "for-i1"})
        svc.publish(f"{PREFIX}/v1/inspectors/I1/tasks", {"task_id": "task-i1"})
        assert wait_until(lambda: {b.get("task_id") for _t, b in i1.received} >= {"for-i1", "task-i1"}, 10)
        time.sleep(0.5)
        # Overlapping filters may deliver one message once per filter; what matters is which.
        assert {t for t, _b in i1.received} == {f"{PREFIX}/v1/inspectors/I1/dispatch",
                                                 f"{PREFIX}/v1/inspectors/I1/tasks"}, i1.received
    finally:
        for d in (i1, i2, s1, svc):
            d.close()


@pytest.mark.parametrize("how", ["anonymous", "wrong-password", "plain-text", "untrusted-certificate"])
def test_the_broker_refuses_who_it_should(broker, how):
    """No password, a wrong password, plain MQTT on the TLS port, and a client that does
    not trust the broker's certificate: none of them gets a session."""
    if how == "anonymous":
        dev = Device(broker, "I1", password="")
        dev.client.username_pw_set(None, None)
    elif how == "wrong-password":
        dev = Device(broker, "I1", password="not-the-password")
    elif how == "plain-text":
        dev = Device(broker, "I1", tls=False)
    else:
        dev = Device(broker, "I1", ca=broker.certs["other_ca"])
    try:
        if how in ("anonymous", "wrong-password"):
            dev.connect()
            assert wait_until(lambda: dev.connack is not None, 10)
            assert dev.connack.is_failure and "authori" in str(dev.connack).lower(), str(dev.connack)
        elif how == "plain-text":
            dev.client.connect("localhost", broker.port)
            dev.client.loop_start()
            time.sleep(2.0)
            assert dev.connack is None or dev.connack.is_failure
            assert not dev.client.is_connected()
        else:
            with pytest.raises(ssl.SSLCertVerificationError):
                dev.client.connect("localhost", broker.port)
    finally:
        dev.close()


def test_the_ingest_refuses_to_run_with_a_wrong_password(settings, sqlite_engine, redis_client, broker):
    """A wrong ANJIAN_MQTT_URL password is fatal and named, not retried forever in silence."""
    write_small_city(sqlite_engine)
    s = settings.model_copy(update={"mqtt_url": broker.url_for("anjian", "wrong"), "mqtt_tls_ca": broker.certs["ca"],
                                    "mqtt_prefix": PREFIX, "mqtt_protocol": "3.1.1"})
    w = IngestWorker(s, sqlite_engine, redis_client)
    w.start()
    try:
        assert wait_until(lambda: w.conn.fatal is not None, 10)
        assert "refused" in w.conn.fatal and "user 'anjian'" in w.conn.fatal and "Not authorized" in w.conn.fatal
        assert not w.conn.subscribed.is_set()
    finally:
        w.stop()
