"""ingest.decode against real payloads (tests/ingest/fixtures/*.json), in the
style of Traccar's decoder tests: each fixture names where it was copied from,
and the test checks the fields the decoder must produce.

Then: string-typed numbers, timestamps, coordinate systems, every reason code
decode can raise, topics and subscriptions, and a fuzz test that decode raises
nothing but ``Rejected`` for any bytes on any topic.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from config.settings import load_settings
from geo.coords import from_wgs84, haversine_m, to_wgs84
from geo.types import Availability, GasReading, Ping, StreamNotice
from ingest.decode import (
    IGNORE_REASONS,
    REASON_CODES,
    Z2M_AVAILABILITY_MAX_LEVELS,
    Ignored,
    Rejected,
    TopicScheme,
    decode,
    decode_or_ignored,
    subscriptions,
)

FIXTURES = Path(__file__).parent / "fixtures"
RECEIVED_AT = 1714530100.0  # 2024-05-01 10:21:40 Asia/Shanghai
SCHEME = TopicScheme()
EVENT_TYPES = {"Ping": Ping, "GasReading": GasReading, "Availability": Availability}


def _cases(filename: str):
    data = json.loads((FIXTURES / filename).read_text(encoding="utf-8"))
    return [pytest.param(case, id=f"{filename[:-5]}:{case['name']}") for case in data["cases"]]


ALL_CASES = _cases("anjian.json") + _cases("owntracks.json") + _cases("zigbee2mqtt.json")


def _decode(topic: str, payload: bytes | str, scheme: TopicScheme = SCHEME):
    if isinstance(payload, str):
        payload = payload.encode()
    return decode(topic, payload, scheme, RECEIVED_AT)


def _reason(topic: str, payload: bytes | str, scheme: TopicScheme = SCHEME) -> str:
    with pytest.raises(Rejected) as info:
        _decode(topic, payload, scheme)
    assert info.value.detail, "a rejection must say which field and why"
    return info.value.reason


def _loc(**fields) -> bytes:
    body = {"ts": 1714530030, "lat": 22.6573, "lon": 114.0441}
    body.update(fields)
    return orjson.dumps({k: v for k, v in body.items() if v is not ...})


LOC = "anjian/v1/inspectors/insp-1/location"
STREAM = "anjian/v1/inspectors/insp-1/stream"


def _stream(**fields) -> bytes:
    body = {"ts": 1714530000, "state": "live", "hls_url": "http://cam.example/insp-1/live.m3u8", **fields}
    return orjson.dumps({k: v for k, v in body.items() if v is not None})
STATE = "anjian/v1/sensors/gs-1/state"


# --------------------------------------------------------------------------
# Real payloads
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", ALL_CASES)
def test_fixture(case):
    scheme = TopicScheme(**case.get("scheme", {}))
    expect = case["expect"]
    if "rejected" in expect:
        assert _reason(case["topic"], case["payload"], scheme) == expect["rejected"]
        return
    event = _decode(case["topic"], case["payload"], scheme)
    if expect["event"] is None:
        assert event is None
        return
    assert type(event) is EVENT_TYPES[expect["event"]]
    for key, want in expect.items():
        if key == "event":
            continue
        got = getattr(event, key)
        if want == "received_at":
            want = RECEIVED_AT
        if key == "extra":
            for k, v in want.items():
                assert got[k] == v, f"extra[{k}]"
        elif isinstance(want, float) or (isinstance(want, int) and not isinstance(want, bool) and got is not None):
            assert got == pytest.approx(want, rel=0, abs=1e-9), key
        else:
            assert got == want, key


def test_fixtures_say_where_they_come_from():
    for param in ALL_CASES:
        case = param.values[0]
        assert case.get("source"), case["name"]


# --------------------------------------------------------------------------
# Own scheme: types, optional fields, numeric strings
# --------------------------------------------------------------------------


def test_missing_optional_fields_are_none():
    ping = _decode(LOC, _loc())
    assert (ping.acc_m, ping.speed_mps, ping.heading_deg, ping.batt_pct, ping.msg_id) == (None,) * 5
    reading = _decode(STATE, b'{"ts": 1714530030}')
    assert (reading.lel_pct, reading.ppm, reading.alarm, reading.batt_pct, reading.msg_id) == (None,) * 5


def test_null_optional_fields_are_absent():
    ping = _decode(LOC, _loc(acc=None, speed=None, batt=None, crs=None, msg_id=None))
    assert ping.acc_m is None and ping.msg_id is None


def test_numeric_strings_are_numbers():
    ping = _decode(LOC, _loc(ts="1714530030", lat="22.6573", lon=" 114.0441 ", acc="5", batt="87.5"))
    assert (ping.ts, ping.lat, ping.lon, ping.acc_m, ping.batt_pct) == (1714530030.0, 22.6573, 114.0441, 5.0, 87.5)
    reading = _decode(STATE, b'{"ts": "1714530030", "lel": "22.6", "ppm": "1000", "batt": "90"}')
    assert (reading.lel_pct, reading.ppm, reading.batt_pct) == (22.6, 1000.0, 90.0)


def test_a_rejection_names_what_came_instead_of_a_number():
    """A hostile-input sweep read "lat: expected a number, got null" for an object."""
    with pytest.raises(Rejected) as info:
        _decode(LOC, _loc(lat={"a": 1}))
    assert info.value.detail == "lat: expected a number, got object"


def test_boolean_is_not_a_number():
    assert _reason(LOC, _loc(lat=True)) == "bad_type"
    assert _reason(LOC, _loc(ts=False)) == "bad_type"


def test_alarm_values():
    for alarm in ("none", "low", "high", "fault", "tamper", "test", "HIGH"):
        reading = _decode(STATE, orjson.dumps({"ts": 1714530030, "alarm": alarm}))
        assert reading.alarm == alarm.lower()
    assert _reason(STATE, b'{"ts": 1714530030, "alarm": "boom"}') == "out_of_range"
    assert _reason(STATE, b'{"ts": 1714530030, "alarm": 2}') == "bad_type"


@pytest.mark.parametrize(
    "field, value",
    [("lel", 0), ("lel", 100), ("batt", 0), ("batt", 100), ("heading", 360), ("acc", 0), ("speed", 0)],
)
def test_range_edges_are_inside(field, value):
    topic = STATE if field == "lel" else LOC
    payload = orjson.dumps({"ts": 1714530030, field: value}) if topic == STATE else _loc(**{field: value})
    assert _decode(topic, payload) is not None


def test_payload_types_accepted():
    payload = _loc()
    for p in (payload, bytearray(payload), memoryview(payload), payload.decode()):
        assert decode(LOC, p, SCHEME, RECEIVED_AT).lat == 22.6573


def test_unknown_fields_are_ignored():
    ping = _decode(LOC, _loc(alt=12, provider="gps", extra={"a": [1, 2]}))
    assert ping.lat == 22.6573


def test_msg_id():
    assert _decode(LOC, _loc(msg_id="abc")).msg_id == "abc"
    assert _decode(LOC, _loc(msg_id=42)).msg_id == "42"
    assert _decode(LOC, _loc(msg_id="")).msg_id is None
    assert _reason(LOC, _loc(msg_id=1.5)) == "bad_type"
    assert _reason(LOC, _loc(msg_id="x" * 129)) == "out_of_range"


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts, want",
    [
        (1714530030, 1714530030.0),
        (1714530030.75, 1714530030.75),
        (1714530030750, 1714530030.75),  # ms
        ("1714530030750", 1714530030.75),
        (1e11, 1e11),  # the threshold itself is seconds
        (100000000001, 100000000.001),  # just above it is ms
        ("2024-05-01T10:20:30", 1714530030.0),  # naive = Asia/Shanghai
        ("2024-05-01 10:20:30", 1714530030.0),
        ("2024-05-01T10:20:30.250", 1714530030.25),
        ("2024-05-01T10:20:30+08:00", 1714530030.0),
        ("2024-05-01T02:20:30Z", 1714530030.0),
        ("2024-05-01T02:20:30.000+00:00", 1714530030.0),
        ("2024-05-01T04:20:30+02:00", 1714530030.0),
    ],
)
def test_timestamps(ts, want):
    assert _decode(LOC, _loc(ts=ts)).ts == pytest.approx(want, abs=1e-6)


def test_seconds_and_milliseconds_agree():
    assert _decode(LOC, _loc(ts=1714530030)).ts == _decode(LOC, _loc(ts=1714530030000)).ts


def test_naive_iso_is_shanghai_not_utc():
    naive = _decode(LOC, _loc(ts="2024-05-01T10:20:30")).ts
    utc = _decode(LOC, _loc(ts="2024-05-01T10:20:30Z")).ts
    assert utc - naive == 8 * 3600


@pytest.mark.parametrize(
    "ts, reason",
    [
        ("yesterday", "bad_type"),
        ("2024-13-01T00:00:00", "bad_type"),
        ([1714530030], "bad_type"),
        ({"s": 1}, "bad_type"),
        (True, "bad_type"),
        ("NaN", "nan_value"),
        ("inf", "nan_value"),
        ("-Infinity", "nan_value"),
        ("1e999", "nan_value"),
    ],
)
def test_bad_timestamps(ts, reason):
    assert _reason(LOC, _loc(ts=ts)) == reason


# --------------------------------------------------------------------------
# Coordinate systems
# --------------------------------------------------------------------------

# Longhua District, Shenzhen (a point in the demo city).
WGS_LON, WGS_LAT = 114.0441, 22.6573


@pytest.mark.parametrize("crs, aliases", [("gcj02", ["gcj02", "GCJ-02", "gcj_02"]), ("bd09", ["bd09", "BD-09", "bd09ll"])])
def test_crs_lands_on_the_wgs84_point(crs, aliases):
    lon, lat = from_wgs84(WGS_LON, WGS_LAT, crs)
    assert haversine_m(lon, lat, WGS_LON, WGS_LAT) > 100  # the offset is real (hundreds of metres)
    want_lon, want_lat = to_wgs84(lon, lat, crs)
    for alias in aliases:
        ping = _decode(LOC, _loc(lat=lat, lon=lon, crs=alias))
        assert (ping.lon, ping.lat) == (want_lon, want_lat)
        assert haversine_m(ping.lon, ping.lat, WGS_LON, WGS_LAT) < 0.01  # the iterative inverse: < 1 cm


def test_crs_default_and_explicit_wgs84_are_unchanged():
    assert (_decode(LOC, _loc()).lat, _decode(LOC, _loc(crs="WGS84")).lon) == (WGS_LAT, WGS_LON)


@pytest.mark.parametrize("crs", ["utm", "epsg:4326", "", 4326, ["gcj02"]])
def test_bad_crs(crs):
    assert _reason(LOC, _loc(crs=crs)) == "bad_crs"


# --------------------------------------------------------------------------
# OwnTracks specifics
# --------------------------------------------------------------------------

OT = "owntracks/jane/phone"


def test_owntracks_vel_is_kmh():
    ping = _decode(OT, b'{"_type":"location","lat":22.6,"lon":114.0,"tst":1714530030,"vel":36}')
    assert ping.speed_mps == pytest.approx(10.0)
    assert ping.source == "owntracks" and ping.inspector_id == "jane/phone"


def test_owntracks_negative_values_mean_unknown():
    ping = _decode(OT, b'{"_type":"location","lat":22.6,"lon":114.0,"tst":1714530030,"vel":-1,"cog":-1,"acc":-1,"batt":-1}')
    assert (ping.speed_mps, ping.heading_deg, ping.acc_m, ping.batt_pct) == (None, None, None, None)


def test_owntracks_created_at_is_ignored():
    ping = _decode(OT, b'{"_type":"location","lat":22.6,"lon":114.0,"tst":1714530000,"created_at":1714530099}')
    assert ping.ts == 1714530000


def test_owntracks_transition_without_position_is_ignored():
    assert _decode(OT + "/event", b'{"_type":"transition","event":"leave","tst":1714530030,"wtst":1,"acc":10}') is None


def test_owntracks_lwt_is_offline_at_receive_time():
    ev = _decode(OT, b'{"_type":"lwt","tst":1380738247}')
    assert ev == Availability("inspector", "jane/phone", False, RECEIVED_AT, "owntracks")


@pytest.mark.parametrize("sub", ["cmd", "info", "step", "beacon", "dump", "status", "waypoint", "waypoints", "request"])
def test_owntracks_other_subtopics_are_ignored(sub):
    assert _decode(f"{OT}/{sub}", b'{"_type":"location","lat":1,"lon":2,"tst":3}') is None


def test_owntracks_empty():
    assert _decode(OT, b"") is None  # clears the retained location
    assert _reason(OT + "/event", b"") == "empty_payload"


def test_owntracks_type_checks():
    assert _reason(OT, b'{"_type": 5}') == "bad_type"
    assert _reason(OT, b'{"_type":"location","lat":22.6,"lon":114.0,"tst":1714530030,"batt":101}') == "out_of_range"


def test_owntracks_msg_id_includes_fix_time():
    a = _decode(OT, b'{"_type":"location","_id":"1a2b3c4d","lat":22.6,"lon":114.0,"tst":1714530030}')
    b = _decode(OT, b'{"_type":"location","_id":"1a2b3c4d","lat":22.6,"lon":114.0,"tst":1714530060}')
    assert a.msg_id != b.msg_id and a.msg_id.startswith("1a2b3c4d")


# --------------------------------------------------------------------------
# Zigbee2MQTT specifics
# --------------------------------------------------------------------------

Z = "zigbee2mqtt/floor3/kitchen/gas"


@pytest.mark.parametrize("value", [True, "True", "true", "TRUE", " true ", "ON", "on"])
def test_z2m_gas_true_spellings(value):
    reading = _decode(Z, orjson.dumps({"gas": value, "tamper": False}))
    assert reading.alarm == "high" and reading.sensor_id == "floor3/kitchen/gas"


@pytest.mark.parametrize("value", [False, "False", "false", "OFF"])
def test_z2m_gas_false_spellings(value):
    assert _decode(Z, orjson.dumps({"gas": value})).alarm == "none"


def test_z2m_unparseable_gas_alone_is_rejected():
    assert _reason(Z, b'{"gas": "maybe"}') == "bad_type"
    assert _reason(Z, b'{"gas": 1}') == "bad_type"


def test_z2m_gas_graded_by_concentration():
    scheme = TopicScheme(gas_low_lel=20, gas_high_lel=50)
    assert _decode(Z, b'{"gas": true, "gas_value": 5}', scheme).alarm == "low"  # never below low
    assert _decode(Z, b'{"gas": true, "gas_value": 49.9}', scheme).alarm == "low"
    assert _decode(Z, b'{"gas": true, "gas_value": 50}', scheme).alarm == "high"
    assert _decode(Z, b'{"gas": true}', scheme).alarm == "high"  # no reading: assume the worst
    quiet = _decode(Z, b'{"gas": false, "gas_value": 30}', scheme)
    assert quiet.alarm is None and quiet.lel_pct == 30  # the reading and the thresholds decide


def test_z2m_precedence():
    assert _decode(Z, b'{"gas": true, "fault_alarm": true, "tamper": true}').alarm == "high"
    assert _decode(Z, b'{"gas": false, "fault_alarm": true, "tamper": true, "test": true}').alarm == "fault"
    assert _decode(Z, b'{"gas": false, "tamper": true, "test": true}').alarm == "tamper"
    assert _decode(Z, b'{"gas": false, "self_test": true}').alarm == "test"
    assert _decode(Z, b'{"gas": false, "self_test_result": "checking"}').alarm == "test"
    assert _decode(Z, b'{"gas": false, "fault": "none", "fault_state": "normal"}').alarm == "none"
    assert _decode(Z, b'{"gas": false, "fault_state": "gas_fault"}').alarm == "fault"
    assert _decode(Z, b'{"gas": false, "trouble": true}').alarm == "fault"


def test_z2m_concentration_units():
    assert _decode(Z, b'{"gas": false, "gas_value": 150}').lel_pct is None  # no %LEL above 100
    model = b'{"gas": false, "gas_value": 40, "device": {"friendlyName": "floor3/kitchen/gas", "model": "ZG-225Z"}}'
    reading = _decode(Z, model)
    assert (reading.lel_pct, reading.ppm, reading.extra["model"]) == (None, 40, "ZG-225Z")


def test_z2m_battery_and_last_seen():
    reading = _decode(Z, b'{"gas": false, "battery": 87, "last_seen": "2024-05-01T02:20:30.000Z"}')
    assert (reading.batt_pct, reading.ts) == (87, 1714530030.0)
    assert _decode(Z, b'{"gas": false, "battery": 187}').batt_pct is None
    # "relative" last_seen ("3 minutes ago") cannot be parsed: receive time instead
    assert _decode(Z, b'{"gas": false, "last_seen": "3 minutes ago"}').ts == RECEIVED_AT


def test_z2m_non_gas_devices_are_ignored_only_without_gas_fields():
    assert _decode("zigbee2mqtt/hall", b'{"state": "ON", "linkquality": 80}') is None
    assert _decode("zigbee2mqtt/door", b'{"contact": false, "tamper": true, "battery_low": false}') is None
    assert _decode("zigbee2mqtt/smoke", b'{"smoke": false, "fault_alarm": true}') is None
    assert isinstance(_decode("zigbee2mqtt/hall", b'{"state": "ON", "gas_value": 3}'), GasReading)


@pytest.mark.parametrize("levels", range(1, Z2M_AVAILABILITY_MAX_LEVELS + 2))
def test_z2m_friendly_names_with_slashes(levels):
    name = "/".join(f"l{i}" for i in range(levels))
    assert _decode(f"zigbee2mqtt/{name}", b'{"gas": true}').sensor_id == name
    avail = _decode(f"zigbee2mqtt/{name}/availability", b'{"state": "online"}')
    assert (avail.device_id, avail.online, avail.kind) == (name, True, "sensor")


@pytest.mark.parametrize(
    "topic",
    [
        "zigbee2mqtt/bridge/state",
        "zigbee2mqtt/bridge/devices",
        "zigbee2mqtt/bridge/response/device/rename",
        "zigbee2mqtt/kitchen/set",
        "zigbee2mqtt/kitchen/get",
        "zigbee2mqtt/floor3/kitchen/set",
        "zigbee2mqtt/kitchen/set/gas_sensitivity",
        "zigbee2mqtt/kitchen/1/set",
    ],
)
def test_z2m_bridge_and_commands_are_ignored(topic):
    assert _decode(topic, b'{"gas": true}') is None
    assert _decode(topic, b"x" * 100_000) is None  # ignored before any size check


def test_z2m_single_level_scalar_is_bad_json():
    assert _reason("zigbee2mqtt/kitchen", b"true") == "bad_json"
    assert _reason("zigbee2mqtt/kitchen", b"{not json") == "bad_json"


# --------------------------------------------------------------------------
# Availability (own scheme)
# --------------------------------------------------------------------------

AV = "anjian/v1/sensors/gs-1/availability"


@pytest.mark.parametrize(
    "payload, online",
    [(b"online", True), (b"offline", False), (b"OFFLINE\n", False), (b'"online"', True), (b'{"state":"offline"}', False)],
)
def test_availability_forms(payload, online):
    ev = _decode(AV, payload)
    assert (ev.kind, ev.device_id, ev.online, ev.ts, ev.source) == ("sensor", "gs-1", online, RECEIVED_AT, "anjian")


def test_availability_with_ts_and_id():
    ev = _decode(AV, b'{"state":"online","ts":1714530030,"sensor_id":"gs-1"}')
    assert ev.ts == 1714530030.0
    assert _reason(AV, b'{"state":"online","sensor_id":"gs-2"}') == "topic_mismatch"


@pytest.mark.parametrize(
    "payload, reason",
    [(b"maybe", "bad_json"), (b"{}", "missing_field"), (b'{"state": 1}', "bad_type"), (b'{"state": "up"}', "out_of_range"), (b"[1]", "bad_json")],
)
def test_availability_bad(payload, reason):
    assert _reason(AV, payload) == reason


@pytest.mark.parametrize("payload", [b" ", b"\n", b" \t\r\n "])
def test_whitespace_only_availability_is_bad_json_not_a_cleared_retained_message(payload):
    assert _reason(AV, payload) == "bad_json"
    assert _reason("zigbee2mqtt/kitchen/availability", payload) == "bad_json"
    assert decode_or_ignored(AV, b"", SCHEME, RECEIVED_AT).reason == "cleared_retained"


@pytest.mark.parametrize(
    "topic, payload, reason",
    [
        ("anjian/v1/sensors/gs-1/availability", b"", "cleared_retained"),
        ("owntracks/jane/phone", b"", "cleared_retained"),
        ("zigbee2mqtt/kitchen", b"", "cleared_retained"),
        ("anjian/v1/inspectors/i1/dispatch", b'{"task_id":"t1"}', "own_outbound"),
        ("anjian/v1/inspectors/i1/tasks", b'{"task_id":"t1"}', "own_outbound"),
        ("anjian/v1/alerts/17/escalation", b'{"alert_id":17}', "own_outbound"),
        ("owntracks/jane/phone", b'{"_type":"waypoint","desc":"home","lat":1,"lon":2,"tst":3}', "not_a_position"),
        ("owntracks/jane/phone", b'{"_type":"card","name":"Jane"}', "not_a_position"),
        ("owntracks/jane/phone/cmd", b'{"_type":"cmd","action":"reportLocation"}', "not_a_position"),
        ("owntracks/jane/phone/event", b'{"_type":"transition","event":"leave","tst":1}', "not_a_position"),
        ("zigbee2mqtt/bridge/state", b'{"state":"online"}', "bridge_traffic"),
        ("zigbee2mqtt/kitchen/set", b'{"state":"ON"}', "device_command"),
        ("zigbee2mqtt/kitchen/gas", b"true", "attribute_copy"),
        ("zigbee2mqtt/hall", b'{"state":"ON"}', "not_a_gas_detector"),
    ],
)
def test_every_ignored_message_says_why(topic, payload, reason):
    ev = decode_or_ignored(topic, payload, SCHEME, RECEIVED_AT)
    assert isinstance(ev, Ignored) and ev.reason == reason and reason in IGNORE_REASONS
    assert decode(topic, payload, SCHEME, RECEIVED_AT) is None


def test_every_message_the_product_publishes_itself_is_ignored_as_own_outbound():
    """The ingest subscribes to the topics its own services publish on (docs/mqtt.md,
    MQTT out): a dispatch, each inspector's task of a draw or an approved plan, an
    escalation notice.  Built by the product's own builders, each is ignored with a
    reason, never a dead letter: a draw of 10,000 would otherwise fill the dead
    letters with 10,000 of them."""
    from alerts.dispatch import dispatch_payload, dispatch_topic
    from plans.tasks import task_payload, tasks_topic

    p = SCHEME.prefix
    own = [
        (dispatch_topic(p, "I0258"), dispatch_payload("t1", "gas_alarm", "E1", "饭店", 22.6, 114.0,
                                                      "gas_alarm #7", RECEIVED_AT, "dispatcher")),
        (tasks_topic(p, "I0258"), task_payload("t2", "draw", "E1", "饭店", 22.6, 114.0, "2024-05-02", "U1",
                                               ["U1", "U2"], RECEIVED_AT)),
        (f"{p}/v1/alerts/17/escalation", {"alert_id": 17, "level": 1}),
    ]
    for topic, payload in own:
        ev = decode_or_ignored(topic, orjson.dumps(payload), SCHEME, RECEIVED_AT)
        assert isinstance(ev, Ignored) and ev.reason == "own_outbound", (topic, ev)


# --------------------------------------------------------------------------
# Every reason code decode can raise
# --------------------------------------------------------------------------

DECODE_REASON_CASES = [
    ("payload_too_large", LOC, b"{" + b" " * 8192 + b"}"),
    ("payload_too_large", LOC, b"\xff" * 9000),  # checked before parsing
    ("payload_too_large", "owntracks/a/b", b"x" * 9000),
    ("payload_too_large", "zigbee2mqtt/a", b"x" * 9000),
    ("empty_payload", LOC, b""),
    ("empty_payload", STATE, b""),
    ("bad_json", LOC, b"{"),
    ("bad_json", LOC, b"[]"),
    ("bad_json", LOC, b"null"),
    ("bad_json", LOC, b"\xff\xfe"),
    ("bad_json", LOC, b"   "),
    ("missing_field", LOC, b'{"lat": 22.6, "lon": 114.0}'),
    ("missing_field", LOC, b'{"ts": 1714530030, "lon": 114.0}'),
    ("missing_field", LOC, b'{"ts": 1714530030, "lat": null, "lon": 114.0}'),
    ("bad_type", LOC, _loc(lat=[22.6])),
    ("bad_type", LOC, _loc(lon="east")),
    ("bad_type", STATE, b'{"ts": 1714530030, "lel": {"v": 3}}'),
    # What Python's float() reads and no device means: underscores, other scripts' digits.
    ("bad_type", LOC, _loc(lat="22.6563_0")),
    ("bad_type", LOC, _loc(lat="٢٢.6")),
    ("bad_type", LOC, _loc(lon="１１４")),
    ("nan_value", LOC, b'{"ts": 1714530030, "lat": NaN, "lon": 114.0}'),
    ("nan_value", LOC, b'{"ts": 1714530030, "lat": 22.6, "lon": Infinity}'),
    ("nan_value", LOC, b'{"ts": 1714530030, "lat": 22.6, "lon": -Infinity}'),
    ("nan_value", LOC, b'{"ts": 1714530030, "lat": 1e400, "lon": 114.0}'),
    ("nan_value", LOC, _loc(lat="NaN")),
    ("nan_value", STATE, b'{"ts": 1714530030, "lel": "nan"}'),
    ("out_of_range", LOC, _loc(lat=90.0001)),
    ("out_of_range", LOC, _loc(lon=-180.5)),
    ("out_of_range", LOC, _loc(batt=101)),
    ("out_of_range", LOC, _loc(batt=-1)),
    ("out_of_range", LOC, _loc(heading=361)),
    ("out_of_range", LOC, _loc(acc=-3)),
    ("out_of_range", STATE, b'{"ts": 1714530030, "lel": 100.5}'),
    ("out_of_range", STATE, b'{"ts": 1714530030, "lel": -1}'),
    ("out_of_range", STATE, b'{"ts": 1714530030, "ppm": -5}'),
    ("bad_crs", LOC, _loc(crs="cgcs2000")),
    ("topic_mismatch", LOC, _loc(inspector_id="insp-2")),
    ("topic_mismatch", LOC, _loc(id=7)),
    ("topic_mismatch", STATE, b'{"ts": 1714530030, "sensor_id": "gs-2"}'),
    ("unknown_topic", "somewhere/else", b"{}"),
    ("unknown_topic", "anjian/v1/inspectors/insp-1", b"{}"),
    ("unknown_topic", "anjian/v1/inspectors//location", b"{}"),
    ("unknown_topic", "anjian/v1/inspectors/insp-1/location/x", b"{}"),
    ("unknown_topic", "anjian/v1/vehicles/v-1/location", b"{}"),
    ("unknown_topic", "anjian/v2/inspectors/insp-1/location", b"{}"),
    ("unknown_topic", "owntracks/jane", b"{}"),
    ("unknown_topic", "owntracks//phone", b"{}"),
    ("unknown_topic", "zigbee2mqtt/a//b", b"{}"),
    ("unknown_topic", "", b"{}"),
    ("control_character", "anjian/v1/inspectors/insp-1/location",
     b'{"ts": 1714530000, "lat": 22.6, "lon": 114.0, "msg_id": "a\\u0000b"}'),
    ("control_character", "anjian/v1/sensors/gs-1/state", b'{"ts": 1714530000, "lel": 1, "msg_id": "a\\nb"}'),
    ("control_character", "owntracks/jane/phone",
     b'{"_type": "location", "tst": 1714530000, "lat": 22.6, "lon": 114.0, "_id": "\\u0085x"}'),
    # Body-camera streams: their addresses go to a browser's player, so only http(s), bounded, clean.
    ("bad_url", STREAM, _stream(hls_url="rtsp://cam/live")),
    ("bad_url", STREAM, _stream(hls_url="javascript:alert(1)")),
    ("bad_url", STREAM, _stream(hls_url="file:///etc/passwd")),
    ("bad_url", STREAM, _stream(hls_url="http:///no-host.m3u8")),
    ("bad_url", STREAM, _stream(hls_url="http://cam/a b.m3u8")),
    ("bad_url", STREAM, _stream(hls_url="http://cam/\u0000.m3u8")),
    ("bad_url", STREAM, _stream(hls_url="http://cam:port/x.m3u8")),
    ("bad_url", STREAM, _stream(hls_url="http://cam/" + "a" * 2100)),
    ("bad_url", STREAM, _stream(whep_url="ftp://cam/whep")),
    ("bad_url", STREAM, _stream(state="ended", recording_url="data:video/mp4;base64,AAAA")),
    ("missing_field", STREAM, _stream(hls_url=None)),
    ("missing_field", STREAM, b'{"ts": 1714530000, "hls_url": "http://cam/x.m3u8"}'),
    ("bad_type", STREAM, _stream(hls_url=7)),
    ("bad_type", STREAM, _stream(state=1)),
    ("out_of_range", STREAM, _stream(state="paused")),
    ("topic_mismatch", STREAM, _stream(inspector_id="insp-2")),
]


@pytest.mark.parametrize("reason, topic, payload", DECODE_REASON_CASES)
def test_reason_codes(reason, topic, payload):
    assert _reason(topic, payload) == reason


# Raised only by ingest.validate (tests/ingest/test_validate.py) or later
# pipeline steps (unknown_device: the registry; step_error: the worker).
NOT_DECODE_REASONS = {"outside_service_area", "ts_in_future", "ts_too_old", "unknown_device", "step_error",
                      "history_refused"}


def test_every_decode_reason_is_exercised():
    assert {r for r, _, _ in DECODE_REASON_CASES} == set(REASON_CODES) - NOT_DECODE_REASONS


def test_payload_limit_is_inclusive_and_configurable():
    small = TopicScheme(max_payload_bytes=64)
    exactly = _loc()[:-1] + b" " * (64 - len(_loc())) + b"}"
    assert len(exactly) == 64 and _decode(LOC, exactly, small) is not None
    assert _reason(LOC, exactly[:-1] + b" }", small) == "payload_too_large"


def test_rejected_carries_reason_and_detail():
    with pytest.raises(Rejected) as info:
        _decode(LOC, _loc(lat=91))
    assert info.value.reason == "out_of_range" and "lat" in info.value.detail
    assert "out_of_range" in str(info.value)
    with pytest.raises(ValueError):
        Rejected("not_a_code", "x")


# --------------------------------------------------------------------------
# Topics and subscriptions
# --------------------------------------------------------------------------


def test_scheme_from_settings():
    s = load_settings(mqtt_prefix="city", owntracks_topic="ot", z2m_topic="z2m/east", ingest_max_payload_bytes=1000)
    scheme = TopicScheme.from_settings(s)
    assert (scheme.prefix, scheme.owntracks_base, scheme.z2m_base, scheme.max_payload_bytes) == ("city", "ot", "z2m/east", 1000)
    assert (scheme.gas_low_lel, scheme.gas_high_lel) == (s.gas_low_lel, s.gas_high_lel)
    assert decode("z2m/east/kitchen", b'{"gas": true}', scheme, 0.0).sensor_id == "kitchen"
    assert decode("ot/jane/phone", b'{"_type":"lwt"}', scheme, 0.0).device_id == "jane/phone"
    assert decode("city/v1/sensors/s/state", b'{"ts": 1}', scheme, 0.0).sensor_id == "s"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prefix": "a/#"},
        {"owntracks_base": "+"},
        {"z2m_base": "/z"},
        {"z2m_base": "z/"},
        {"prefix": ""},
        {"owntracks_base": "zigbee2mqtt"},
        {"z2m_base": "owntracks/z2m"},
        {"max_payload_bytes": 0},
    ],
)
def test_scheme_rejects_bad_bases(kwargs):
    with pytest.raises(ValueError):
        TopicScheme(**kwargs)


def _matches(filter_: str, topic: str) -> bool:
    f, t = filter_.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def test_subscriptions():
    subs = subscriptions(SCHEME)
    by_filter = {f: (qos, share) for f, qos, share in subs}
    # Everything under the prefix, shared: state, locations, and topics no decoder
    # knows, which must arrive to be dead-lettered as unknown_topic.
    assert by_filter["anjian/#"] == (1, True)
    for f, qos, share in subs:
        assert qos in (0, 1, 2)
        if f.endswith("/availability"):
            assert share is False, f  # retained messages never reach shared subscribers
        assert "#" not in f[:-1]
    # Every topic decode turns into an event is covered by some filter, and
    # every availability topic by a non-shared one.
    for topic in [
        "anjian/v1/sensors/gs-1/state",
        "anjian/v1/inspectors/i/location",
        "owntracks/jane/phone",
        "owntracks/jane/phone/event",
        "zigbee2mqtt/a/b/c",
        "anjian/v2/sensors/gs-1/state",
        "anjian/v1/inspectors/x",
    ]:
        assert any(_matches(f, topic) and by_filter[f][1] for f in by_filter), topic
    for topic in [
        "anjian/v1/sensors/gs-1/availability",
        "anjian/v1/inspectors/i/availability",
        "zigbee2mqtt/a/availability",
        "zigbee2mqtt/a/b/c/d/availability",
    ]:
        assert any(_matches(f, topic) and not by_filter[f][1] for f in by_filter), topic


# --------------------------------------------------------------------------
# Fuzz: nothing but Rejected, whatever arrives
# --------------------------------------------------------------------------

_TOPIC_HEADS = st.sampled_from(
    [
        "anjian/v1/inspectors/i1/location",
        "anjian/v1/sensors/s1/state",
        "anjian/v1/sensors/s1/availability",
        "anjian/v1/inspectors/i1/availability",
        "anjian/v1/",
        "owntracks/u/d",
        "owntracks/u/d/event",
        "owntracks/",
        "zigbee2mqtt/",
        "zigbee2mqtt/a/b",
        "zigbee2mqtt/a/availability",
        "zigbee2mqtt/bridge/",
        "",
    ]
)
_topics = st.one_of(
    st.text(max_size=40),
    st.builds(lambda h, t: h + t, _TOPIC_HEADS, st.text(alphabet=string.ascii_letters + "/+#", max_size=12)),
    _TOPIC_HEADS,
)

_KEYS = [
    "ts", "lat", "lon", "acc", "speed", "heading", "batt", "crs", "msg_id", "lel", "ppm", "alarm", "id",
    "inspector_id", "sensor_id", "state", "_type", "tst", "vel", "cog", "_id", "topic", "gas", "gas_value",
    "gas_density", "gas_alarm_1", "tamper", "fault", "fault_alarm", "fault_state", "test", "self_test",
    "self_test_result", "preheat", "battery", "last_seen", "sensitivity", "device", "event",
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        ["NaN", "inf", "True", "online", "offline", "location", "lwt", "transition", "gcj02", "bd09", "high",
         "2024-05-01T10:20:30", "2024-05-01T10:20:30Z", "1714530030", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00",
         "failure", "checking", "preparation", "u/d", "owntracks/u/d"]
    ),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=3), max_leaves=8)
_objects = st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), _values, max_size=10)
_payloads = st.one_of(
    st.binary(max_size=300),
    _objects.map(lambda d: json.dumps(d, allow_nan=True).encode()),
    _values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.sampled_from([b"", b"online", b"offline", b" ", b"null", b"{}", b"[]", b"NaN", b"\xff"]),
)


@hsettings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=_topics, payload=_payloads, received_at=st.floats(allow_nan=False, allow_infinity=False))
def test_fuzz_decode_raises_only_rejected(topic, payload, received_at):
    try:
        event = decode(topic, payload, SCHEME, received_at)
    except Rejected as exc:
        assert exc.reason in REASON_CODES
        return
    assert event is None or type(event) in (Ping, GasReading, Availability)
    if type(event) is Ping:
        assert -90 <= event.lat <= 90 and -180 <= event.lon <= 180
        assert math.isfinite(event.ts)
    if type(event) is GasReading:
        assert event.alarm is None or event.alarm in ("none", "low", "high", "fault", "tamper", "test")
        assert event.lel_pct is None or 0 <= event.lel_pct <= 100


# Random bytes rarely get past the topic and JSON checks; this one starts from
# every real fixture and mutates its fields, to reach the field-level code.
_OBJECT_FIXTURES = []
for _param in ALL_CASES:
    _case = _param.values[0]
    try:
        _obj = json.loads(_case["payload"])
    except ValueError:
        continue
    if isinstance(_obj, dict):
        _OBJECT_FIXTURES.append((_case["topic"], _obj))


@st.composite
def _mutated(draw):
    topic, obj = draw(st.sampled_from(_OBJECT_FIXTURES))
    obj = dict(obj)
    for key in draw(st.lists(st.sampled_from(_KEYS + list(obj)), max_size=4)):
        if draw(st.booleans()):
            obj[key] = draw(_values)
        else:
            obj.pop(key, None)
    return topic, json.dumps(obj, allow_nan=True).encode()


@hsettings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=_mutated())
def test_fuzz_mutated_fixtures_raise_only_rejected(message):
    topic, payload = message
    try:
        event = decode(topic, payload, SCHEME, RECEIVED_AT)
    except Rejected as exc:
        assert exc.reason in REASON_CODES
        return
    if type(event) is Ping:
        assert -90 <= event.lat <= 90 and -180 <= event.lon <= 180 and math.isfinite(event.ts)
        for v in (event.acc_m, event.speed_mps, event.heading_deg, event.batt_pct):
            assert v is None or math.isfinite(v)


def test_stream_notices_decode():
    ev = _decode(STREAM, _stream(whep_url="https://cam.example/insp-1/whep", msg_id="c1"))
    assert ev == StreamNotice("insp-1", 1714530000.0, "live", "http://cam.example/insp-1/live.m3u8",
                              "https://cam.example/insp-1/whep", None, "c1", "anjian")
    ev = _decode(STREAM, _stream(state="ended", hls_url=None, recording_url="https://vod.example/r.mp4"))
    assert (ev.state, ev.hls_url, ev.recording_url) == ("ended", None, "https://vod.example/r.mp4")
    assert _decode(STREAM, _stream(recording_url="https://vod.example/r.mp4")).recording_url is None  # live: none yet
    assert _decode(STREAM, _stream(hls_url="HTTPS://cam.example:8443/x.m3u8?token=a%20b")).hls_url


def test_the_partitions_together_cover_what_all_covers_and_sensors_only_the_sensors():
    """settings.ingest_topics: the sensors partition receives gas detectors' topics and
    nothing else; the locations partition everything else (its catch-all also matches
    the sensor topics, which it leaves: partition_skips); together they subscribe
    every topic that one worker of "all" does."""
    from ingest.decode import partition_skips

    topics = ["anjian/v1/sensors/gs-1/state", "anjian/v1/sensors/gs-1/availability", "zigbee2mqtt/a/b/c",
              "zigbee2mqtt/a/availability", "anjian/v1/inspectors/i/location", "anjian/v1/inspectors/i/availability",
              "owntracks/jane/phone", "owntracks/jane/phone/event", "anjian/v2/sensors/gs-1/state",
              "anjian/v1/inspectors/x"]
    every, sensors, places = (subscriptions(SCHEME, part) for part in ("all", "sensors", "locations"))
    assert subscriptions(SCHEME) == every
    gets = {name: {t for t in topics if any(_matches(f, t) for f, _q, _s in subs)}
            for name, subs in (("all", every), ("sensors", sensors), ("locations", places))}
    assert gets["all"] == set(topics) == gets["sensors"] | gets["locations"]
    assert gets["sensors"] == {t for t in topics if t.startswith(("anjian/v1/sensors/", "zigbee2mqtt/"))}
    skip = partition_skips(SCHEME, "locations")
    assert {t for t in gets["locations"] if not t.encode().startswith(skip)} == set(topics) - gets["sensors"]
    assert partition_skips(SCHEME, "sensors") is None and partition_skips(SCHEME, "all") is None
    with pytest.raises(ValueError):
        subscriptions(SCHEME, "everything")
