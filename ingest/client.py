"""The MQTT connection, in code we own (after Home Assistant's mqtt client).

- MQTT 5 where the broker speaks it, 3.1.1 otherwise (probed once at start).
- A persistent session: clean start off with a session expiry (5) or
  clean_session=False (3.1.1), QoS 1 on sensor topics, manual acks after the
  batch is stored, so no alarm is lost while a worker restarts.
- paho reconnects with backoff; we subscribe again in ``on_connect`` and log
  each connect and disconnect once.
- Bad credentials stop the client with a clear message instead of retrying.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

# Reason codes (MQTT 5) / return codes (3.1.1) that retrying cannot fix.
FATAL_CONNECT_REASONS = {"Bad user name or password", "Not authorized", "Banned", "Client identifier not valid"}


class MqttAuthError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, not {parts.scheme}://")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


# An empty PUBLISH property set, copied per message (see _Client).
_NO_PUBLISH_PROPERTIES = Properties(PacketTypes.PUBLISH)


def _empty_publish_properties() -> Properties:
    p = Properties.__new__(Properties)
    p.__dict__.update(_NO_PUBLISH_PROPERTIES.__dict__)  # the tables are read-only
    return p


class _Client(mqtt.Client):
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

# What _Client reads, calls or overrides of paho's private code.  They were
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


def _new_client(addr: BrokerAddress, client_id: str, protocol, *, manual_ack: bool, tls_ca=None, tls_insecure=False,
                fast_path: bool = False, clean: bool = False):
    cls = _Client if fast_path else mqtt.Client
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else clean,
        manual_ack=manual_ack,
    )
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    if addr.tls:
        client.tls_set(ca_certs=str(tls_ca) if tls_ca else None, cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(bool(tls_insecure))
    return client


def probe_protocol(addr: BrokerAddress, timeout_s: float = 5.0, **tls) -> int:
    """Connect once with MQTT 5; answer MQTTv5 if the broker accepts it, else MQTTv311."""
    done = threading.Event()
    result: dict[str, object] = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["rc"] = reason_code
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        done.set()

    client = _new_client(addr, f"anjian-probe-{uuid.uuid4().hex[:8]}", mqtt.MQTTv5, manual_ack=False, **tls)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(addr.host, addr.port, keepalive=10, clean_start=True)
    except OSError as e:
        raise ConnectionError(f"cannot reach MQTT broker {addr.host}:{addr.port}: {e}") from e
    client.loop_start()
    done.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    rc = result.get("rc")
    if rc is not None and not rc.is_failure:
        return mqtt.MQTTv5
    if rc is not None and str(rc) in FATAL_CONNECT_REASONS:
        raise MqttAuthError(f"MQTT broker {addr.host}:{addr.port} refused the credentials: {rc}")
    return mqtt.MQTTv311


def publisher_client_id(base: str, role: str) -> str:
    """A client id of its own for a publishing process: ``base-role-host-pid-rand``.

    Ingest workers keep a stable id (``base-N``) for their persistent session;
    a publisher keeps no session, so its id only has to be unique: the host and
    pid say in the broker's log which process it is, the random tail keeps two
    engines in one process (tests) apart.  MQTT 5 allows 65535 bytes; the
    hostname is cut so that 3.1.1 brokers that limit ids (to 65 or so) take it.
    """
    host = re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:24]
    return f"{base}-{role}-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class MqttConnection:
    """A paho client with our connect/subscribe/backoff policy.

    ``subscriptions`` is a list of (topic filter, qos); they are (re)subscribed
    on every connect.  ``on_message(msg)`` runs in paho's network thread and
    must only enqueue.  ``on_raw_publish(topic, payload, qos, mid)``, when
    given, gets the messages of the fast path instead (MQTT 5, QoS 0/1, no
    properties: nearly all), with the topic as bytes and no MQTTMessage built;
    every other message still goes to ``on_message``.  ``fast_path=False`` (the
    ``mqtt_fast_path`` setting) uses paho's own Client: every message goes to
    ``on_message``.
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        subscriptions: Callable[[int], list[tuple[str, int]]],
        on_message: Callable[[mqtt.MQTTMessage], None],
        *,
        protocol: str = "auto",
        session_expiry_s: int = 3600,
        keepalive_s: int = 30,
        reconnect_max_s: float = 30.0,
        manual_ack: bool = True,
        tls_ca=None,
        tls_insecure: bool = False,
        on_raw_publish: Callable[[bytes, bytes, int, int], None] | None = None,
        fast_path: bool = True,
        clean: bool = False,
    ):
        self.addr = BrokerAddress.parse(url)
        self._tls = {"tls_ca": tls_ca, "tls_insecure": tls_insecure}
        if protocol == "auto":
            self.protocol = probe_protocol(self.addr, **self._tls)
        else:
            self.protocol = mqtt.MQTTv5 if protocol in ("5", "5.0") else mqtt.MQTTv311
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.session_expiry_s = 0 if clean else session_expiry_s
        self.clean = clean
        self.keepalive_s = keepalive_s
        self.connected = threading.Event()
        self.fatal: str | None = None
        self.stopping = False
        self.connects = 0
        self.disconnects = 0
        # The fast path (_Client) when wanted and the installed paho has what it
        # needs; otherwise paho's own Client, through its public API only.
        self.fast_path = use_fast_path(fast_path)
        self.client = _new_client(self.addr, client_id, self.protocol, manual_ack=manual_ack, fast_path=self.fast_path,
                                  clean=clean, **self._tls)
        self.client.reconnect_delay_set(min_delay=1, max_delay=int(max(1, reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = lambda c, u, msg: on_message(msg)
        if self.fast_path:
            self.client.on_raw_publish = on_raw_publish

    @property
    def is_v5(self) -> bool:
        return self.protocol == mqtt.MQTTv5

    def start(self) -> None:
        props = None
        kwargs = {}
        if self.is_v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            kwargs = {"clean_start": self.clean, "properties": props}
        # connect_async + loop_start: paho retries the first connection too.
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=self.keepalive_s, **kwargs)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def ack(self, mid: int, qos: int) -> None:
        if qos:
            self.client.ack(mid, qos)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            if str(reason_code) in FATAL_CONNECT_REASONS:
                self.fatal = f"MQTT broker {self.addr.host}:{self.addr.port} refused {self.client_id}: {reason_code}"
                log.error("%s; not retrying. Check ANJIAN_MQTT_URL's user and password.", self.fatal)
                client.disconnect()
                client.loop_stop()
            else:
                log.warning("MQTT connect refused: %s; retrying", reason_code)
            return
        self.connects += 1
        subs = self.subscriptions(self.protocol)
        log.info(
            "MQTT connected to %s:%s as %s (MQTT %s, session %s); subscribing to %d filters",
            self.addr.host, self.addr.port, self.client_id, "5" if self.is_v5 else "3.1.1",
            "resumed" if flags.session_present else "new", len(subs),
        )
        if subs:
            client.subscribe(subs)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.connected.clear()
        self.disconnects += 1
        if self.fatal or self.stopping:
            return
        if str(reason_code) == "Session taken over":
            log.error("MQTT broker %s:%s dropped %s for another client with the same id: every process needs "
                      "its own (ingest: a distinct --worker-no); reconnecting", self.addr.host, self.addr.port,
                      self.client_id)
            return
        log.warning("MQTT disconnected from %s:%s (%s); reconnecting with backoff",
                    self.addr.host, self.addr.port, reason_code)
