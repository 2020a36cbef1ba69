"""Inspection coverage: next due date by risk colour, overdue flags, coverage shares.

The risk colour (红橙黄蓝) sets how often an enterprise must be inspected.  The
intervals are data, passed in (``Settings.interval_days()``);
``DEFAULT_INTERVALS_D`` (``geo.china``) are the settings' defaults, for tests and batch use.

An enterprise is *overdue* when ``now`` is past its next due date, and *within
interval* otherwise.  The next due date is the last inspection plus the
interval; an enterprise never inspected is due one interval after it was
registered (``created_at``), or at once (due at epoch 0) when that is unknown
too: nothing proves it was ever looked at.

Times are epoch seconds; ``last_inspected_at`` arrays use NaN for "never".
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from geo.china import DEFAULT_INTERVALS_D

DAY_S = 86400.0

RISK_COLOURS = ("red", "orange", "yellow", "blue")

# Due date of an enterprise with neither an inspection nor a registration date.
DUE_AT_ONCE = 0.0


def _interval_s(risk: str, intervals_d: Mapping[str, float]) -> float:
    try:
        return float(intervals_d[risk]) * DAY_S
    except KeyError:
        raise ValueError(f"unknown risk colour {risk!r}; known: {sorted(intervals_d)}") from None


def next_due(
    last_inspected_at: float | None,
    risk: str,
    intervals_d: Mapping[str, float] = DEFAULT_INTERVALS_D,
    created_at: float | None = None,
) -> float:
    """When the next inspection is due (epoch s)."""
    basis = last_inspected_at if last_inspected_at is not None else created_at
    if basis is None or basis != basis:  # None or NaN
        return DUE_AT_ONCE
    return float(basis) + _interval_s(risk, intervals_d)


def is_overdue(
    last_inspected_at: float | None,
    risk: str,
    now: float,
    intervals_d: Mapping[str, float] = DEFAULT_INTERVALS_D,
    created_at: float | None = None,
) -> bool:
    return now > next_due(last_inspected_at, risk, intervals_d, created_at)


def _interval_array_s(risks: ArrayLike, intervals_d: Mapping[str, float]) -> np.ndarray:
    risks = np.asarray(risks, dtype=object).ravel()
    if risks.size == 0:
        return np.empty(0, dtype=np.float64)
    colours, codes = np.unique(risks.astype(str), return_inverse=True)
    unknown = [c for c in colours.tolist() if c not in intervals_d]
    if unknown:
        raise ValueError(f"unknown risk colour(s) {unknown}; known: {sorted(intervals_d)}")
    per_colour = np.asarray([float(intervals_d[c]) * DAY_S for c in colours.tolist()])
    return per_colour[codes.ravel()]


def next_due_array(
    last_inspected_at: ArrayLike,
    risks: ArrayLike,
    intervals_d: Mapping[str, float] = DEFAULT_INTERVALS_D,
    created_at: ArrayLike | None = None,
) -> np.ndarray:
    """Vectorised ``next_due``: NaN in ``last_inspected_at`` (and ``created_at``) means unknown."""
    last = np.asarray(last_inspected_at, dtype=np.float64).ravel()
    interval = _interval_array_s(risks, intervals_d)
    if interval.shape != last.shape:
        raise ValueError("last_inspected_at and risks differ in length")
    basis = last
    if created_at is not None:
        created = np.asarray(created_at, dtype=np.float64).ravel()
        if created.shape != last.shape:
            raise ValueError("created_at differs in length")
        basis = np.where(np.isnan(last), created, last)
    return np.where(np.isnan(basis), DUE_AT_ONCE, basis + interval)


def overdue_mask(
    last_inspected_at: ArrayLike,
    risks: ArrayLike,
    now: float,
    intervals_d: Mapping[str, float] = DEFAULT_INTERVALS_D,
    created_at: ArrayLike | None = None,
) -> np.ndarray:
    """True where the enterprise is overdue at ``now``; ``~mask`` is "within interval"."""
    return now > next_due_array(last_inspected_at, risks, intervals_d, created_at)


def _factorize(keys: Sequence[Hashable] | np.ndarray) -> tuple[list, np.ndarray]:
    """Distinct keys in first-seen order and each item's code; works with None keys."""
    index: dict = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    return list(index), codes


def coverage_by(keys: Sequence[Hashable] | np.ndarray, in_interval: ArrayLike) -> dict[Hashable, float]:
    """Percentage within interval per group key: ``{key: pct}`` (0-100).

    ``keys`` are any hashables (a colour, a street id, None for "no street").
    """
    mask = np.asarray(in_interval, dtype=bool).ravel()
    if len(keys) != mask.size:
        raise ValueError("keys and in_interval differ in length")
    if mask.size == 0:
        return {}
    groups, codes = _factorize(list(keys) if isinstance(keys, np.ndarray) else keys)
    total = np.bincount(codes, minlength=len(groups))
    inside = np.bincount(codes, weights=mask, minlength=len(groups))
    pct = 100.0 * inside / total
    return dict(zip(groups, pct.tolist()))


def coverage_pct(in_interval: ArrayLike) -> float:
    """Share within interval over everything, percent (100 for an empty set: nothing is missing)."""
    mask = np.asarray(in_interval, dtype=bool)
    return 100.0 if mask.size == 0 else float(100.0 * mask.mean())


@dataclass(slots=True, frozen=True)
class Overdue:
    enterprise_id: str
    risk: str
    street_id: str | None
    grid_id: str | None
    due_at: float
    overdue_s: float


def overdue_by_area(
    ids: Sequence[str],
    risks: Sequence[str],
    street_ids: Sequence[str | None],
    grid_ids: Sequence[str | None],
    last_inspected_at: ArrayLike,
    now: float,
    intervals_d: Mapping[str, float] = DEFAULT_INTERVALS_D,
    created_at: ArrayLike | None = None,
) -> dict[str | None, dict[str | None, list[Overdue]]]:
    """The overdue list grouped ``{street_id: {grid_id: [Overdue, ...]}}``.

    Within a grid the longest overdue comes first (ties: red before orange
    before yellow before blue, then by id), so the top of each list is what a
    grid officer should visit next.
    """
    n = len(ids)
    if not (len(risks) == len(street_ids) == len(grid_ids) == n):
        raise ValueError("ids, risks, street_ids and grid_ids differ in length")
    due = next_due_array(last_inspected_at, risks, intervals_d, created_at)
    late = np.flatnonzero(now > due)
    rank = {c: i for i, c in enumerate(RISK_COLOURS)}
    items = [
        Overdue(ids[i], risks[i], street_ids[i], grid_ids[i], float(due[i]), float(now - due[i]))
        for i in late.tolist()
    ]
    items.sort(key=lambda o: (-o.overdue_s, rank.get(o.risk, len(rank)), o.enterprise_id))
    out: dict[str | None, dict[str | None, list[Overdue]]] = {}
    for o in items:
        out.setdefault(o.street_id, {}).setdefault(o.grid_id, []).append(o)
    return out
