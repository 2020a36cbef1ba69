"""Overdue inspections, rolled up: one alert per street per day.

A periodic job finds the enterprises whose required inspection interval
(by risk colour) has run out.  Filing one alert per enterprise per tick would
bury a street officer under hundreds of identical notices; instead each street
gets one ``overdue_inspection`` alert per (local) day whose details hold the
counts by colour, updated in place as the job runs again.

"Day" is the calendar day in China Standard Time (UTC+08:00, no daylight
saving), when the officers work, not the UTC day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from alerts.lifecycle import new_alert
from alerts.model import OVERDUE_INSPECTION, SYSTEM_ACTOR, AlertState, TransitionRecord
from alerts.rules import severity_for
from geo.china import CHINA_TZ as CST  # China Standard Time; dispatch.iso_cst uses this name

RISK_COLOURS = ("red", "orange", "yellow", "blue")  # highest risk first (as data.models)


@dataclass(frozen=True, slots=True)
class OverdueEnterprise:
    enterprise_id: str
    street_id: str | None
    risk: str  # one of RISK_COLOURS


def local_day(ts: float) -> str:
    """``YYYY-MM-DD`` of an epoch time in China Standard Time."""
    return dt.datetime.fromtimestamp(ts, CST).date().isoformat()


def overdue_subject(street_id: str, day: str | dt.date) -> str:
    """``street:ST01:overdue:2024-06-10``: the one alert of a street on a day."""
    if not street_id:
        raise ValueError("street_id is required")
    day = day.isoformat() if isinstance(day, dt.date) else dt.date.fromisoformat(day).isoformat()
    return f"street:{street_id}:overdue:{day}"


def rollup(overdue: Iterable[OverdueEnterprise | tuple[str, str | None, str]]) -> list[tuple[str | None, dict[str, int]]]:
    """``[(street_id, {"red": n, "orange": n, "yellow": n, "blue": n}), ...]``.

    Items are ``OverdueEnterprise`` or ``(enterprise_id, street_id, risk)``.
    An enterprise listed twice counts once.  Streets in id order; enterprises
    outside every street (street None) come last, for the district to see.
    Every colour is present in every count, zeros included.
    """
    seen: set[str] = set()
    counts: dict[str | None, dict[str, int]] = {}
    for item in overdue:
        e = item if isinstance(item, OverdueEnterprise) else OverdueEnterprise(*item)
        if e.risk not in RISK_COLOURS:
            raise ValueError(f"risk must be one of {RISK_COLOURS}, not {e.risk!r}")
        if e.enterprise_id in seen:
            continue
        seen.add(e.enterprise_id)
        counts.setdefault(e.street_id, dict.fromkeys(RISK_COLOURS, 0))[e.risk] += 1
    return sorted(counts.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))


def worst_colour(by_colour: Mapping[str, int]) -> str | None:
    return next((c for c in RISK_COLOURS if by_colour.get(c, 0) > 0), None)


def apply_rollup(
    street_id: str,
    day: str,
    by_colour: Mapping[str, int],
    at: float,
    existing: AlertState | None,
) -> tuple[AlertState, TransitionRecord | None] | None:
    """The street's alert for the day after one run of the overdue job.

    No active alert yet: a new one (and its opening record).  An active one:
    it with the new counts when they changed (record None), or None when
    nothing changed, so the job writes nothing.  Counts of zero open nothing.
    """
    total = sum(by_colour.values())
    worst = worst_colour(by_colour)
    details = {"day": day, "by_colour": {c: int(by_colour.get(c, 0)) for c in RISK_COLOURS}}
    severity = severity_for(OVERDUE_INSPECTION, worst)
    if existing is None:
        if total == 0:
            return None
        return new_alert(
            OVERDUE_INSPECTION, overdue_subject(street_id, day), severity=severity, at=at,
            actor=SYSTEM_ACTOR, street_id=street_id, count=total, details=details,
            note=f"{total} overdue",
        )
    if existing.subject != overdue_subject(street_id, day):
        raise ValueError("existing is another street's or day's alert")
    if existing.details.get("by_colour") == details["by_colour"]:
        return None
    return dataclasses.replace(existing, count=total, severity=severity, last_seen=at,
                               details={**existing.details, **details}), None
