"""What counts as bad input, and the checks that need the clock or the map.

``Rejected`` is the one exception every ingest check raises; its ``reason`` is
one of the dead-letter codes of docs/architecture.md (``REASON_CODES``), its
``detail`` says in words which field was wrong and why.  The worker catches it,
dead-letters the message with that reason and counts it.

``ingest.decode`` rejects what is wrong in the message itself (JSON, types,
ranges of lat/lon/lel/batt, crs, topic vs payload).  ``validate`` rejects what
is wrong only relative to *now* and to *this deployment*: a timestamp too far
in the future or the past (of every event, availability included), a fix
outside the service area.  It also re-checks
the ranges of events that did not come through ``decode`` (the simulator, a
replay), so that no path can put a NaN or an impossible value into live state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from geo.types import Availability, GasReading, Ping

# docs/architecture.md, "Dead-letter reason codes".  Keep in this order.
REASON_CODES: tuple[str, ...] = (
    "payload_too_large",
    "empty_payload",
    "bad_json",
    "missing_field",
    "bad_type",
    "nan_value",
    "out_of_range",
    "control_character",
    "outside_service_area",
    "ts_in_future",
    "ts_too_old",
    "bad_crs",
    "unknown_device",
    "topic_mismatch",
    "unknown_topic",
    "step_error",
    "history_refused",
    "bad_url",
)
_REASONS = frozenset(REASON_CODES)

ALARM_VALUES: tuple[str, ...] = ("none", "low", "high", "fault", "tamper", "test")
_ALARMS = frozenset(ALARM_VALUES)


class Rejected(Exception):
    """A message that cannot be used.  ``reason`` is a dead-letter code."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str = ""):
        if reason not in _REASONS:  # a typo here would invent a new code
            raise ValueError(f"unknown reject reason {reason!r}")
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason

    def __repr__(self) -> str:
        return f"Rejected({self.reason!r}, {self.detail!r})"


@dataclass(frozen=True, slots=True)
class Limits:
    """The deployment's limits on time and place (from Settings)."""

    max_future_s: float = 300.0
    max_age_s: float = 7 * 86400.0
    # min_lon, min_lat, max_lon, max_lat (WGS-84), inclusive.
    service_area: tuple[float, float, float, float] = (113.70, 22.40, 114.65, 22.90)

    def __post_init__(self) -> None:
        min_lon, min_lat, max_lon, max_lat = self.service_area
        if not (min_lon <= max_lon and min_lat <= max_lat):
            raise ValueError(f"service_area {self.service_area} is not min_lon,min_lat,max_lon,max_lat")
        if self.max_future_s < 0 or self.max_age_s < 0:
            raise ValueError("max_future_s and max_age_s must not be negative")

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(
            max_future_s=float(settings.ingest_max_future_s),
            max_age_s=float(settings.ingest_max_age_s),
            service_area=tuple(float(v) for v in settings.service_area),  # type: ignore[arg-type]
        )


def _finite(x: float | None) -> bool:
    return x is None or (x == x and x not in (math.inf, -math.inf))


def _check_range(name: str, x: float | None, lo: float, hi: float) -> None:
    if x is None:
        return
    if not _finite(x):
        raise Rejected("nan_value", f"{name}: {x!r} is not finite")
    if not lo <= x <= hi:
        raise Rejected("out_of_range", f"{name}: {x!r} is outside [{lo:g}, {hi:g}]")


def validate(event: Ping | GasReading | Availability, limits: Limits, now: float):
    """Return ``event`` unchanged, or raise ``Rejected``.

    Order: value sanity (``nan_value``/``out_of_range``), then time
    (``ts_in_future``/``ts_too_old``), then place (``outside_service_area``).
    """
    ts = event.ts
    if not _finite(ts):
        raise Rejected("nan_value", f"ts: {ts!r} is not finite")

    if type(event) is Ping:
        _check_range("lat", event.lat, -90.0, 90.0)
        _check_range("lon", event.lon, -180.0, 180.0)
        _check_range("acc", event.acc_m, 0.0, math.inf)
        _check_range("speed", event.speed_mps, 0.0, math.inf)
        _check_range("heading", event.heading_deg, 0.0, 360.0)
        _check_range("batt", event.batt_pct, 0.0, 100.0)
    elif type(event) is GasReading:
        _check_range("lel", event.lel_pct, 0.0, 100.0)
        _check_range("ppm", event.ppm, 0.0, math.inf)
        _check_range("batt", event.batt_pct, 0.0, 100.0)
        if event.alarm is not None and event.alarm not in _ALARMS:
            raise Rejected("out_of_range", f"alarm: {event.alarm!r} is not one of {', '.join(ALARM_VALUES)}")

    if ts > now + limits.max_future_s:
        raise Rejected(
            "ts_in_future", f"ts: {ts:.3f} is {ts - now:.0f} s ahead of now (allowed {limits.max_future_s:g} s)"
        )
    if ts < now - limits.max_age_s:
        raise Rejected("ts_too_old", f"ts: {ts:.3f} is {now - ts:.0f} s old (allowed {limits.max_age_s:g} s)")

    if type(event) is Ping:
        min_lon, min_lat, max_lon, max_lat = limits.service_area
        if not (min_lon <= event.lon <= max_lon and min_lat <= event.lat <= max_lat):
            raise Rejected(
                "outside_service_area",
                f"lat/lon: ({event.lat:.6f}, {event.lon:.6f}) is outside the service area {limits.service_area}",
            )
    return event
