"""Publishing from tests, as a real device would (paho, QoS as asked)."""

from __future__ import annotations

import json
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
