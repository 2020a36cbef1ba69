"""ingest.validate: time and place limits, and the re-check of value ranges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from config.settings import load_settings
from geo.types import Availability, GasReading, Ping
from ingest.decode import TopicScheme, decode
from ingest.validate import REASON_CODES, Limits, Rejected, validate

NOW = 1714530100.0
# Shenzhen, the default service area; Longhua District is inside it.
LIMITS = Limits(max_future_s=300.0, max_age_s=7 * 86400.0, service_area=(113.70, 22.40, 114.65, 22.90))


def _ping(**kw) -> Ping:
    base = dict(inspector_id="i", ts=NOW, lat=22.6573, lon=114.0441)
    base.update(kw)
    return Ping(**base)


def _reason(event, limits: Limits = LIMITS, now: float = NOW) -> str:
    with pytest.raises(Rejected) as info:
        validate(event, limits, now)
    assert info.value.detail
    return info.value.reason


def test_limits_from_settings():
    s = load_settings(ingest_max_future_s=60, ingest_max_age_s=3600, service_area=(1, 2, 3, 4))
    assert Limits.from_settings(s) == Limits(60.0, 3600.0, (1.0, 2.0, 3.0, 4.0))
    assert Limits.from_settings(load_settings()).service_area == LIMITS.service_area


def test_limits_reject_a_bad_box():
    with pytest.raises(ValueError):
        Limits(service_area=(114.65, 22.40, 113.70, 22.90))
    with pytest.raises(ValueError):
        Limits(max_age_s=-1)


def test_good_events_pass_unchanged():
    for event in (
        _ping(acc_m=5, speed_mps=1.5, heading_deg=360, batt_pct=100),
        GasReading("s", NOW, lel_pct=0, ppm=0, alarm="none", batt_pct=0),
        Availability("sensor", "s", False, NOW),
    ):
        assert validate(event, LIMITS, NOW) is event


def test_time_window_edges():
    assert validate(_ping(ts=NOW + 300), LIMITS, NOW)
    assert _reason(_ping(ts=NOW + 300.001)) == "ts_in_future"
    assert validate(_ping(ts=NOW - 7 * 86400), LIMITS, NOW)
    assert _reason(_ping(ts=NOW - 7 * 86400 - 0.001)) == "ts_too_old"


def test_time_checks_apply_to_every_event_kind():
    assert _reason(GasReading("s", NOW + 3600)) == "ts_in_future"
    assert _reason(Availability("sensor", "s", True, 0.0)) == "ts_too_old"


def test_service_area_edges_are_inside():
    min_lon, min_lat, max_lon, max_lat = LIMITS.service_area
    for lon, lat in [(min_lon, min_lat), (max_lon, max_lat), (min_lon, max_lat), (max_lon, min_lat)]:
        assert validate(_ping(lon=lon, lat=lat), LIMITS, NOW)


@pytest.mark.parametrize(
    "lon, lat",
    [(113.6999, 22.6), (114.6501, 22.6), (114.0, 22.3999), (114.0, 22.9001), (2.29513, 48.85833), (0.0, 0.0)],
)
def test_outside_service_area(lon, lat):
    assert _reason(_ping(lon=lon, lat=lat)) == "outside_service_area"


def test_service_area_is_only_for_fixes():
    # A sensor reading or an availability has no position of its own.
    assert validate(GasReading("s", NOW), LIMITS, NOW)
    assert validate(Availability("inspector", "jane/phone", False, NOW, "owntracks"), LIMITS, NOW)


def test_time_is_checked_before_place():
    assert _reason(_ping(ts=NOW + 3600, lon=0.0, lat=0.0)) == "ts_in_future"


@pytest.mark.parametrize(
    "event, reason",
    [
        (_ping(lat=91.0), "out_of_range"),
        (_ping(lon=-181.0), "out_of_range"),
        (_ping(batt_pct=101.0), "out_of_range"),
        (_ping(acc_m=-1.0), "out_of_range"),
        (_ping(heading_deg=400.0), "out_of_range"),
        (_ping(speed_mps=-0.5), "out_of_range"),
        (GasReading("s", NOW, lel_pct=150.0), "out_of_range"),
        (GasReading("s", NOW, ppm=-1.0), "out_of_range"),
        (GasReading("s", NOW, alarm="boom"), "out_of_range"),
        (_ping(lat=math.nan), "nan_value"),
        (_ping(ts=math.nan), "nan_value"),
        (_ping(speed_mps=math.inf), "nan_value"),
        (GasReading("s", math.inf), "nan_value"),
        (GasReading("s", NOW, lel_pct=math.nan), "nan_value"),
    ],
)
def test_ranges_are_rechecked(event, reason):
    assert _reason(event) == reason


def test_decoded_fixture_with_zero_timestamp_is_too_old():
    # owntracks/android invalid_location_message_zero_timestamp.json decodes, then fails here.
    ping = decode(
        "owntracks/xx/phone",
        b'{"_type":"location","tst":0,"tid":"xx","lat":0.000,"lon":0.000,"acc":15,"alt":300}',
        TopicScheme(),
        NOW,
    )
    assert _reason(ping) == "ts_too_old"


def test_decoded_fix_in_longhua_passes():
    ping = decode(
        "anjian/v1/inspectors/i/location",
        b'{"ts":"2024-05-01 10:20:30","lat":22.6573,"lon":114.0441}',
        TopicScheme(),
        NOW,
    )
    assert validate(ping, Limits.from_settings(load_settings()), NOW) is ping


VALIDATE_REASONS = {"ts_in_future", "ts_too_old", "outside_service_area", "out_of_range", "nan_value"}


def test_validate_reasons_are_reason_codes():
    assert VALIDATE_REASONS <= set(REASON_CODES)


_floats = st.floats(allow_nan=True, allow_infinity=True)


@hsettings(max_examples=2000, deadline=None)
@given(ts=_floats, lat=_floats, lon=_floats, batt=st.none() | _floats, lel=st.none() | _floats)
def test_fuzz_validate_raises_only_rejected(ts, lat, lon, batt, lel):
    for event in (
        Ping("i", ts, lat, lon, batt_pct=batt),
        GasReading("s", ts, lel_pct=lel, batt_pct=batt),
        Availability("sensor", "s", True, ts),
    ):
        try:
            assert validate(event, LIMITS, NOW) is event
        except Rejected as exc:
            assert exc.reason in VALIDATE_REASONS
            continue
        assert NOW - LIMITS.max_age_s <= event.ts <= NOW + LIMITS.max_future_s
