"""The MQTT fast path: paho's Client with our own read and PUBLISH decoding.

This is the one module that touches paho's private names (listed below in
``FAST_PATH_*`` and checked at start by ``use_fast_path``).  Connection
handling (connect, reconnect, subscribe, acks) is in ingest/client.py, which
picks ``FastClient`` or paho's own ``Client`` by the ``mqtt_fast_path``
setting; nothing here knows about connections.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)


# An empty PUBLISH property set, copied per message (see FastClient).
_NO_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)


def _empty_publish_properties() -> Properties:
    p = Properties.__new__(Properties)
    p.__dict__.update(_NO_PUBLISH_PROPERTIES.__dict__)  # the tables are read-only
    return p


class FastClient(mqtt.Client):
    """paho's client; an MQTT 5 PUBLISH without properties skips paho's property parser.

    paho 2.x builds a ``Properties`` object for every MQTT 5 message
    (``Properties.__init__`` fills its name tables, ``unpack`` clears each of
    27 names), whether or not the packet carries any.  That was the largest
    per-message cost of paho's thread in ``bench/bench_ingest.py --profile``
    (about 45 of 51 us per message in ``decode_publish``).  Devices rarely
    send properties, so a packet whose property length is zero is decoded
    here and gets an empty ``Properties``; everything else (properties,
    malformed packets, MQTT 3.1.1) takes paho's own path.  The rest mirrors
    paho 2.x's ``Client._handle_publish``.

    Two more per-message costs of paho's thread, both from the py-spy profile
    of ``bench/bench_ingest.py``'s worker process (see docs/benchmarks.md):

    - Reads.  paho reads each packet with three ``recv`` calls (the command
      byte, the remaining length byte by byte, the rest) and goes through
      ``select`` once per packet.  Every ``recv`` releases and re-takes the
      GIL, and with the worker thread busy each re-take waits for it: about a
      third of paho's thread was in ``_loop`` and ``_sock_recv``.  Here
      ``_sock_recv`` reads up to ``RECV_CHUNK_BYTES`` at once and serves
      paho's small reads from that buffer, and ``loop_read`` goes on until the
      buffer is used up, so a burst of messages costs one ``select`` and one
      ``recv`` per chunk.  paho's packet parser is unchanged; it only sees its
      bytes arrive from memory.  The buffer belongs to one socket: a new
      connection starts with an empty one.
    - Dispatch.  For every message paho matches the topic against the
      callbacks of ``message_callback_add`` (a recursive generator,
      ``MQTTMatcher.iter_match``, 16% of paho's thread), which we never use.
      With none registered, the fast path calls ``on_message`` directly,
      under the same lock and with the same error handling as paho.
    """

    # One read: a few hundred small messages.  The socket's receive buffer
    # holds far more, so this bounds only the Python bytes object per read.
    RECV_CHUNK_BYTES = 65536

    _rbuf: bytes = b""
    _rbuf_pos: int = 0
    _rbuf_sock: object = None
    # ``on_raw_publish(topic: bytes, payload: bytes, qos, mid)``: when set, a
    # QoS 0/1 PUBLISH without properties reaches it instead of on_message.
    on_raw_publish = None

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rbuf_pos
        if pos < len(buf) and self._rbuf_sock is self._sock and self._sock is not None:
            end = pos + bufsize
            self._rbuf_pos = end
            return buf[pos:end]
        data = super()._sock_recv(max(bufsize, self.RECV_CHUNK_BYTES))
        if len(data) <= bufsize:
            self._rbuf, self._rbuf_pos = b"", 0
            return data
        self._rbuf, self._rbuf_pos, self._rbuf_sock = data, bufsize, self._sock
        return data[:bufsize]

    def _buffered(self) -> bool:
        return self._rbuf_pos < len(self._rbuf) and self._rbuf_sock is self._sock and self._sock is not None

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # Packets already read into the buffer are not seen by select(): handle
        # them all now.  A partial packet at the end of the buffer is taken up
        # by paho's parser, whose next read then finds the socket empty
        # (MQTT_ERR_AGAIN, reported as success), so this ends with the buffer
        # empty.
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._buffered():
            rc = super().loop_read(max_packets)
        return rc

    def _deliver(self, message: mqtt.MQTTMessage) -> None:
        """paho's ``_handle_on_message`` without the topic match when no filtered
        callback is registered (the match finds nothing then)."""
        if self._filtered_callbacks():
            return self._handle_on_message(message)  # message_callback_add in use
        with self._callback_mutex:
            on_message = self.on_message
        if on_message:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        rc = self._publish_fast(self._in_packet["command"], self._in_packet["packet"])
        return super()._handle_publish() if rc is None else rc

    def _publish_fast(self, header: int, packet) -> mqtt.MQTTErrorCode | None:
        """Handle a PUBLISH without properties (MQTT 5, QoS 0-2); None when paho's
        own ``_handle_publish`` must (properties, malformed, MQTT 3.1.1)."""
        if self._protocol != mqtt.MQTTv5:
            return None
        try:
            qos = (header & 0x06) >> 1
            pos = 2 + ((packet[0] << 8) | packet[1])
            topic = bytes(packet[2:pos])
            mid = 0
            if qos:
                mid = (packet[pos] << 8) | packet[pos + 1]
                pos += 2
            if packet[pos] != 0:
                return None  # properties present
        except IndexError:
            return None  # malformed: paho reports it
        if qos == 3:
            return None
        payload = bytes(packet[pos + 1:])
        raw = self.on_raw_publish
        if raw is not None and qos < 2 and not self._filtered_callbacks():
            # No MQTTMessage: its MQTTMessageInfo (with a threading.Condition)
            # was a tenth of this thread in the profile, and the worker reads
            # only these four fields.
            with self._in_callback_mutex:
                try:
                    raw(topic, payload, qos, mid)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
            if qos == 0 or self._manual_ack:
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            return self._send_puback(mid)
        message = mqtt.MQTTMessage(mid=mid, topic=topic)
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = _empty_publish_properties()
        message.payload = payload
        message.timestamp = mqtt.time_func()
        if qos == 0:
            self._deliver(message)
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        if qos == 1:
            self._deliver(message)
            if self._manual_ack:
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            return self._send_puback(message.mid)
        rc = self._send_pubrec(message.mid)
        message.state = mqtt.mqtt_ms_wait_for_pubrel
        with self._in_message_mutex:
            self._in_messages[message.mid] = message
        return rc

    def _filtered_callbacks(self) -> bool:
        """Whether ``message_callback_add`` callbacks exist (then paho's dispatch runs)."""
        return bool(getattr(getattr(self._on_message_filtered, "_root", None), "_children", True))

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        """Whole PUBLISH packets already in the read buffer are parsed here, one
        after the other, without paho's per-packet state dict and reads; a
        packet that is not whole yet, or not a PUBLISH, goes to paho's
        ``_packet_read`` (which reads it through ``_sock_recv``'s buffer)."""
        if self._in_packet["command"] == 0 and self._protocol == mqtt.MQTTv5 and self._buffered():
            buf, pos = self._rbuf, self._rbuf_pos
            n = len(buf)
            rc = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
            done = False
            while pos < n and rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
                header = buf[pos]
                if header & 0xF0 != 0x30:
                    break  # not a PUBLISH
                # Remaining length: at most four bytes of 7 bits each.
                i, mult, length = pos + 1, 1, 0
                while i < n and i - pos <= 4:
                    b = buf[i]
                    length += (b & 0x7F) * mult
                    mult <<= 7
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    break  # incomplete, or too long (paho reports that)
                if buf[i - 1] & 0x80 or i + length > n:
                    break
                packet = buf[i:i + length]
                fast = self._publish_fast(header, packet)
                if fast is None:
                    break  # paho's way, from pos
                rc = fast
                pos = i + length
                self._rbuf_pos = pos
                done = True
            if done:
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()
                return rc
        return super()._packet_read()

# What FastClient reads, calls or overrides of paho's private code.  They were
# checked on paho-mqtt 2.2 (pyproject.toml pins >=2.2,<2.3): paho 2.1 has no
# ``_last_bytes_received`` (its keepalive reads ``_last_msg_in``), so there the
# fast path's keepalive bookkeeping would silently do nothing.
FAST_PATH_CLIENT_METHODS = (
    "_sock_recv", "_handle_publish", "_packet_read", "_handle_on_message", "_send_puback", "_send_pubrec",
    "_easy_log",
)
FAST_PATH_CLIENT_ATTRIBUTES = (
    "_sock", "_callback_mutex", "_in_callback_mutex", "_userdata", "_in_packet", "_protocol", "_manual_ack",
    "_in_message_mutex", "_in_messages", "_msgtime_mutex", "_last_bytes_received", "_on_message_filtered",
    "suppress_exceptions",
)
FAST_PATH_MODULE_NAMES = ("time_func", "mqtt_ms_wait_for_pubrel")

_fast_path_checked: dict[type, list[str]] = {}
_fast_path_lock = threading.Lock()


def fast_path_missing(client_cls: type = mqtt.Client) -> list[str]:
    """The private paho names the fast path needs that ``client_cls`` (an
    installed paho's Client) lacks; [] when the fast path can run."""
    missing = [n for n in FAST_PATH_MODULE_NAMES if not hasattr(mqtt, n)]
    missing += [n for n in FAST_PATH_CLIENT_METHODS if not hasattr(client_cls, n)]
    try:
        probe = client_cls(CallbackAPIVersion.VERSION2, client_id="anjian-fast-path-check", protocol=mqtt.MQTTv5)
    except Exception as e:  # noqa: BLE001 - a paho whose constructor differs
        return [*missing, f"Client(...): {e}"]
    missing += [n for n in FAST_PATH_CLIENT_ATTRIBUTES if not hasattr(probe, n)]
    if not isinstance(getattr(probe, "_in_packet", None), dict) or "command" not in probe._in_packet:
        missing.append("_in_packet['command']")
    root = getattr(getattr(probe, "_on_message_filtered", None), "_root", None)
    if not isinstance(getattr(root, "_children", None), dict):
        missing.append("_on_message_filtered._root._children")
    return missing


def use_fast_path(wanted: bool, client_cls: type = mqtt.Client) -> bool:
    """Whether MQTT connections use the fast path: when the setting asks for it
    and the installed paho has every name it needs.  Checked once per process;
    one warning when the fast path is wanted but paho lacks a name."""
    if not wanted:
        return False
    with _fast_path_lock:
        first = client_cls not in _fast_path_checked
        if first:
            _fast_path_checked[client_cls] = fast_path_missing(client_cls)
        missing = _fast_path_checked[client_cls]
    if missing and first:
        log.warning("paho-mqtt %s lacks %s, which the MQTT fast path needs (checked on paho-mqtt 2.2); "
                    "using paho's own message path (set ANJIAN_MQTT_FAST_PATH=false to silence this)",
                    _paho_version(), ", ".join(missing))
    return not missing


def _paho_version() -> str:
    try:
        from importlib.metadata import version

        return version("paho-mqtt")
    except Exception:  # noqa: BLE001
        return "?"
