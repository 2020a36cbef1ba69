"""Plans and their items as small dataclasses, and ISO-week arithmetic in China time.

Weeks are ISO weeks written ``2026-W49``; dates are ``YYYY-MM-DD`` calendar days
in China time (``geo.china``).  A day starts at local midnight, 16:00 UTC.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from geo.china import CHINA_UTC_OFFSET_S, check_year

RISK_COLOURS_ALL = ("red", "orange", "yellow", "blue")
PURPOSES = ("enforcement", "inspection", "service")  # 执法检查, 安全检查, 第三方服务
PLAN_STATES = ("draft", "submitted", "approved")
# An item is planned; merged into a joint task (joint); or dropped by a conflict's resolution.
ITEM_STATES = ("planned", "joint", "dropped")
CONFLICT_KINDS = ("same_week", "recently_visited", "not_due")
SUGGESTIONS = ("joint", "shift", "drop")
DAY_S = 86400

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.ASCII)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class PlanItem:
    id: int | None
    unit_id: str
    enterprise_id: str
    date: str  # YYYY-MM-DD, China time
    inspector_ids: tuple[str, ...] = ()
    purpose: str = "inspection"
    check_items: tuple[str, ...] = ()
    state: str = "planned"


@dataclass(frozen=True, slots=True)
class Plan:
    id: int | None
    unit_id: str
    week: str
    state: str = "draft"
    items: tuple[PlanItem, ...] = field(default_factory=tuple)


def parse_week(week: str) -> dt.date:
    """The Monday of ISO week ``YYYY-Www``; ValueError for anything else."""
    m = _WEEK.fullmatch(week or "") if isinstance(week, str) else None
    if not m:
        raise ValueError(f"week must look like 2026-W49, not {week!r}")
    year, wk = int(m.group(1)), int(m.group(2))
    check_year(year, week)
    try:
        return dt.date.fromisocalendar(year, wk, 1)
    except ValueError:
        raise ValueError(f"{week!r} is not a week of {year}") from None


def week_dates(week: str) -> list[str]:
    """The seven dates (Monday to Sunday) of an ISO week."""
    monday = parse_week(week)
    return [(monday + dt.timedelta(days=i)).isoformat() for i in range(7)]


def parse_date(date: str) -> dt.date:
    if not isinstance(date, str) or not _DATE.fullmatch(date):
        raise ValueError(f"date must be YYYY-MM-DD, not {date!r}")
    return dt.date.fromisoformat(date)


def week_of(date: str) -> str:
    y, w, _ = parse_date(date).isocalendar()
    return f"{y}-W{w:02d}"


def day_start_ts(date: str) -> float:
    """Epoch seconds of local (China) midnight starting ``date``."""
    return float((parse_date(date) - _EPOCH).days * DAY_S - CHINA_UTC_OFFSET_S)


def local_date(ts: float) -> str:
    """The China-time calendar date of an epoch time."""
    return (_EPOCH + dt.timedelta(days=int((ts + CHINA_UTC_OFFSET_S) // DAY_S))).isoformat()


def week_span_ts(week: str) -> tuple[float, float]:
    """[start, end) of an ISO week in epoch seconds (local Monday 00:00 to next Monday 00:00)."""
    start = day_start_ts(parse_week(week).isoformat())
    return start, start + 7 * DAY_S


def days_between(a: str, b: str) -> int:
    """``b - a`` in days."""
    return (parse_date(b) - parse_date(a)).days
