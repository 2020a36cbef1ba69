"""Facts of the place Anjian serves, written once: China time and the inspection intervals.

Standard library only, so that every package may import it (``config/`` too;
docs/architecture.md).

* ``CHINA_TZ``: the one local time zone, Asia/Shanghai.  A time written without
  an offset (a device's ISO-8601 string, a query parameter, an imported date) is
  China time; "today" is the calendar day in China time.
* ``CHINA_UTC_OFFSET_S``: the same as a fixed offset, for vectorised day
  arithmetic.  Asia/Shanghai has had no daylight saving time since 1991, so local
  midnight is 16:00 UTC all year, a whole UTC hour.
* ``DEFAULT_INTERVALS_D``: days between required inspections by risk colour
  (红橙黄蓝): monthly for red (major hazard), quarterly for orange, half-yearly
  for yellow, yearly for blue.  They are the defaults of ``Settings.interval_*_d``;
  code without settings at hand (tests, batch use, the demo city) uses them as
  they are.  Read-only: copy before changing.
* ``YEAR_MIN``, ``YEAR_MAX``: the years a week, a date, a month or a deadline that
  people give (a plan, a bulletin's period, a rating, a hazard's deadline) may name.
  Past them the edges of a week or a month overflow Python's dates (9999-W52 ends
  in the year 10000), and no bureau plans for them.  ``check_year`` refuses the rest.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

CHINA_TZ = ZoneInfo("Asia/Shanghai")
CHINA_UTC_OFFSET_S = 8 * 3600

DEFAULT_INTERVALS_D: dict[str, int] = {"red": 30, "orange": 90, "yellow": 182, "blue": 365}

YEAR_MIN, YEAR_MAX = 2000, 2099


def check_year(year: int, what: object) -> None:
    """ValueError when ``year`` is outside YEAR_MIN..YEAR_MAX; ``what`` names the value."""
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"{what!r}: the year must be between {YEAR_MIN} and {YEAR_MAX}")
