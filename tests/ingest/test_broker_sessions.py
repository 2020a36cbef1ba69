"""What a persistent session keeps across a restart of the broker, shown without
Anjian: a paho subscriber with a persistent session, a private Mosquitto with
the embedded broker's configuration (data.embedded.mosquitto_conf), a graceful
restart, five QoS 1 messages published while the subscriber is away, then the
subscriber back on its session without subscribing again.

The ingest's subscription form rests on these facts (docs/deploy.md, "Broker"):
a plain subscription keeps its messages; on Mosquitto 2.0 a shared one does
not, so every message that arrives between the broker's return and the
subscriber's next SUBSCRIBE is lost."""

from __future__ import annotations

import subprocess
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.mqttkit import wait_until
from tests.servicekit import Mosquitto


def _subscriber(port: int, client_id: str, protocol: int, got: list[bytes], flags: dict | None = None) -> mqtt.Client:
    """A client on its persistent session; ``flags`` gets the CONNACK's session_present."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
                    clean_session=None if protocol == mqtt.MQTTv5 else False)
    c.on_message = lambda _c, _u, m: got.append(m.payload)
    if flags is not None:
        c.on_connect = lambda _c, _u, f, rc, p: flags.update(session_present=f.session_present, rc=rc)
    kwargs = {}
    if protocol == mqtt.MQTTv5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        kwargs = {"clean_start": False, "properties": props}
    c.connect("127.0.0.1", port, **kwargs)
    c.loop_start()
    assert wait_until(c.is_connected, 5)
    return c


def _close(c: mqtt.Client) -> None:
    c.disconnect()
    c.loop_stop()


def delivered_after_restart(tmp_path, protocol: int, topic_filter: str, restart: bool = True) -> int:
    broker = Mosquitto(tmp_path)
    broker.start()
    try:
        cid = f"session-{uuid.uuid4().hex[:8]}"
        got: list[bytes] = []
        sub = _subscriber(broker.port, cid, protocol, got)
        result, mid = sub.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        time.sleep(0.3)
        _close(sub)
        if restart:
            broker.stop()  # SIGTERM: Mosquitto saves its database
            broker.start()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{cid}", protocol=mqtt.MQTTv311)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        for i in range(5):
            pub.publish("facts/x", f"m{i}", qos=1).wait_for_publish(5)
        _close(pub)
        sub = _subscriber(broker.port, cid, protocol, got)  # no SUBSCRIBE: the session's own
        time.sleep(1.0)
        _close(sub)
        return len(got)
    finally:
        broker.stop()


def _mosquitto_version() -> str:
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    return out.split("version", 1)[1].split()[0] if "version" in out else "?"


@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_a_plain_subscription_keeps_its_messages_across_a_broker_restart(tmp_path, protocol):
    assert delivered_after_restart(tmp_path, protocol, "facts/#") == 5


def test_a_shared_subscription_keeps_its_messages_while_the_broker_runs(tmp_path):
    assert delivered_after_restart(tmp_path, mqtt.MQTTv5, "$share/g/facts/#", restart=False) == 5


@pytest.mark.skipif(not _mosquitto_version().startswith("2.0."), reason="the fact recorded is Mosquitto 2.0's")
@pytest.mark.parametrize("protocol", [mqtt.MQTTv5, mqtt.MQTTv311], ids=["mqtt5", "mqtt311"])
def test_mosquitto_2_0_forgets_a_shared_subscription_when_it_restarts(tmp_path, protocol):
    """Recorded in docs/deploy.md: if this starts failing, the installed
    Mosquitto keeps shared subscriptions now; update the table there."""
    assert delivered_after_restart(tmp_path, protocol, "$share/g/facts/#") == 0
