"""Timestamps as devices send them -> epoch seconds (UTC, float).

docs/mqtt.md (Rules common to all dialects) accepts:

* epoch seconds, int or float (``1700000000``, ``1700000000.25``);
* epoch milliseconds: any number above ``MS_THRESHOLD`` (``1700000000123``);
* the same as numeric strings (``"1700000000"``), because some clients quote
  every number (the old OwnTracks iOS app sent ``"tst": "1380738247"``);
* ISO-8601 strings (``2024-02-02T07:15:49Z``, ``2019-03-01T16:32:45.941+01:00``,
  ``2024-02-02 15:15:49``).  A string without an offset is Asia/Shanghai local
  time, the wall clock of every device this system serves.

Everything else raises ``Rejected``: ``bad_type`` (a bool, a list, an
unparseable string), ``nan_value`` (NaN or infinity, as a number or a string).
Range checks (too old, in the future) belong to ``ingest.validate``.
"""

from __future__ import annotations

import math
from datetime import datetime

from geo.china import CHINA_TZ
from ingest.validate import Rejected

# A number above this is epoch *milliseconds*.  1e11 s is the year 5138, so no
# real seconds value comes near it; 1e11 ms is 1973-03-03, so every real
# milliseconds value is above it.  The gap is four orders of magnitude wide.
MS_THRESHOLD = 1e11

# Local time of a naive ISO string.  China has had one zone without DST since
# 1991, so a naive wall-clock time maps to exactly one instant.

_INF = math.inf


def parse_ts(value: object, field: str = "ts") -> float:
    """``value`` (number, numeric string or ISO-8601 string) -> epoch seconds."""
    t = type(value)
    if t is int or t is float:  # bool is excluded: type(True) is bool
        x = float(value)  # type: ignore[arg-type]
    elif t is str:
        s = value.strip()  # type: ignore[union-attr]
        try:
            x = float(s)
        except ValueError:
            return _parse_iso(s, field)
    else:
        raise Rejected("bad_type", f"{field}: expected epoch seconds/ms or an ISO-8601 string, got {t.__name__}")
    if x != x or x == _INF or x == -_INF:
        raise Rejected("nan_value", f"{field}: {value!r} is not a finite time")
    if x > MS_THRESHOLD or x < -MS_THRESHOLD:
        x /= 1000.0
    return x


def _parse_iso(s: str, field: str) -> float:
    if not s or len(s) > 64:
        raise Rejected("bad_type", f"{field}: {s[:64]!r} is neither a number nor an ISO-8601 time")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise Rejected("bad_type", f"{field}: {s!r} is neither a number nor an ISO-8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=CHINA_TZ)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError, OSError):
        raise Rejected("out_of_range", f"{field}: {s!r} is outside the representable time range") from None


def try_parse_ts(value: object) -> float | None:
    """Like ``parse_ts`` but ``None`` instead of raising (for best-effort fields)."""
    try:
        return parse_ts(value)
    except Rejected:
        return None
