"""ingest.paho_fast.FastClient decodes MQTT 5 PUBLISH packets as paho does (its fast path skips
paho's property parser when a packet has none)."""

import struct

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.exception import MalformedPacket

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.paho_fast import FastClient as _Client

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


# --- buffered reads: the same messages from a socket, however the bytes arrive -------------


def _wire(header: int, packet: bytes) -> bytes:
    """A whole MQTT packet: fixed header, remaining length (varint), the rest."""
    n, length = len(packet), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([header]) + bytes(length) + bytes(packet)


def _stream() -> tuple[bytes, int]:
    """Publishes of every kind the fast path and paho's path take, some larger
    than one read chunk's remainder, so packets straddle reads."""
    out, n = b"", 0
    for i in range(400):
        header = (0x30, 0x32, 0x31, 0x38)[i % 4]
        props = b"\x02\x01\x01" if i % 7 == 0 else b"\x00"
        payload = PAYLOAD * (1 + (i % 5) * 60) if i % 50 == 0 else PAYLOAD + str(i).encode()
        out += _wire(header, _packet((header & 0x06) >> 1, props, payload, topic=TOPIC + str(i).encode()))
        n += 1
    return out, n


class _Raw:
    """What the raw hook gets, shaped like the fields of an MQTTMessage the test compares."""

    def __init__(self, topic: bytes, payload: bytes, qos: int, mid: int):
        self.topic, self.payload, self.qos, self.mid = topic.decode(), payload, qos, mid
        self.dup = self.retain = self.properties = None


def _read_all(client_cls, data: bytes, sizes: list[int], sock_pair, raw: bool = False):
    import socket as socketlib

    a, b = sock_pair
    got = []
    c = client_cls(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True)
    c.on_message = lambda cl, u, m: got.append(m)
    if raw:
        c.on_raw_publish = lambda *fields: got.append(_Raw(*fields))
    c._sock = b
    pos = 0
    for size in sizes:
        a.sendall(data[pos:pos + size])
        pos += size
        try:
            c.loop_read()
        except socketlib.error:
            pass
    a.sendall(data[pos:])
    idle = 0
    while idle < 3:  # stock paho reads one packet per call
        before = len(got)
        c.loop_read()
        idle = idle + 1 if len(got) == before else 0
    c._sock = None
    if raw:
        return [(m.topic, m.payload, m.mid, m.qos) + ((m.dup, m.retain, str(m.properties)) if m.dup is not None else ())
                for m in got]
    return [(m.topic, m.payload, m.mid, m.qos, m.dup, m.retain, str(m.properties)) for m in got]


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_buffered_reads_give_the_same_messages_as_paho(seed, raw):
    import random
    import socket as socketlib

    data, n = _stream()
    rnd = random.Random(seed)
    sizes = []
    while sum(sizes) < len(data):
        sizes.append(rnd.choice([1, 2, 3, 17, 150, 4096, 70000, 200000]))
    results = []
    for cls in (_Client, mqtt.Client):
        a, b = socketlib.socketpair()
        a.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_SNDBUF, 1 << 20)
        b.setblocking(False)
        try:
            results.append(_read_all(cls, data, sizes, (a, b), raw=raw and cls is _Client))
        finally:
            a.close()
            b.close()
    fast, paho = results
    assert len(fast) == n
    if raw:
        # The raw hook gets (topic, payload, mid, qos) of the fast path's
        # messages; the others (properties present) still come as MQTTMessage.
        assert [m[:4] for m in fast] == [m[:4] for m in paho]
        assert [m for m in fast if len(m) > 4] == [m for m in paho if m[6] != str(Properties(PacketTypes.PUBLISH))]
        assert sum(len(m) == 4 for m in fast) > n // 2
    else:
        assert fast == paho


def test_a_new_socket_starts_with_an_empty_buffer():
    import socket as socketlib

    got = []
    c = _Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True)
    c.on_message = lambda cl, u, m: got.append(m.topic)
    c.RECV_CHUNK_BYTES = 1 << 20
    first = _wire(0x30, _packet(0, b"\x00", topic=b"a/1"))
    a, b = socketlib.socketpair()
    b.setblocking(False)
    c._sock = b
    # Bytes of a packet whose connection then dies: read into the buffer, never finished.
    a.sendall(first + first[:5])
    c.loop_read()
    assert got == ["a/1"]
    c._in_packet = {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
                    "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}
    a2, b2 = socketlib.socketpair()
    b2.setblocking(False)
    c._sock = b2
    a2.sendall(_wire(0x30, _packet(0, b"\x00", topic=b"b/2")))
    c.loop_read()
    assert got == ["a/1", "b/2"]
    for s in (a, b, a2, b2):
        s.close()


def test_filtered_callbacks_still_get_their_messages():
    got, rest = [], []
    c = _Client(CallbackAPIVersion.VERSION2, client_id="t", protocol=mqtt.MQTTv5, manual_ack=True)
    c.on_message = lambda cl, u, m: rest.append(m.topic)
    c.message_callback_add("anjian/v1/inspectors/+/location", lambda cl, u, m: got.append(m.topic))
    c._in_packet = {"command": 0x30, "packet": _packet(0, b"\x00")}
    c._handle_publish()
    c._in_packet = {"command": 0x30, "packet": _packet(0, b"\x00", topic=b"other/topic")}
    c._handle_publish()
    assert got == [TOPIC.decode()] and rest == ["other/topic"]
