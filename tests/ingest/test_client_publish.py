"""ingest.client._Client decodes MQTT 5 PUBLISH packets as paho does (its fast path skips
paho's property parser when a packet has none)."""

import struct

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.exception import MalformedPacket

from ingest.client import _Client

TOPIC = b"anjian/v1/inspectors/I0001/location"
PAYLOAD = b'{"ts": 1700000000.5, "lat": 22.61, "lon": 114.02, "acc": 10}'


def _packet(qos: int, props: bytes, payload: bytes = PAYLOAD, topic: bytes = TOPIC) -> bytearray:
    mid = struct.pack("!H", 7) if qos else b""
    return bytearray(struct.pack("!H", len(topic)) + topic + mid + props + payload)


def _received(client_cls, header: int, packet: bytearray):
    got = []
    c = client_cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True)
    c.on_message = lambda cl, u, m: got.append(m)
    c._in_packet = {"command": header, "packet": bytearray(packet)}
    rc = c._handle_publish()
    return rc, got, c


@pytest.mark.parametrize("header", [0x30, 0x31, 0x32, 0x3A, 0x34])
@pytest.mark.parametrize("props", [b"\x00", b"\x02\x01\x01", b"\x05\x02\x00\x00\x00\x3c"])
@pytest.mark.parametrize("payload", [PAYLOAD, b""])
def test_same_message_as_paho(header, props, payload):
    qos = (header & 0x06) >> 1
    packet = _packet(qos, props, payload)
    rc_fast, got_fast, fast = _received(_Client, header, packet)
    rc_paho, got_paho, paho = _received(mqtt.Client, header, packet)
    assert rc_fast == rc_paho
    if qos == 2:  # held until PUBREL, as paho does
        assert not got_fast and not got_paho
        assert fast._in_messages.keys() == paho._in_messages.keys() == {7}
        return
    (a,), (b,) = got_fast, got_paho
    assert (a.topic, a.payload, a.mid, a.qos, a.dup, a.retain) == (b.topic, b.payload, b.mid, b.qos, b.dup, b.retain)
    assert type(a.payload) is bytes
    assert str(a.properties) == str(b.properties)
    assert a.properties.isEmpty() == b.properties.isEmpty()


def test_malformed_packet_goes_to_paho():
    for cls in (_Client, mqtt.Client):
        with pytest.raises(MalformedPacket):
            _received(cls, 0x32, bytearray(b"\x00\x05ab"))
