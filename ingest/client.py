"""The MQTT connection, in code we own (after Home Assistant's mqtt client).

- MQTT 5 where the broker speaks it, 3.1.1 otherwise (probed once at start).
- A persistent session: clean start off with a session expiry (5) or
  clean_session=False (3.1.1), QoS 1 on sensor topics, manual acks after the
  batch is stored, so no alarm is lost while a worker restarts.
- We reconnect, not paho: paho's automatic reconnect is off
  (``reconnect_on_failure=False``), and a supervisor thread of ours connects,
  runs paho's network thread until the connection is lost, waits a short
  backoff and connects again (``Backoff``: the first retry within
  ``mqtt_reconnect_min_s``, 0.5 s by default, then doubling with jitter up
  to ``mqtt_reconnect_max_s``).  Home Assistant's client does the same
  (``_reconnect_loop`` around ``mqttc.reconnect()``).  paho's own backoff
  started at 1 s and grew to the cap, so after a broker restart the
  ingest came back up to 30 s late.
- We subscribe again in ``on_connect`` and log each connect and each outage
  once.
- Bad credentials stop the client with a clear message instead of retrying.
- A cluster: ``ANJIAN_MQTT_URL`` may name several nodes (config/mqtt.py).  The
  client connects to the first that answers; when its node dies, or a connect
  fails, the next attempt goes to the next node, round the list.  The
  persistent session lives in the cluster (EMQX, NATS with JetStream), so the
  worker resumes it on whichever node it reaches.

The paho fast path (``mqtt_fast_path``) is in ingest/paho_fast.py; this
module only picks its client class.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from config.mqtt import BrokerAddress, broker_addresses
from ingest.paho_fast import FastClient, use_fast_path

log = logging.getLogger(__name__)

# The Receive Maximum a client that acknowledges by hand announces in its MQTT 5
# CONNECT: how many QoS 1 messages the broker may have in flight to it, unacked.
# The ingest acknowledges a message only once its batch is stored, so its window
# must hold everything between the socket and the history commit (the priority
# queue holds up to ingest_priority_queue_max). MQTT 5 says an absent Receive
# Maximum means 65,535, but Mosquitto 2.0 then applies its own
# max_inflight_messages, 20 by default: at 833 detector heartbeats a second the
# broker queued the rest behind those 20, an alarm waited its turn behind up to
# max_queued_messages (1,000) heartbeats, and past that Mosquitto dropped QoS 1
# messages, alarms too, silently (bench/bench_overload.py, docs/benchmarks.md
# section 14). Announced, the broker takes it (Mosquitto 2.0 and EMQX do).
RECEIVE_MAXIMUM = 65535

# Reason codes (MQTT 5) / return codes (3.1.1) that retrying cannot fix.
FATAL_CONNECT_REASONS = {"Bad user name or password", "Not authorized", "Banned", "Client identifier not valid"}


class MqttAuthError(RuntimeError):
    pass


class Backoff:
    """Waits between connection attempts: ``first`` seconds at most for the
    first retry, doubling up to ``cap``, each wait drawn from its upper half
    (jitter, so several workers do not knock on the broker together)."""

    def __init__(self, first: float = 0.5, cap: float = 5.0, rng: random.Random | None = None):
        self.first = max(0.01, float(first))
        self.cap = max(self.first, float(cap))
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        ceiling = min(self.cap, self.first * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempt = 0


def _new_client(addr: BrokerAddress, client_id: str, protocol, *, manual_ack: bool, tls_ca=None, tls_insecure=False,
                fast_path: bool = False, clean: bool = False, reconnect_on_failure: bool = True):
    cls = FastClient if fast_path else mqtt.Client
    client = cls(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=None if protocol == mqtt.MQTTv5 else clean,
        manual_ack=manual_ack,
        reconnect_on_failure=reconnect_on_failure,
    )
    if addr.username:
        client.username_pw_set(addr.username, addr.password)
    if addr.tls:
        client.tls_set(ca_certs=str(tls_ca) if tls_ca else None, cert_reqs=ssl.CERT_REQUIRED)
        client.tls_insecure_set(bool(tls_insecure))
    return client


def probe_protocol_any(addrs: list[BrokerAddress], timeout_s: float = 5.0, **tls) -> int:
    """``probe_protocol`` on the first node that answers."""
    errors = []
    for addr in addrs:
        try:
            return probe_protocol(addr, timeout_s, **tls)
        except ConnectionError as e:
            errors.append(str(e))
    raise ConnectionError("; ".join(errors))


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


def forget_session(addrs: list[BrokerAddress], client_id: str, timeout_s: float = 10.0, **tls) -> None:
    """End the broker's session of ``client_id``: connect once with that id and a clean
    start, then leave (MQTT 5: session expiry 0; 3.1.1: clean session), so the broker
    drops its subscriptions and the QoS 1 messages it queued for it.

    What a deployment does after retiring a worker's client id (a switch to partitions:
    docs/deploy.md); the broker would otherwise keep queueing for it until it expires.
    A client connected with that id now is taken over and disconnected by the broker:
    the caller checks that none is (``app.py mqtt forget-session``)."""
    protocol = probe_protocol_any(addrs, timeout_s, **tls)
    errors = []
    for addr in addrs:
        done = threading.Event()
        result: dict[str, object] = {}

        def on_connect(client, userdata, flags, reason_code, properties, result=result, done=done):
            result["rc"] = reason_code
            done.set()

        client = _new_client(addr, client_id, protocol, manual_ack=False, clean=True,
                             reconnect_on_failure=False, **tls)
        client.on_connect = on_connect
        try:
            if protocol == mqtt.MQTTv5:
                client.connect(addr.host, addr.port, keepalive=10, clean_start=True)  # no expiry: ends on leaving
            else:
                client.connect(addr.host, addr.port, keepalive=10)
        except OSError as e:
            errors.append(f"{addr.host}:{addr.port}: {e}")
            continue
        client.loop_start()
        try:
            if not done.wait(timeout_s):
                errors.append(f"{addr.host}:{addr.port}: no CONNACK within {timeout_s:.0f} s")
                continue
            rc = result["rc"]
            if rc.is_failure:
                if str(rc) in FATAL_CONNECT_REASONS:
                    raise MqttAuthError(f"MQTT broker {addr.host}:{addr.port} refused the credentials: {rc}")
                errors.append(f"{addr.host}:{addr.port}: {rc}")
                continue
            client.disconnect()
            return
        finally:
            client.loop_stop()
    raise ConnectionError("; ".join(errors) or "no broker")


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
    """A paho client with our connect/subscribe/reconnect policy.

    ``subscriptions`` is a list of (topic filter, qos); they are (re)subscribed
    on every connect.  ``unsubscriptions(protocol)``, when given, lists filters
    to drop on every connect before subscribing (a worker whose subscription
    form changed, plain or ``$share``, leaves the other form in its persistent
    session otherwise, and would get each message twice).  ``on_message(msg)``
    runs in paho's network thread and must only enqueue.
    ``on_raw_publish(topic, payload, qos, mid)``, when given, gets the messages
    of the fast path instead (MQTT 5, QoS 0/1, no properties: nearly all), with
    the topic as bytes and no MQTTMessage built; every other message still goes
    to ``on_message``.  ``fast_path=False`` (the ``mqtt_fast_path`` setting)
    uses paho's own Client: every message goes to ``on_message``.
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
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 5.0,
        manual_ack: bool = True,
        tls_ca=None,
        tls_insecure: bool = False,
        on_raw_publish: Callable[[bytes, bytes, int, int], None] | None = None,
        fast_path: bool = True,
        clean: bool = False,
        unsubscriptions: Callable[[int], list[str]] | None = None,
        optional_subscriptions: list[tuple[str, int]] | None = None,
    ):
        self.addrs = broker_addresses(url)
        self.addr = self.addrs[0]  # the node of the current (or next) attempt
        self._tls = {"tls_ca": tls_ca, "tls_insecure": tls_insecure}
        if protocol == "auto":
            self.protocol = probe_protocol_any(self.addrs, **self._tls)
        else:
            self.protocol = mqtt.MQTTv5 if protocol in ("5", "5.0") else mqtt.MQTTv311
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.unsubscriptions = unsubscriptions
        # Subscribed on every connect in a SUBSCRIBE of their own: a broker that
        # refuses one (a $SYS topic it lacks or an ACL denies) is logged once, at
        # info, and the stream's own subscription is not held up by it.
        self.optional_subscriptions = optional_subscriptions or []
        self._optional_mid: int | None = None
        self._optional_refused_logged = False
        self.session_expiry_s = 0 if clean else session_expiry_s
        self.manual_ack = manual_ack
        self.clean = clean
        self.keepalive_s = keepalive_s
        self.backoff = Backoff(reconnect_min_s, reconnect_max_s)
        self.connected = threading.Event()
        # Set once the broker acknowledged this connection's SUBSCRIBE (SUBACK):
        # from then on nothing published to the filters is missed.
        self.subscribed = threading.Event()
        # When ``subscribed`` was last set (epoch s), None while it is not: the workers'
        # heartbeats carry it, and the alert engine counts a device's silence from it
        # (a broker away is not every device gone quiet).
        self.listening_since: float | None = None
        self._sub_mid: int | None = None
        self.fatal: str | None = None
        self.stopping = False
        self.connects = 0
        self.disconnects = 0
        self._stop = threading.Event()
        self._lost = threading.Event()  # set by on_disconnect: paho's thread is ending
        self._supervisor: threading.Thread | None = None
        self._session_up = False  # a CONNACK accepted us since the last backoff reset
        # The fast path (ingest/paho_fast.py) when wanted and the installed paho
        # has what it needs; otherwise paho's own Client, through its public API only.
        self.fast_path = use_fast_path(fast_path)
        # reconnect_on_failure=False: paho's loop ends when the connection is
        # lost, and our supervisor reconnects (see the module docstring).
        self.client = _new_client(self.addr, client_id, self.protocol, manual_ack=manual_ack, fast_path=self.fast_path,
                                  clean=clean, reconnect_on_failure=False, **self._tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, msg: on_message(msg)
        if self.fast_path:
            self.client.on_raw_publish = on_raw_publish

    @property
    def is_v5(self) -> bool:
        return self.protocol == mqtt.MQTTv5

    def start(self) -> None:
        kwargs = {}
        if self.is_v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.session_expiry_s
            if self.manual_ack:
                props.ReceiveMaximum = RECEIVE_MAXIMUM
            kwargs = {"clean_start": self.clean, "properties": props}
        # Stores where and how to connect; the supervisor connects (and retries
        # the first connection too).
        self._connect_kwargs = kwargs
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=self.keepalive_s, **kwargs)
        self._supervisor = threading.Thread(target=self._supervise, name=f"mqtt-{self.client_id}", daemon=True)
        self._supervisor.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopping = True
        self._stop.set()
        try:
            self.client.disconnect()
        finally:
            self._lost.set()
            if self._supervisor is not None and self._supervisor is not threading.current_thread():
                self._supervisor.join(timeout_s)
            self.client.loop_stop()

    def ack(self, mid: int, qos: int) -> None:
        if qos:
            self.client.ack(mid, qos)

    def _supervise(self) -> None:
        """Connect, run paho's network thread until the connection is lost, wait
        the backoff, again; until ``stop`` or a fatal refusal."""
        outage_logged = False
        first = True
        while not self._stop.is_set() and not self.fatal:
            self._lost.clear()
            if not first:
                self._next_node()
            first = False
            try:
                self.client.reconnect()
            except Exception as e:  # noqa: BLE001 - OSError, ssl errors, a refused socket
                if not outage_logged:
                    log.warning("MQTT broker %s:%s not reachable (%s); retrying (first retry within %.1fs, "
                                "then up to %.1fs apart)", self.addr.host, self.addr.port, e, self.backoff.first,
                                self.backoff.cap)
                    outage_logged = True
                else:
                    log.debug("MQTT connect to %s:%s failed: %s", self.addr.host, self.addr.port, e)
                self._stop.wait(self.backoff.next())
                continue
            self.client.loop_start()
            while not self._lost.wait(0.5):
                if self._stop.is_set():
                    break
            self.client.loop_stop()
            if self._stop.is_set() or self.fatal:
                break
            if self._session_up:
                # It was up: the next outage starts with the short first wait.
                self._session_up = False
                outage_logged = False
                self.backoff.reset()
            self._stop.wait(self.backoff.next())

    def _next_node(self) -> None:
        """Point the next attempt at the next node of the cluster (nothing to do with one node)."""
        if len(self.addrs) < 2:
            return
        i = (self.addrs.index(self.addr) + 1) % len(self.addrs)
        self.addr = self.addrs[i]
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=self.keepalive_s, **self._connect_kwargs)

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            if str(reason_code) in FATAL_CONNECT_REASONS:
                who = f"user {self.addr.username!r}" if self.addr.username else "an anonymous client"
                self.fatal = (f"MQTT broker {self.addr.host}:{self.addr.port} refused {self.client_id} ({who}): "
                              f"{reason_code}")
                log.error("%s; not retrying. Check ANJIAN_MQTT_URL's user and password.", self.fatal)
                self._stop.set()
            else:
                log.warning("MQTT connect refused: %s; retrying", reason_code)
            self._lost.set()
            return
        self.connects += 1
        self._session_up = True
        stale = self.unsubscriptions(self.protocol) if self.unsubscriptions else []
        subs = self.subscriptions(self.protocol)
        log.info(
            "MQTT connected to %s:%s as %s (MQTT %s, session %s); subscribing to %d filters",
            self.addr.host, self.addr.port, self.client_id, "5" if self.is_v5 else "3.1.1",
            "resumed" if flags.session_present else "new", len(subs),
        )
        if stale and flags.session_present:
            client.unsubscribe(stale)
        self.subscribed.clear()
        if subs:
            _rc, self._sub_mid = client.subscribe(subs)
        else:
            self.subscribed.set()
            self.listening_since = time.time()
        if self.optional_subscriptions:
            _rc, self._optional_mid = client.subscribe(self.optional_subscriptions)
        self.connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        if mid == self._optional_mid and self._optional_mid is not None:
            refused = [flt for (flt, _q), rc in zip(self.optional_subscriptions, reason_codes) if rc.is_failure]
            if refused and not self._optional_refused_logged:
                self._optional_refused_logged = True
                log.info("MQTT broker %s:%s refused %s's optional subscription(s) %s: not watched",
                         self.addr.host, self.addr.port, self.client_id, ", ".join(refused))
            return
        if mid != self._sub_mid:
            return
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("MQTT broker %s:%s refused %d of %s's subscriptions: %s", self.addr.host, self.addr.port,
                      len(refused), self.client_id, ", ".join(sorted(set(refused))))
        self.listening_since = time.time()
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        self.listening_since = None
        self._lost.set()
        if was_connected:
            self.disconnects += 1
        if self.fatal or self.stopping or not was_connected:
            return
        if str(reason_code) == "Session taken over":
            log.error("MQTT broker %s:%s dropped %s for another client with the same id: every process needs "
                      "its own (ingest: a distinct --worker-no); reconnecting", self.addr.host, self.addr.port,
                      self.client_id)
            return
        log.warning("MQTT disconnected from %s:%s (%s); reconnecting (first retry within %.1fs)",
                    self.addr.host, self.addr.port, reason_code, self.backoff.first)
