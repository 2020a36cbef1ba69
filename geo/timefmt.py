"""Epoch seconds -> the times people read: the one formatter.

Every time the API answers, the screens show and the outbound MQTT messages
carry is formatted here (``iso``, ``local_dt``), in Asia/Shanghai time.  Parsing
what devices send is ``ingest.timeparse``'s job.

The formatter is defensive: a stored value that is not a representable time
(``1e297`` from a message that slipped past validation once, ``inf``, a year
outside 1..9999, a string that is no number) becomes ``None`` and is logged
once, instead of raising ``OverflowError``/``ValueError`` into an API answer or
a screen's callback.  One odd row must never turn a whole list into HTTP 500.
NaN is the usual "no value" of numeric arrays (a never-inspected enterprise's
last visit) and becomes ``None`` quietly.

It lives in ``geo`` because every package may import ``geo`` (``alerts`` is
pure and may import nothing else).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math

from geo.china import CHINA_TZ

__all__ = ["SHANGHAI", "iso", "iso_ms", "local_dt", "parse_iso_or_epoch"]

log = logging.getLogger(__name__)

SHANGHAI = CHINA_TZ  # the name its importers use

# Odd values already logged (each once, so a screen polling every second does
# not repeat it), up to this many.
_LOGGED_MAX = 256
_logged: set[str] = set()


def _odd(value: object, why: str) -> None:
    key = repr(value)[:80]
    # No lock: two threads meeting the same odd value at once log it twice, no worse.
    if key in _logged or len(_logged) >= _LOGGED_MAX:
        return
    _logged.add(key)
    log.warning("odd time %s in stored data (%s): shown as no time", key, why)


def _seconds(ts: object) -> float | None:
    """``ts`` as a finite float, or None (logged unless it is NaN)."""
    try:
        x = float(ts)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        _odd(ts, "not a number")
        return None
    if x != x:
        return None
    if x in (math.inf, -math.inf):
        _odd(ts, "not finite")
        return None
    return x


def iso(ts: float | None) -> str | None:
    """ISO-8601 in Asia/Shanghai time, truncated to the second
    (``2024-06-10T14:03:22+08:00``); None for None, NaN and odd values."""
    if ts is None:
        return None
    x = _seconds(ts)
    return None if x is None else _iso_second(math.floor(x))


def iso_ms(ts: float | None) -> str | None:
    """ISO-8601 in Asia/Shanghai time to the millisecond
    (``2024-06-10T14:03:22.125+08:00``): the times the system writes into notes that
    people and programs read back (an escalation's deadline, a device's last message).
    None for None, NaN and odd values."""
    x = None if ts is None else _seconds(ts)
    if x is None:
        return None
    try:
        return dt.datetime.fromtimestamp(x, SHANGHAI).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError) as e:
        _odd(ts, str(e))
        return None


def parse_iso_or_epoch(text: str) -> float | None:
    """Epoch seconds from what ``iso_ms`` wrote, or from the bare epoch seconds that
    notes held before it (rows written by earlier versions); None when it is neither."""
    try:
        return float(text)
    except (TypeError, ValueError):
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=SHANGHAI)
    return when.timestamp()


@functools.lru_cache(maxsize=65536)
def _iso_second(second: int) -> str | None:
    # Screens format thousands of the same fix times every second; the memo makes it a lookup.
    try:
        return dt.datetime.fromtimestamp(second, SHANGHAI).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError) as e:
        _odd(second, str(e))
        return None


def local_dt(ts: float | None) -> dt.datetime | None:
    """An aware datetime in Asia/Shanghai time; None for None, NaN and odd values."""
    if ts is None:
        return None
    x = _seconds(ts)
    if x is None:
        return None
    try:
        return dt.datetime.fromtimestamp(x, SHANGHAI)
    except (OverflowError, ValueError, OSError) as e:
        _odd(ts, str(e))
        return None
