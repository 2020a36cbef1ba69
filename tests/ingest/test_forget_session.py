"""``app.py mqtt forget-session``: after a switch to partitions (docs/deploy.md), the
broker still holds the retired workers' sessions and queues QoS 1 messages for them.
The command ends such a session on a real Mosquitto, run as a user runs it; it
refuses an id a running ingest worker still uses (the broker would take over and
disconnect that worker)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from data.live import LiveState
from tests.appkit import clean_env
from tests.ingest.test_broker_sessions import _subscriber
from tests.conftest import TEST_REDIS_URL
from tests.mqttkit import wait_until
from tests.servicekit import Mosquitto

ROOT = Path(__file__).resolve().parents[2]


def _on_session(port: int, cid: str, protocol: int, got: list[bytes], flags: dict) -> mqtt.Client:
    """A client back on its persistent session (no SUBSCRIBE of its own)."""
    c = _subscriber(port, cid, protocol, got, flags)
    assert wait_until(lambda: "rc" in flags, 5)
    return c


def _close(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def _publish(port: int, n: int) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    for i in range(n):
        pub.publish("anjian/v1/sensors/S1/state", f"m{i}", qos=1).wait_for_publish(5)
    _close(pub)


def _forget(port: int, namespace: str, *ids: str) -> subprocess.CompletedProcess:
    env = clean_env(ANJIAN_MQTT_URL=f"mqtt://127.0.0.1:{port}", ANJIAN_REDIS_URL=TEST_REDIS_URL,
                    ANJIAN_REDIS_NAMESPACE=namespace, ANJIAN_DATABASE_URL="sqlite://")
    return subprocess.run([sys.executable, "app.py", "mqtt", "forget-session", *ids], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("forget", [True, False], ids=["forgotten", "control"])
@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_a_retired_workers_session_ends_with_its_queue(tmp_path, namespace, protocol, forget):
    """Forgotten, the session and its three queued messages are gone; left alone (the
    control), the broker keeps both, which is what the command is for."""
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        cid = f"anjian-ingest-{uuid.uuid4().hex[:6]}-0"
        got: list[bytes] = []
        flags: dict = {}
        old = _on_session(broker.port, cid, protocol, got, flags)
        old.subscribe("anjian/v1/#", qos=1)
        time.sleep(0.3)
        _close(old)
        _publish(broker.port, 3)  # queued for the retired worker's session

        if forget:
            done = _forget(broker.port, namespace, cid)
            assert done.returncode == 0, done.stderr
            assert f"session of {cid} ended" in done.stdout

        flags.clear()
        back = _on_session(broker.port, cid, protocol, got, flags)
        time.sleep(1.0)
        _close(back)
        if forget:
            assert flags["session_present"] is False, "the broker kept the session"
            assert got == [], "the broker still delivered what it had queued for the session"
        else:
            assert flags["session_present"] is True and got == [b"m0", b"m1", b"m2"]
    finally:
        broker.stop()


def test_an_id_a_running_worker_uses_is_refused(tmp_path, namespace, redis_client):
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        cid = "anjian-ingest-0"
        LiveState(redis_client, namespace).heartbeat(cid, owner="ingest-host:4242")
        got: list[bytes] = []
        flags: dict = {}
        worker = _on_session(broker.port, cid, mqtt.MQTTv5, got, flags)
        try:
            done = _forget(broker.port, namespace, cid, "anjian-ingest-9")
            assert done.returncode == 2
            assert "anjian-ingest-0 is in use by a running ingest worker (ingest-host:4242)" in done.stderr
            assert worker.is_connected(), "the running worker was not disturbed"
            assert "ended" not in done.stdout, "nothing is forgotten when one id is refused"
        finally:
            _close(worker)
    finally:
        broker.stop()
