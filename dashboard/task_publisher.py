"""The web process's MQTT publisher of inspection tasks (docs/mqtt.md, MQTT out:
``PREFIX/v1/inspectors/{id}/tasks``, QoS 1).

The alert dispatch goes through the alert engine's outbox; plan, joint and draw
tasks are published from the web process itself, by this small paho client: one
per web worker process, connected on first use (``connect_async`` +
``loop_start``: paho reconnects by itself and keeps QoS 1 messages published
while it is away, sending them when it is back).  A publish waits at most
``CONNECT_WAIT_S`` for a first connection, so an API answer is never held long
by a missing broker; a message that cannot be queued is logged.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
import uuid

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from config.mqtt import broker_addresses

log = logging.getLogger(__name__)

CONNECT_WAIT_S = 3.0


class TaskPublisher:
    def __init__(self, mqtt_url: str, client_id_prefix: str = "anjian-web", tls_ca=None, tls_insecure: bool = False,
                 keepalive_s: int = 30):
        self.url = mqtt_url
        self.client_id = f"{client_id_prefix}-tasks-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.tls_ca, self.tls_insecure, self.keepalive_s = tls_ca, tls_insecure, keepalive_s
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()

    def _start(self) -> mqtt.Client:
        with self._lock:
            if self._client is not None:
                return self._client
            nodes = broker_addresses(self.url)
            first = nodes[0]
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311)
            if first.username:
                c.username_pw_set(first.username, first.password)
            if first.tls:
                c.tls_set(ca_certs=str(self.tls_ca) if self.tls_ca else None, cert_reqs=ssl.CERT_REQUIRED)
                c.tls_insecure_set(bool(self.tls_insecure))
            c.on_connect = lambda *_a: self._connected.set()
            at = [0]

            def next_node(client, *_a):
                self._connected.clear()
                if len(nodes) > 1 and self._client is not None:
                    # A cluster: paho's next reconnect goes to the next node.
                    at[0] = (at[0] + 1) % len(nodes)
                    client.connect_async(nodes[at[0]].host, nodes[at[0]].port, keepalive=self.keepalive_s)

            c.on_disconnect = next_node
            c.on_connect_fail = next_node  # a dead node refuses the socket: no disconnect to hear
            c.connect_async(first.host, first.port, keepalive=self.keepalive_s)
            c.loop_start()
            self._client = c
            return c

    def publish(self, topic: str, payload: dict, qos: int = 1) -> bool:
        """Queue one message; True when paho took it (sent now or on reconnect)."""
        c = self._start()
        self._connected.wait(CONNECT_WAIT_S)
        info = c.publish(topic, orjson.dumps(payload), qos=qos)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.warning("publish to %s failed: %s", topic, info.rc)
            return False
        return True

    def close(self) -> None:
        with self._lock:
            c, self._client = self._client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()
