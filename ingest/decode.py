"""MQTT message -> typed event (``Ping``, ``GasReading``, ``Availability``, ``StreamNotice``).

One entry point, ``decode(topic, payload, scheme, received_at)``, for the three
dialects of docs/mqtt.md:

* our own scheme under ``PREFIX/v1/...``;
* OwnTracks (``owntracks/{user}/{device}`` and ``.../event``), as the booklet
  (owntracks.org/booklet/tech/json) documents it;
* Zigbee2MQTT (``zigbee2mqtt/{friendly_name}`` and ``.../availability``) for
  gas detectors, with the field names of zigbee-herdsman-converters.

It returns the event, ``None`` for a message that is ignored *by design* (an
OwnTracks ``card``, a Zigbee2MQTT bridge message, a plain switch, an empty
retained message that clears a topic), or raises ``Rejected`` with a
dead-letter reason code (docs/architecture.md).  ``decode_or_ignored`` is the
same but says why a message is ignored (``Ignored.reason``), so that the
pipeline can count every message (docs/mqtt.md, "Accounting").  It raises nothing else, for
any bytes on any topic (tests/ingest/test_decode.py fuzzes that).

``decode`` does no clock or map checks (``ingest.validate`` does), and it does
not resolve external ids: a Ping from OwnTracks carries ``"user/device"`` and a
GasReading from Zigbee2MQTT carries the friendly name; the pipeline maps them.

docs/mqtt.md documents every topic, payload, field mapping and reason code.

It is on the hot path: an own-scheme location message takes a few µs (one
``str.split``, one ``orjson.loads``, a handful of type checks).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from geo.coords import to_wgs84
from geo.types import MSG_ID_MAX_LEN, Availability, GasReading, Ping, StreamNotice
from ingest.timeparse import parse_ts, try_parse_ts
from ingest.validate import ALARM_VALUES, REASON_CODES, Rejected

__all__ = [
    "IGNORE_REASONS",
    "REASON_CODES",
    "Ignored",
    "Rejected",
    "TopicScheme",
    "Z2M_AVAILABILITY_MAX_LEVELS",
    "decode",
    "decode_or_ignored",
    "partition_skips",
    "subscriptions",
]

_INF = math.inf
_ALARMS = frozenset(ALARM_VALUES)

# A msg_id becomes part of a Redis key (idempotency) and a history column;
# longer ids are refused so that one message cannot make a huge key.  The limit
# is geo.types.MSG_ID_MAX_LEN, shared with the schema (data/models.py).  Control
# characters (C0, DEL, C1; NUL above all, which PostgreSQL text cannot hold)
# are refused too.
_CONTROL_CHAR = re.compile("[\x00-\x1f\x7f-\x9f]")

# Zigbee2MQTT friendly names may contain "/", and MQTT has no "any number of
# levels, then /availability" filter (``#`` must be last).  The retained
# availability topics are subscribed non-shared at each depth up to this many
# name levels ("floor3/kitchen/gas" is 3).  Deeper names still get their live
# availability through the shared ``zigbee2mqtt/#``, only not the retained copy
# at (re)subscribe.
Z2M_AVAILABILITY_MAX_LEVELS = 4


# --------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicScheme:
    """Where each dialect lives, and the limits decode needs."""

    prefix: str = "anjian"
    owntracks_base: str = "owntracks"
    z2m_base: str = "zigbee2mqtt"
    max_payload_bytes: int = 8192
    # Used only to grade a Zigbee2MQTT ``gas: true`` that carries a %LEL value.
    gas_low_lel: float = 20.0
    gas_high_lel: float = 50.0
    # Derived: the topic prefixes decode matches, computed once.
    own_root: str = field(default="", init=False, repr=False, compare=False)
    owntracks_root: str = field(default="", init=False, repr=False, compare=False)
    z2m_root: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bases = (self.prefix, self.owntracks_base, self.z2m_base)
        for name, base in zip(("prefix", "owntracks_base", "z2m_base"), bases):
            if (
                not isinstance(base, str)
                or not base
                or "+" in base
                or "#" in base
                or base.startswith("/")
                or base.endswith("/")
                or "//" in base
            ):
                raise ValueError(f"{name} {base!r} must be a plain topic path without wildcards")
        for i, a in enumerate(bases):
            for j, b in enumerate(bases):
                if i != j and (a == b or b.startswith(a + "/")):
                    raise ValueError(f"topic bases overlap: {a!r} and {b!r}; each dialect needs its own")
        if self.max_payload_bytes <= 0:
            raise ValueError("max_payload_bytes must be positive")
        object.__setattr__(self, "own_root", self.prefix + "/v1/")
        object.__setattr__(self, "owntracks_root", self.owntracks_base + "/")
        object.__setattr__(self, "z2m_root", self.z2m_base + "/")

    @classmethod
    def from_settings(cls, settings) -> TopicScheme:
        return cls(
            prefix=settings.mqtt_prefix,
            owntracks_base=settings.owntracks_topic,
            z2m_base=settings.z2m_topic,
            max_payload_bytes=int(settings.ingest_max_payload_bytes),
            gas_low_lel=float(settings.gas_low_lel),
            gas_high_lel=float(settings.gas_high_lel),
        )


# The partitions of the topics that ingest workers can be split by (settings.ingest_topics).
PARTITIONS = ("all", "sensors", "locations")


def subscriptions(scheme: TopicScheme, partition: str = "all") -> list[tuple[str, int, bool]]:
    """``(topic filter, qos, shareable)`` for every topic decode handles, or for those of
    one ``partition``: "sensors" (our sensor topics and Zigbee2MQTT) or "locations"
    (the rest, with the catch-all ``PREFIX/#``, which also matches the sensor topics:
    ``partition_skips`` says which of its messages to leave to the sensors partition).

    * Sensor state: QoS 1, so a persistent session keeps alarms while ingest
      restarts.  Shareable: workers split the stream (``$share/<group>/``).
    * OwnTracks: QoS 1 (the app's default ``pubQos``), because the same topic
      carries the ``lwt`` (offline) message, which must not be lost.
    * Availability topics are retained and must NOT be shared: a broker does
      not deliver retained messages to a new shared subscription (MQTT 5).
      Every worker reads them; Availability is idempotent, so that is safe.
    * ``zigbee2mqtt/#`` is shareable and also matches the availability topics,
      so a live availability change arrives twice (shared + non-shared).
    * Our own scheme the same way: ``PREFIX/#`` (shared, QoS 1) carries sensor
      state, locations and every other topic under the prefix, so that a
      message on a topic no decoder knows (``PREFIX/v2/...``) is received and
      dead-lettered as ``unknown_topic`` rather than never delivered.  A
      location is delivered at the QoS it was published with (phones publish
      QoS 0: not queued for an absent worker).
    """
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {PARTITIONS}, not {partition!r}")
    p, ot, z = scheme.prefix, scheme.owntracks_base, scheme.z2m_base
    z2m = [(f"{z}/#", 1, True)] + [(z + "/+" * levels + "/availability", 1, False)
                                    for levels in range(1, Z2M_AVAILABILITY_MAX_LEVELS + 1)]
    if partition == "sensors":
        return [(f"{p}/v1/sensors/#", 1, True), (f"{p}/v1/sensors/+/availability", 1, False), *z2m]
    subs = [(f"{p}/#", 1, True)]
    if partition == "all":
        subs.append((f"{p}/v1/sensors/+/availability", 1, False))
    subs += [
        (f"{p}/v1/inspectors/+/availability", 1, False),
        (f"{ot}/+/+", 1, True),
        (f"{ot}/+/+/event", 1, True),
    ]
    return subs + (z2m if partition == "all" else [])


def partition_skips(scheme: TopicScheme, partition: str) -> bytes | None:
    """The topic prefix whose messages a worker of ``partition`` receives but leaves to
    another partition (the "locations" catch-all ``PREFIX/#`` matches the sensor topics)."""
    return (scheme.own_root + "sensors/").encode() if partition == "locations" else None


# --------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------


class Ignored:
    """A message ignored by design, and why (one of ``IGNORE_REASONS``)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"Ignored({self.reason!r})"


# docs/mqtt.md, "Accounting".  The pipeline adds its own (duplicate_msg_id, ...).
_CLEARED = Ignored("cleared_retained")  # an empty message that clears a retained topic
_OWN_OUTBOUND = Ignored("own_outbound")  # our own dispatch / escalation messages
_NOT_A_POSITION = Ignored("not_a_position")  # OwnTracks cards, waypoints, commands, ...
_BRIDGE = Ignored("bridge_traffic")  # the Zigbee2MQTT bridge's own topics
_COMMAND = Ignored("device_command")  # .../set, .../get: commands to devices
_ATTRIBUTE_COPY = Ignored("attribute_copy")  # Zigbee2MQTT per-attribute output
_NOT_GAS = Ignored("not_a_gas_detector")  # a Zigbee2MQTT device without a gas field
IGNORE_REASONS: tuple[str, ...] = tuple(
    i.reason for i in (_CLEARED, _OWN_OUTBOUND, _NOT_A_POSITION, _BRIDGE, _COMMAND, _ATTRIBUTE_COPY, _NOT_GAS))


def decode(topic: str, payload: bytes, scheme: TopicScheme, received_at: float):
    """Decode one MQTT message; see the module docstring."""
    ev = decode_or_ignored(topic, payload, scheme, received_at)
    return None if type(ev) is Ignored else ev


def decode_or_ignored(topic: str, payload: bytes, scheme: TopicScheme, received_at: float):
    """``decode``, but a message ignored by design comes back as an ``Ignored``
    that says why (the pipeline counts it under that reason)."""
    if type(topic) is not str:
        raise Rejected("unknown_topic", f"topic must be a str, got {type(topic).__name__}")
    if type(payload) is not bytes:
        payload = payload.encode() if isinstance(payload, str) else bytes(payload)

    root = scheme.own_root
    if topic.startswith(root):
        return _decode_own(topic, topic[len(root):], payload, scheme, received_at)
    root = scheme.z2m_root
    if topic.startswith(root):
        return _decode_z2m(topic, topic[len(root):], payload, scheme, received_at)
    root = scheme.owntracks_root
    if topic.startswith(root):
        return _decode_owntracks(topic, topic[len(root):], payload, scheme, received_at)
    raise Rejected("unknown_topic", f"{_short(topic)}: no decoder for this topic")


# --------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------


def _short(s: str, n: int = 120) -> str:
    return repr(s if len(s) <= n else s[:n] + "...")


def _check_size(payload: bytes, scheme: TopicScheme) -> None:
    if len(payload) > scheme.max_payload_bytes:
        raise Rejected(
            "payload_too_large", f"payload: {len(payload)} bytes, more than {scheme.max_payload_bytes}"
        )


class _ConstSeen(Exception):
    pass


def _raise_const(name: str):
    raise _ConstSeen(name)


def _json_error(payload: bytes, exc: Exception) -> Rejected:
    """orjson refused the payload: was it a NaN/Infinity, or just not JSON?"""
    msg = str(exc)
    if "infinity" in msg.lower():  # e.g. 1e400, which overflows a double
        return Rejected("nan_value", f"payload: a number overflows to infinity ({msg})")
    if b"NaN" in payload or b"Infinity" in payload:
        # orjson rejects the NaN/Infinity literals outright; the stdlib parser
        # accepts them and tells us, so that the dead letter names the cause.
        try:
            json.loads(payload, parse_constant=_raise_const)
        except _ConstSeen as seen:
            return Rejected("nan_value", f"payload: {seen.args[0]} is not a number")
        except (ValueError, TypeError, RecursionError):
            pass
    return Rejected("bad_json", f"payload is not valid JSON: {msg}")


def _load_object(payload: bytes) -> dict:
    if not payload:
        raise Rejected("empty_payload", "payload: zero bytes where a JSON object was expected")
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _json_error(payload, exc) from None
    if type(obj) is not dict:
        raise Rejected("bad_json", f"payload: expected a JSON object, got a JSON {_json_kind(obj)}")
    return obj


def _json_kind(obj: object) -> str:
    return {list: "array", dict: "object", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(obj), "null"
    )


# A number written as a string, as devices do ("22.6"): ASCII digits only.  Python's
# float() also reads "22.6563_0" and Arabic-Indic or full-width digits, which no
# device means; NaN and infinity stay readable so that they get their own reason.
_NUMBER_TEXT = re.compile(r"\s*[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?\s*", re.ASCII)
_NOT_FINITE_TEXT = frozenset({"nan", "inf", "infinity"})


def _num(d: dict, key: str, required: bool = False) -> float | None:
    """A number, or a numeric string ("22.6"); None when absent or null."""
    v = d.get(key)
    if v is None:
        if required:
            raise Rejected("missing_field", f"{key}: required")
        return None
    t = type(v)
    if t is float or t is int:
        x = float(v)
    elif t is str:
        if not (_NUMBER_TEXT.fullmatch(v) or v.strip().lower().lstrip("+-") in _NOT_FINITE_TEXT):
            raise Rejected("bad_type", f"{key}: {_short(v, 40)} is not a number")
        x = float(v)
    else:
        raise Rejected("bad_type", f"{key}: expected a number, got {_json_kind(v)}")
    if x != x or x == _INF or x == -_INF:
        raise Rejected("nan_value", f"{key}: {v!r} is not a finite number")
    return x


def _ranged(d: dict, key: str, lo: float, hi: float, required: bool = False) -> float | None:
    x = _num(d, key, required)
    if x is not None and not lo <= x <= hi:
        raise Rejected("out_of_range", f"{key}: {x:g} is outside [{lo:g}, {hi:g}]")
    return x


def _required_ts(d: dict, key: str) -> float:
    v = d.get(key)
    if v is None:
        raise Rejected("missing_field", f"{key}: required")
    return parse_ts(v, key)


def _lat_lon(d: dict) -> tuple[float, float]:
    lat = _num(d, "lat", True)
    lon = _num(d, "lon", True)
    if not -90.0 <= lat <= 90.0:  # type: ignore[operator]
        raise Rejected("out_of_range", f"lat: {lat:g} is outside [-90, 90]")
    if not -180.0 <= lon <= 180.0:  # type: ignore[operator]
        raise Rejected("out_of_range", f"lon: {lon:g} is outside [-180, 180]")
    return lat, lon  # type: ignore[return-value]


def _check_ids(d: dict, keys: tuple[str, ...], device_id: str) -> None:
    """A payload that names a device must name the topic's device."""
    for key in keys:
        v = d.get(key)
        if v is not None and (v if type(v) is str else str(v)) != device_id:
            raise Rejected(
                "topic_mismatch", f"{key}: payload names {_short(str(v), 60)}, topic names {_short(device_id, 60)}"
            )


# Our scheme's optional per-device message counter: 0 .. 2**32 - 1.
SEQ_MAX = 2**32 - 1


def _seq(d: dict) -> int | None:
    v = d.get("seq")
    if v is None:
        return None
    t = type(v)
    if t is str and v.isascii() and v.isdigit() and len(v) <= 10:
        v = int(v)
    elif t is not int:
        raise Rejected("bad_type", f"seq: expected an integer, got {_json_kind(v)}")
    if not 0 <= v <= SEQ_MAX:
        raise Rejected("out_of_range", f"seq: {v} is outside [0, {SEQ_MAX}]")
    return v


def _msg_id(d: dict) -> str | None:
    v = d.get("msg_id")
    if v is None:
        return None
    t = type(v)
    if t is str:
        s = v
    elif t is int:
        s = str(v)
    else:
        raise Rejected("bad_type", f"msg_id: expected a string or an integer, got {_json_kind(v)}")
    if not s:
        return None  # "" means "no id"; it must not make every such message a duplicate
    if len(s) > MSG_ID_MAX_LEN:
        raise Rejected("out_of_range", f"msg_id: {len(s)} characters, more than {MSG_ID_MAX_LEN}")
    _no_control_chars("msg_id", s)
    return s


def _no_control_chars(key: str, s: str) -> None:
    m = _CONTROL_CHAR.search(s)
    if m is not None:
        raise Rejected("control_character", f"{key}: control character U+{ord(m.group()):04X} at {m.start()}")


_CRS_ALIASES = {"wgs84": "wgs84", "gcj02": "gcj02", "bd09": "bd09", "bd09ll": "bd09"}


def _crs(v: object) -> str:
    if type(v) is str:
        name = _CRS_ALIASES.get(v.strip().lower().replace("-", "").replace("_", ""))
        if name is not None:
            return name
    raise Rejected("bad_crs", f"crs: {_short(str(v), 40)} is not one of wgs84, gcj02, bd09")


def _availability(
    payload: bytes, kind: str, device_id: str, id_keys: tuple[str, ...], source: str, received_at: float
) -> Availability | None:
    """``online``/``offline``, bare or ``{"state": ...}``; empty = retained copy cleared."""
    if not payload:
        return _CLEARED  # an empty retained message deletes the retained state: nothing happened
    bare = payload.strip().lower()  # whitespace only: not empty, and not JSON (bad_json below)
    if bare == b"online":
        return Availability(kind, device_id, True, received_at, source)
    if bare == b"offline":
        return Availability(kind, device_id, False, received_at, source)
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _json_error(payload, exc) from None
    ts = received_at
    if type(obj) is dict:
        _check_ids(obj, id_keys, device_id)
        state = obj.get("state")
        if state is None:
            raise Rejected("missing_field", "state: required (online or offline)")
        if obj.get("ts") is not None:
            ts = parse_ts(obj["ts"], "ts")
    elif type(obj) is str:  # "online" with JSON quotes
        state = obj
    else:
        raise Rejected("bad_json", f"payload: expected online/offline or a JSON object, got a JSON {_json_kind(obj)}")
    if type(state) is not str:
        raise Rejected("bad_type", f"state: expected a string, got {_json_kind(state)}")
    s = state.strip().lower()
    if s == "online":
        return Availability(kind, device_id, True, ts, source)
    if s == "offline":
        return Availability(kind, device_id, False, ts, source)
    raise Rejected("out_of_range", f"state: {_short(state, 40)} is not online or offline")


# --------------------------------------------------------------------------
# Our own scheme: PREFIX/v1/{inspectors|sensors}/{id}/{leaf}
# --------------------------------------------------------------------------


def _decode_own(topic: str, rest: str, payload: bytes, scheme: TopicScheme, received_at: float):
    parts = rest.split("/")
    if len(parts) == 3 and parts[1]:
        kind, dev, leaf = parts
        if kind == "inspectors":
            if leaf == "location":
                _check_size(payload, scheme)
                return _own_location(dev, payload)
            if leaf == "availability":
                _check_size(payload, scheme)
                return _availability(payload, "inspector", dev, ("inspector_id", "id"), "anjian", received_at)
            if leaf == "stream":
                _check_size(payload, scheme)
                return _own_stream(dev, payload)
            if leaf in ("dispatch", "tasks"):
                # Our own outbound assignments and inspection tasks (docs/mqtt.md, MQTT out),
                # not input: each draw or plan approval publishes a tasks message per inspector.
                return _OWN_OUTBOUND
        elif kind == "sensors":
            if leaf == "state":
                _check_size(payload, scheme)
                return _own_state(dev, payload)
            if leaf == "availability":
                _check_size(payload, scheme)
                return _availability(payload, "sensor", dev, ("sensor_id", "id"), "anjian", received_at)
        elif kind == "alerts" and leaf == "escalation":
            return _OWN_OUTBOUND  # the alert engine's escalation notice, not input
    raise Rejected("unknown_topic", f"{_short(topic)}: not a topic of the v1 scheme")


def _own_location(dev: str, payload: bytes) -> Ping:
    d = _load_object(payload)
    if "inspector_id" in d or "id" in d:
        _check_ids(d, ("inspector_id", "id"), dev)
    ts = _required_ts(d, "ts")
    lat, lon = _lat_lon(d)
    crs = d.get("crs")
    if crs is not None and crs != "wgs84":
        crs = _crs(crs)
        if crs != "wgs84":
            lon, lat = to_wgs84(lon, lat, crs)
    return Ping(
        dev,
        ts,
        lat,
        lon,
        _ranged(d, "acc", 0.0, _INF),
        _ranged(d, "speed", 0.0, _INF),
        _ranged(d, "heading", 0.0, 360.0),
        _ranged(d, "batt", 0.0, 100.0),
        _msg_id(d),
        "anjian",
        _seq(d),
    )


def _own_state(dev: str, payload: bytes) -> GasReading:
    d = _load_object(payload)
    if "sensor_id" in d or "id" in d:
        _check_ids(d, ("sensor_id", "id"), dev)
    ts = _required_ts(d, "ts")
    alarm = d.get("alarm")
    if alarm is not None:
        if type(alarm) is not str:
            raise Rejected("bad_type", f"alarm: expected a string, got {_json_kind(alarm)}")
        alarm = alarm.strip().lower()
        if alarm not in _ALARMS:
            raise Rejected("out_of_range", f"alarm: {_short(alarm, 40)} is not one of {', '.join(ALARM_VALUES)}")
    return GasReading(
        dev,
        ts,
        _ranged(d, "lel", 0.0, 100.0),
        _ranged(d, "ppm", 0.0, _INF),
        alarm,
        _ranged(d, "batt", 0.0, 100.0),
        _msg_id(d),
        "anjian",
        seq=_seq(d),
    )


# A stream's addresses: http(s) only (a player fetches them; file:, javascript:
# or rtsp: are not ours to hand a browser), bounded, no whitespace or controls.
URL_MAX_LEN = 2048
STREAM_STATES = ("live", "ended")


def _url(d: dict, key: str, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None or v == "":
        if required:
            raise Rejected("missing_field", f"{key}: required")
        return None
    if type(v) is not str:
        raise Rejected("bad_type", f"{key}: expected a string, got {_json_kind(v)}")
    if len(v) > URL_MAX_LEN:
        raise Rejected("bad_url", f"{key}: {len(v)} characters, more than {URL_MAX_LEN}")
    m = _CONTROL_CHAR.search(v) or re.search(r"\s", v)
    if m is not None:
        raise Rejected("bad_url", f"{key}: control or space character U+{ord(m.group()):04X} at {m.start()}")
    try:
        parts = urlsplit(v)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise Rejected("bad_url", f"{key}: {_short(v, 80)} is not a URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Rejected("bad_url", f"{key}: {_short(v, 80)} is not an http(s) URL with a host")
    return v


def _own_stream(dev: str, payload: bytes) -> StreamNotice:
    d = _load_object(payload)
    if "inspector_id" in d or "id" in d:
        _check_ids(d, ("inspector_id", "id"), dev)
    ts = _required_ts(d, "ts")
    state = d.get("state")
    if state is None:
        raise Rejected("missing_field", "state: required (live or ended)")
    if type(state) is not str:
        raise Rejected("bad_type", f"state: expected a string, got {_json_kind(state)}")
    if state not in STREAM_STATES:
        raise Rejected("out_of_range", f"state: {_short(state, 40)} is not live or ended")
    live = state == "live"
    return StreamNotice(
        dev,
        ts,
        state,
        _url(d, "hls_url", required=live),
        _url(d, "whep_url"),
        None if live else _url(d, "recording_url"),
        _msg_id(d),
        "anjian",
    )


# --------------------------------------------------------------------------
# OwnTracks: {base}/{user}/{device}[/event]
# --------------------------------------------------------------------------

# km/h (OwnTracks ``vel``) -> m/s (Ping.speed_mps).
_KMH_TO_MPS = 1.0 / 3.6


def _decode_owntracks(topic: str, rest: str, payload: bytes, scheme: TopicScheme, received_at: float):
    parts = rest.split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise Rejected("unknown_topic", f"{_short(topic)}: OwnTracks topics are {scheme.owntracks_base}/USER/DEVICE")
    is_event = False
    if len(parts) > 2:
        if len(parts) == 3 and parts[2] == "event":
            is_event = True
        else:
            # /cmd, /info, /step, /beacon, /dump, /status, /waypoint(s), ...:
            # the app's other traffic, none of it a position or a presence.
            return _NOT_A_POSITION
    ext_id = parts[0] + "/" + parts[1]
    _check_size(payload, scheme)
    if not payload and not is_event:
        # The app publishes locations retained (pubRetain); an empty retained
        # message is how an operator clears a user's last position.
        return _CLEARED
    d = _load_object(payload)
    typ = d.get("_type")
    if typ is None:
        raise Rejected("missing_field", "_type: required in every OwnTracks message")
    if type(typ) is not str:
        raise Rejected("bad_type", f"_type: expected a string, got {_json_kind(typ)}")
    if typ == "location":
        _owntracks_topic_check(d, ext_id)
        return _owntracks_fix(d, ext_id)
    if typ == "transition":
        if d.get("lat") is None and d.get("lon") is None:
            return _NOT_A_POSITION  # the booklet makes lat/lon optional here; without them it is no fix
        _owntracks_topic_check(d, ext_id)
        return _owntracks_fix(d, ext_id)
    if typ == "lwt":
        # Its ``tst`` is when the app *first connected*, not when it was lost;
        # the broker publishes the will on disconnect, so received_at is the time.
        _owntracks_topic_check(d, ext_id)
        return Availability("inspector", ext_id, False, received_at, "owntracks")
    return _NOT_A_POSITION  # card, cmd, waypoint(s), status, steps, beacon, encrypted, ...


def _owntracks_topic_check(d: dict, ext_id: str) -> None:
    """HTTP-mode payloads (and some bridges) carry ``topic``; it must name this device."""
    t = d.get("topic")
    if type(t) is not str:
        return
    levels = t.split("/")
    if levels and levels[-1] == "event":
        levels = levels[:-1]
    if len(levels) >= 2 and levels[-2] + "/" + levels[-1] != ext_id:
        raise Rejected("topic_mismatch", f"topic: payload names {_short(t, 80)}, MQTT topic names {ext_id!r}")


def _ot_optional(d: dict, key: str, hi: float) -> float | None:
    """OwnTracks optional numbers: a negative value is the app's "unknown"."""
    x = _num(d, key)
    if x is None or x < 0:
        return None
    if x > hi:
        raise Rejected("out_of_range", f"{key}: {x:g} is outside [0, {hi:g}]")
    return x


def _owntracks_fix(d: dict, ext_id: str) -> Ping:
    ts = _required_ts(d, "tst")
    lat, lon = _lat_lon(d)
    vel_kmh = _ot_optional(d, "vel", _INF)
    msg_id = None
    mid = d.get("_id")  # Android: 4 random bytes per message (MessageWithRandomId)
    if type(mid) is str and mid:
        # 32 random bits can collide within a day of fixes; with the fix time
        # they cannot, and a broker redelivery still has both equal.  The _id
        # is cut so that the whole id fits MSG_ID_MAX_LEN.
        tail = f":{int(ts)}"
        _no_control_chars("_id", mid)
        msg_id = mid[:MSG_ID_MAX_LEN - len(tail)] + tail
    return Ping(
        ext_id,
        ts,
        lat,
        lon,
        _ot_optional(d, "acc", _INF),
        None if vel_kmh is None else vel_kmh * _KMH_TO_MPS,
        _ot_optional(d, "cog", 360.0),
        _ot_optional(d, "batt", 100.0),
        msg_id,
        "owntracks",
    )


# --------------------------------------------------------------------------
# Zigbee2MQTT: {base}/{friendly_name}[/availability]
# --------------------------------------------------------------------------

# A message is a gas detector's when it carries one of these (the exposes of
# every gas detector in zigbee-herdsman-converters: e.gas() -> "gas"; IAS zone
# type "gas" with alarm_1/alarm_2 -> "gas_alarm_1"/"gas_alarm_2"; Tuya
# gasValue() -> "gas_value"; Xiaomi/Aqara -> "gas_density", "gas_sensitivity").
# A smoke detector's "fault_alarm" or a door sensor's "tamper" alone is not.
_Z2M_GAS_KEYS = frozenset({"gas", "gas_alarm_1", "gas_alarm_2", "gas_value", "gas_density", "gas_sensitivity"})

# Raw fields kept in GasReading.extra, for audit and for the alert's detail.
_Z2M_AUDIT_KEYS = (
    "gas",
    "gas_alarm_1",
    "gas_alarm_2",
    "gas_value",
    "gas_density",
    "gas_sensitivity",
    "sensitivity",
    "tamper",
    "battery_low",
    "battery",
    "fault",
    "fault_alarm",
    "fault_state",
    "trouble",
    "lifecycle",
    "test",
    "self_test",
    "self_test_result",
    "preheat",
    "state",
    "silence",
    "last_seen",
    "linkquality",
)

# Unit of the concentration field by Zigbee2MQTT model (``device.model``, sent
# when the bridge has ``mqtt.include_device_information``).  From the exposes
# in src/devices/{lumi,tuya}.ts: withUnit("%LEL"/"LEL"/"LEL %") -> "lel",
# withUnit("ppm") -> "ppm"; the Mijia Honeywell detector's gas_density has no
# unit (0..255 raw, Koenkk/zigbee2mqtt#3309) -> None (kept in extra only).
_Z2M_MODEL_UNIT: dict[str, str | None] = {
    "JT-BZ-01AQ/A": "lel",
    "JT-BZ-03AQ/A": "lel",
    "TS0601_gas_sensor_2": "lel",
    "DY-RQ500A": "lel",
    "TS0601_gas_sensor_4": "lel",
    "JKD-816COM-Z": "lel",
    "DCR-RQJ": "lel",
    "ZG-225Z": "ppm",
    "JTQJ-BF-01LM/BW": None,
}

_TRUE_WORDS = frozenset({"true", "on", "yes"})
_FALSE_WORDS = frozenset({"false", "off", "no"})
_NO_FAULT_WORDS = frozenset({"", "none", "normal", "false", "off", "no"})


def _z2m_bool(v: object) -> bool | None:
    """true/false, or their string forms ("True", "false", "ON"); else None."""
    if v is True or v is False:
        return v  # type: ignore[return-value]
    if type(v) is str:
        s = v.strip().lower()
        if s in _TRUE_WORDS:
            return True
        if s in _FALSE_WORDS:
            return False
    # Numbers are deliberately not booleans: Tuya's JKD-816COM-Z passes the
    # raw enum through (0 = alarm, 1 = normal), the reverse of 0/1 as false/true.
    return None


def _z2m_num(v: object) -> float | None:
    t = type(v)
    if t is int or t is float:
        x = float(v)  # type: ignore[arg-type]
    elif t is str:
        try:
            x = float(v)  # type: ignore[arg-type]
        except ValueError:
            return None
    else:
        return None
    return x if x == x and x != _INF and x != -_INF else None


def _z2m_unit(key: str, d: dict, model: str | None) -> str | None:
    if model is not None and model in _Z2M_MODEL_UNIT:
        return _Z2M_MODEL_UNIT[model]
    # Without the model: the two detectors whose concentration is not %LEL
    # (Tuya ZG-225Z: gas_value in ppm; Mijia Honeywell: raw gas_density) are
    # the two that expose a low/medium/high "sensitivity"; every other gas
    # detector's gas_value/gas_density is %LEL.
    if "sensitivity" in d:
        return "ppm" if key == "gas_value" else None
    return "lel"


def _decode_z2m(topic: str, rest: str, payload: bytes, scheme: TopicScheme, received_at: float):
    if not rest:
        raise Rejected("unknown_topic", f"{_short(topic)}: no friendly name")
    if rest == "bridge" or rest.startswith("bridge/"):
        return _BRIDGE  # the bridge's own state, logs, device list, responses
    parts = rest.split("/")
    if parts[-1] in ("set", "get") or (len(parts) > 1 and parts[-2] in ("set", "get")):
        return _COMMAND  # commands to devices, not state from them
    if "" in parts:
        raise Rejected("unknown_topic", f"{_short(topic)}: empty topic level in the friendly name")
    _check_size(payload, scheme)
    if len(parts) > 1 and parts[-1] == "availability":
        name = rest[: -len("/availability")]
        return _availability(payload, "sensor", name, (), "zigbee2mqtt", received_at)
    if not payload:
        # Zigbee2MQTT clears a retained state topic this way when a device is
        # renamed or removed (lib/extension/bridge.ts).
        return _CLEARED
    if len(parts) > 1 and payload.lstrip()[:1] != b"{":
        # ``advanced.output: attribute(_and_json)`` publishes each field on its
        # own subtopic ("kitchen/gas" -> true, ".../state" -> ON).  Device state
        # always comes as a JSON object; anything else on a deeper topic is
        # that per-attribute copy (or a legacy /action), not ours to read.
        return _ATTRIBUTE_COPY
    d = _load_object(payload)
    return _z2m_state(rest, d, scheme, received_at)


def _z2m_state(name: str, d: dict, scheme: TopicScheme, received_at: float) -> GasReading | None:
    if _Z2M_GAS_KEYS.isdisjoint(d):
        return _NOT_GAS  # a switch, a lamp, a door sensor: no gas field, not ours

    model = None
    dev = d.get("device")  # only with mqtt.include_device_information
    if type(dev) is dict:
        fn = dev.get("friendlyName")
        if type(fn) is str and fn != name:
            raise Rejected(
                "topic_mismatch",
                f"device.friendlyName: payload names {_short(fn, 60)}, topic names {_short(name, 60)}",
            )
        m = dev.get("model")
        model = m if type(m) is str else None

    extra = {k: d[k] for k in _Z2M_AUDIT_KEYS if k in d}
    if model is not None:
        extra["model"] = model

    # --- the detector's own alarm flag ------------------------------------
    gas = None
    unparsed = []
    for key in ("gas", "gas_alarm_1", "gas_alarm_2"):
        if key in d:
            b = _z2m_bool(d[key])
            if b is None:
                unparsed.append(key)
            elif b:
                gas = True
            elif gas is None:
                gas = False

    # --- fault, tamper, test ----------------------------------------------
    fault = (
        _z2m_bool(d.get("fault_alarm")) is True
        or _z2m_bool(d.get("trouble")) is True
        or _z2m_bool(d.get("lifecycle")) is True
    )
    v = d.get("fault")  # bool (tuya.exposes.fault) or enum none/fault/sensor_fault/...
    if v is not None and not fault:
        b = _z2m_bool(v)
        fault = b if b is not None else (type(v) is str and v.strip().lower() not in _NO_FAULT_WORDS)
    v = d.get("fault_state")  # Heiman: normal / gas_fault / ...
    if type(v) is str and v.strip().lower() not in _NO_FAULT_WORDS:
        fault = True
    result = d.get("self_test_result")  # Tuya: checking / success / failure / others
    if result in ("failure", "check_failure"):
        fault = True
    tamper = _z2m_bool(d.get("tamper")) is True
    self_test = d.get("self_test")  # Tuya: bool, or enum checking/check_success/...
    test = (
        _z2m_bool(d.get("test")) is True
        or _z2m_bool(self_test) is True
        or self_test == "checking"
        or result == "checking"
    )

    # --- concentration ----------------------------------------------------
    # While the sensor warms up (Tuya "preheat": true, Aqara "state":
    # "preparation") its reading is not a measurement; it stays in extra only.
    warming = _z2m_bool(d.get("preheat")) is True or d.get("state") == "preparation"
    lel = ppm = None
    for key in ("gas_density", "gas_value"):
        if key in d and not warming:
            x = _z2m_num(d[key])
            if x is None:
                continue
            unit = _z2m_unit(key, d, model)
            if unit == "lel" and 0.0 <= x <= 100.0:
                lel = x
            elif unit == "ppm" and x >= 0.0:
                ppm = x
            # else: unit unknown or impossible for %LEL: only in extra

    batt = _z2m_num(d.get("battery"))
    if batt is not None and not 0.0 <= batt <= 100.0:
        batt = None

    # --- level ------------------------------------------------------------
    # gas=true is the detector's own alarm.  With a %LEL reading it is graded
    # by our thresholds, but never below "low" (the detector's own set point,
    # e.g. Aqara's 10/15 %LEL, may be below ours); without one we cannot tell
    # how bad it is, and assume the worst.  gas=false with a %LEL reading
    # leaves the level to the reading and the sensor's thresholds (alarm None,
    # docs/mqtt.md).  A gas alarm outranks fault, fault outranks tamper,
    # tamper outranks a self-test.
    if gas:
        alarm = "low" if lel is not None and lel < scheme.gas_high_lel else "high"
    elif fault:
        alarm = "fault"
    elif tamper:
        alarm = "tamper"
    elif test:
        alarm = "test"
    elif gas is False:
        alarm = "none" if lel is None else None
    else:
        alarm = None
        if unparsed and lel is None and ppm is None:
            key = unparsed[0]
            raise Rejected("bad_type", f"{key}: {_short(str(d[key]), 40)} is not a boolean, and nothing else is usable")

    ts = received_at
    if "last_seen" in d:  # ISO_8601, ISO_8601_local or epoch ms; "relative" is not parseable
        seen = try_parse_ts(d["last_seen"])
        if seen is not None:
            ts = seen

    return GasReading(name, ts, lel, ppm, alarm, batt, None, "zigbee2mqtt", extra)
