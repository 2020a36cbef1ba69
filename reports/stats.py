"""Percentiles and small statistics for bulletins."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks
    (numpy's default, "linear", method 7 of Hyndman & Fan); None for no values.
    NaN and infinite values are left out."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, not {q}")
    xs = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    if not xs:
        return None
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def pct(part: float, whole: float) -> float | None:
    """``part`` as a percentage of ``whole``; None when ``whole`` is 0."""
    return None if not whole else 100.0 * part / whole


def rank(rows: list[dict], key: str, *, descending: bool = True, tie: str = "id") -> list[dict]:
    """Rows sorted by ``key`` (None last), each given ``rank`` (1-based, ties share a rank)."""
    present = [r for r in rows if r.get(key) is not None]
    absent = [r for r in rows if r.get(key) is None]
    present.sort(key=lambda r: (-r[key] if descending else r[key], str(r.get(tie))))
    out, prev, prev_rank = [], object(), 0
    for i, r in enumerate(present, start=1):
        rk = prev_rank if r[key] == prev else i
        out.append({**r, "rank": rk})
        prev, prev_rank = r[key], rk
    out.extend({**r, "rank": None} for r in sorted(absent, key=lambda r: str(r.get(tie))))
    return out
