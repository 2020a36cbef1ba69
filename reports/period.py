"""Report periods in China time: ISO weeks (Monday 00:00 .. next Monday 00:00) and months.

A period is named as the API names it: ``2026-W49`` (ISO week) or ``2026-12``
(month).  Its range is ``[start_ts, end_ts)`` in epoch seconds (UTC), the
boundaries being local midnights in Asia/Shanghai.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from geo.china import CHINA_TZ, check_year

KINDS = ("weekly", "monthly")

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$", re.ASCII)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)


class PeriodError(ValueError):
    """A period name that does not parse, or does not fit the kind asked for."""


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # weekly | monthly
    key: str  # 2026-W49 | 2026-12
    first_day: date  # local (China) dates, both inclusive
    last_day: date

    @property
    def start_ts(self) -> float:
        return _midnight(self.first_day)

    @property
    def end_ts(self) -> float:
        return _midnight(self.last_day + timedelta(days=1))

    def days(self) -> list[date]:
        n = (self.last_day - self.first_day).days + 1
        return [self.first_day + timedelta(days=i) for i in range(n)]

    def day_starts(self) -> list[float]:
        return [_midnight(d) for d in self.days()]

    def previous(self) -> Period:
        return containing(self.kind, self.start_ts - 1)

    def next(self) -> Period:
        return containing(self.kind, self.end_ts)


def _midnight(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=CHINA_TZ).timestamp()


def local_date(ts: float) -> date:
    return datetime.fromtimestamp(ts, CHINA_TZ).date()


def _check_year(year: int, key: str) -> None:
    """geo.china.check_year, raising this module's PeriodError."""
    try:
        check_year(year, key)
    except ValueError as e:
        raise PeriodError(str(e)) from None


def week(year: int, week_no: int) -> Period:
    _check_year(year, f"{year}-W{week_no:02d}")
    try:
        monday = date.fromisocalendar(year, week_no, 1)
    except ValueError as e:
        raise PeriodError(f"no ISO week {year}-W{week_no:02d}: {e}") from None
    return Period("weekly", f"{year}-W{week_no:02d}", monday, monday + timedelta(days=6))


def month(year: int, month_no: int) -> Period:
    if not 1 <= month_no <= 12:
        raise PeriodError(f"no month {year}-{month_no:02d}")
    _check_year(year, f"{year}-{month_no:02d}")
    first = date(year, month_no, 1)
    nxt = date(year + 1, 1, 1) if month_no == 12 else date(year, month_no + 1, 1)
    return Period("monthly", f"{year}-{month_no:02d}", first, nxt - timedelta(days=1))


def parse(kind: str, key: str) -> Period:
    """``parse("weekly", "2026-W49")``, ``parse("monthly", "2026-12")``."""
    if kind not in KINDS:
        raise PeriodError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    m = (_WEEK if kind == "weekly" else _MONTH).fullmatch(key or "") if isinstance(key, str) else None
    if not m:
        raise PeriodError(f"a {kind} period is named like {'2026-W49' if kind == 'weekly' else '2026-12'}, "
                          f"not {key!r}")
    y, n = int(m.group(1)), int(m.group(2))
    return week(y, n) if kind == "weekly" else month(y, n)


def containing(kind: str, ts: float) -> Period:
    """The period of ``kind`` that holds the instant ``ts`` (China time)."""
    d = local_date(ts)
    if kind == "weekly":
        y, w, _ = d.isocalendar()
        return week(y, w)
    if kind == "monthly":
        return month(d.year, d.month)
    raise PeriodError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def last_complete(kind: str, now: float) -> Period:
    """The newest period of ``kind`` that has ended by ``now``: what a bulletin reports on."""
    return containing(kind, now).previous()


def next_weekly_run(now: float, weekday: int, hour: int, minute: int = 0) -> float:
    """The first instant after ``now`` that is ``weekday`` (ISO: 1 = Monday) at ``hour:minute`` China time."""
    local = datetime.fromtimestamp(now, CHINA_TZ)
    d = local.date() + timedelta(days=(weekday - local.isoweekday()) % 7)
    at = datetime(d.year, d.month, d.day, hour, minute, tzinfo=CHINA_TZ)
    if at.timestamp() <= now:
        at += timedelta(days=7)
    return at.timestamp()


def next_monthly_run(now: float, day: int, hour: int, minute: int = 0) -> float:
    """The first instant after ``now`` that is day ``day`` (1..28) of a month at ``hour:minute`` China time."""
    local = datetime.fromtimestamp(now, CHINA_TZ)
    y, m = local.year, local.month
    for _ in range(3):
        at = datetime(y, m, day, hour, minute, tzinfo=CHINA_TZ)
        if at.timestamp() > now:
            return at.timestamp()
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    raise AssertionError("unreachable")
