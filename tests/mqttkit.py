"""Publishing from tests, as a real device would (paho, QoS as asked)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

# Runs an ingest test with the client's fast path (ingest/client.py) and with
# paho's own message path (the mqtt_fast_path setting off).
both_mqtt_paths = pytest.mark.parametrize("mqtt_fast_path", [True, False], ids=["fast-path", "paho-path"])


class Publisher:
    def __init__(self, url: str):
        parts = urlsplit(url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv311)
        self.client.connect(parts.hostname, parts.port or 1883)
        self.client.loop_start()

    def publish(self, topic: str, payload, qos: int = 1, retain: bool = False) -> None:
        if isinstance(payload, (dict, list)):
            payload = json.dumps(payload, ensure_ascii=False)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_until(predicate, timeout_s: float = 10.0, interval_s: float = 0.05):
    """Poll until predicate() is truthy; return its value or raise AssertionError."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last value: {last!r})")


class IngestListening:
    """The heartbeat of an ingest worker subscribed at the broker since ``since``
    (epoch s; 0: for long), for tests that drive the alert engine's offline sweeps
    with no ingest of their own, or whose devices fell quiet before their ingest
    started: the engine counts a device's silence only while an ingest listens
    (``AlertEngine._listening_since``).  Kept fresh every second until ``close``."""

    def __init__(self, redis_client, namespace: str, since: float = 0.0, topics: str = "all",
                 worker_id: str = "test-ingest-listening"):
        from data.live import LiveState

        self.live, self.worker_id = LiveState(redis_client, namespace), worker_id
        self.fields = {"connected": True, "listening_since": since, "topics": topics}
        self._stop = threading.Event()
        self.beat()
        self._thread = threading.Thread(target=self._run, name="test-ingest-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        self.live.heartbeat(self.worker_id, **self.fields)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.beat()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.live.r.hdel(self.live.key("workers"), self.worker_id)

