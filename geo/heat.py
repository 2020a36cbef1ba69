"""Heat of pings and visits per H3 cell: binning, rollups, time buckets, gap layer.

Two paths produce the same counts:

* the vectorised path (``bin_points``, ``bin_points_multi``) rebuilds counts
  from history: h3ronpy computes ``uint64`` cells for all points at once,
  ``np.unique`` counts them, and only the distinct cells are turned into
  ``str``; a million pings take little more than the bare h3ronpy kernel
  (``bench/bench_heat.py``, ``docs/benchmarks-geo.md``);
* the live path (``point_cells``) gives the cells of one ping at every heat
  resolution, so a worker can increment per-bucket counters.

Counts are plain ``dict[str, int]`` (cell -> count).  Rolling windows are
sums of fixed time buckets (``hour_bucket``; ``window_buckets`` lists the
buckets of a window), merged with ``merge_counts``.

Coarser resolutions follow H3's hierarchy: a ping's cell at res 7 or 8 is the
*parent* of its res-9 cell (``cell_to_parent``), which is how the live path
increments counters and how ``rollup`` and ``bin_points_multi`` work.  H3's
children do not tile their parent exactly, so this differs from binning the
raw points at res 8 directly for the ~3 % of points near a cell's edge (1 %
at res 7); totals are the same.  Use one convention per layer - the rollup
one, because it lets every zoom come from one set of fine counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import h3
import numpy as np
from numpy.typing import ArrayLike

from geo.china import CHINA_UTC_OFFSET_S, DEFAULT_INTERVALS_D
from geo.cells import (
    HEAT_RESOLUTIONS,
    cells_str_to_u64,
    cells_u64_resolution,
    cells_u64_to_parent,
    cells_u64_to_str,
    points_to_cells_u64,
    valid_point_mask,
)

HOUR_S = 3600
DAY_S = 86400


# --- binning ------------------------------------------------------------------


def _clean(lats: ArrayLike, lons: ArrayLike, weights: ArrayLike | None = None):
    lats = np.asarray(lats, dtype=np.float64).ravel()
    lons = np.asarray(lons, dtype=np.float64).ravel()
    if lats.shape != lons.shape:
        raise ValueError("lats and lons differ in length")
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w is not None and w.shape != lats.shape:
        raise ValueError("weights differ in length from the points")
    ok = valid_point_mask(lats, lons)
    if not ok.all():
        lats, lons = lats[ok], lons[ok]
        if w is not None:
            w = w[ok]
    return lats, lons, w


def bin_points_u64(lats: ArrayLike, lons: ArrayLike, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct cells (``uint64``, sorted) and their counts.  Invalid points are skipped."""
    lats, lons, _ = _clean(lats, lons)
    cells = points_to_cells_u64(lats, lons, res)
    if cells.size == 0:
        return cells, np.empty(0, dtype=np.int64)
    uniq, counts = np.unique(cells, return_counts=True)
    return uniq, counts


def bin_points(lats: ArrayLike, lons: ArrayLike, res: int) -> dict[str, int]:
    """Count points per cell at ``res``: ``{cell: count}``.

    Points with a NaN, infinite or out-of-range coordinate are skipped, not an
    error: history has the odd broken fix and one must not sink the heatmap.
    """
    uniq, counts = bin_points_u64(lats, lons, res)
    return dict(zip(cells_u64_to_str(uniq), counts.tolist()))


def bin_points_by(
    keys: Sequence, lats: ArrayLike, lons: ArrayLike, res: int
) -> dict[object, dict[str, int]]:
    """Counts per cell for each group key (a unit, a street): ``{key: {cell: count}}``.

    One kernel pass and one sort for all groups; the heat filtered by unit or
    street comes from the same rebuild.  Points with an invalid coordinate
    are skipped.
    """
    lats = np.asarray(lats, dtype=np.float64).ravel()
    lons = np.asarray(lons, dtype=np.float64).ravel()
    if not (len(keys) == lats.size == lons.size):
        raise ValueError("keys, lats and lons differ in length")
    ok = valid_point_mask(lats, lons)
    index: dict = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    groups = list(index)
    codes, lats, lons = codes[ok], lats[ok], lons[ok]
    cells = points_to_cells_u64(lats, lons, res)
    if cells.size == 0:
        return {}
    order = np.lexsort((cells, codes))
    cells, codes = cells[order], codes[order]
    new = np.r_[True, (cells[1:] != cells[:-1]) | (codes[1:] != codes[:-1])]
    starts = np.flatnonzero(new)
    counts = np.diff(np.r_[starts, cells.size])
    names = cells_u64_to_str(cells[starts])
    out: dict[object, dict[str, int]] = {}
    for code, name, n in zip(codes[starts].tolist(), names, counts.tolist()):
        out.setdefault(groups[code], {})[name] = n
    return out


def bin_weights(lats: ArrayLike, lons: ArrayLike, weights: ArrayLike, res: int) -> dict[str, float]:
    """Sum ``weights`` per cell at ``res``: ``{cell: sum}``."""
    lats, lons, w = _clean(lats, lons, weights)
    cells = points_to_cells_u64(lats, lons, res)
    if cells.size == 0:
        return {}
    uniq, inverse = np.unique(cells, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=w, minlength=uniq.size)
    return dict(zip(cells_u64_to_str(uniq), sums.tolist()))


def bin_points_multi(
    lats: ArrayLike, lons: ArrayLike, resolutions: Sequence[int] = HEAT_RESOLUTIONS
) -> dict[int, dict[str, int]]:
    """Counts at several resolutions with one kernel pass.

    The points are binned once at the finest resolution; coarser counts are
    rollups of the distinct fine cells (few next to the points), so they
    equal ``rollup(bin_points(.., finest), res)`` and the live path's
    ``point_cells`` - not ``bin_points(.., res)``, see the module docstring.
    """
    resolutions = sorted(set(resolutions))
    if not resolutions:
        return {}
    finest = resolutions[-1]
    uniq, counts = bin_points_u64(lats, lons, finest)
    out = {finest: dict(zip(cells_u64_to_str(uniq), counts.tolist()))}
    for res in resolutions[:-1]:
        out[res] = _rollup_u64(uniq, counts, res)
    return out


def _rollup_u64(cells: np.ndarray, counts: np.ndarray, res: int) -> dict:
    if cells.size == 0:
        return {}
    parents = cells_u64_to_parent(cells, res)
    uniq, inverse = np.unique(parents, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=counts, minlength=uniq.size)
    if np.issubdtype(counts.dtype, np.integer):
        sums = sums.astype(np.int64)
    return dict(zip(cells_u64_to_str(uniq), sums.tolist()))


def rollup(counts: Mapping[str, int | float], res: int) -> dict[str, int | float]:
    """Sum counts of finer cells into their parents at ``res`` (``cell_to_parent``).

    Every cell must be at ``res`` or finer (a ``ValueError`` otherwise); cells
    of mixed resolutions are fine.  Integer counts stay integers.
    """
    if not counts:
        return {}
    keys = list(counts)
    cells = cells_str_to_u64(keys)
    cell_res = cells_u64_resolution(cells)
    if (cell_res < res).any():
        coarse = keys[int(np.argmax(cell_res < res))]
        raise ValueError(f"cell {coarse} is coarser than resolution {res}")
    values = list(counts.values())
    integral = all(isinstance(v, (int, np.integer)) for v in values)
    weights = np.asarray(values, dtype=np.int64 if integral else np.float64)
    return _rollup_u64(cells, weights, res)


def rollups(counts: Mapping[str, int], resolutions: Sequence[int] = HEAT_RESOLUTIONS) -> dict[int, dict[str, int]]:
    """``{res: rollup(counts, res)}`` for each resolution (counts kept as they are at their own)."""
    return {res: rollup(counts, res) for res in resolutions}


def point_cells(lat: float, lon: float, resolutions: Sequence[int] = HEAT_RESOLUTIONS) -> dict[int, str]:
    """Cells of one point at each resolution (live path: one index, then parents)."""
    resolutions = sorted(set(resolutions))
    finest = h3.latlng_to_cell(lat, lon, resolutions[-1])
    return {res: (finest if res == resolutions[-1] else h3.cell_to_parent(finest, res)) for res in resolutions}


def merge_counts(*counts: Mapping[str, int | float]) -> dict[str, int | float]:
    """Sum several ``{cell: count}`` maps (e.g. the hour buckets of a window)."""
    if len(counts) == 1 and not isinstance(counts[0], Mapping):
        counts = tuple(counts[0])  # an iterable of maps
    out: dict[str, int | float] = {}
    for c in counts:
        for cell, n in c.items():
            out[cell] = out.get(cell, 0) + n
    return out


def subtract_counts(total: Mapping[str, int | float], old: Mapping[str, int | float]) -> dict[str, int | float]:
    """``total - old`` per cell, dropping cells that reach zero (a bucket leaving a window)."""
    out = dict(total)
    for cell, n in old.items():
        left = out.get(cell, 0) - n
        if left:
            out[cell] = left
        else:
            out.pop(cell, None)
    return out


def counts_to_rows(counts: Mapping[str, int | float]) -> list[dict]:
    """The ``/api/v1/heatmap`` shape, ``[{"cell", "count"}]``, hottest first (ties by cell)."""
    return [{"cell": c, "count": n} for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


# --- time buckets ---------------------------------------------------------------


def time_bucket(ts: float, bucket_s: int = HOUR_S) -> int:
    """Number of the ``bucket_s`` bucket that holds ``ts`` (epoch s): floor(ts / bucket_s)."""
    return int(ts // bucket_s)


def hour_bucket(ts: float) -> int:
    """Hours since the epoch, UTC: the key of the hourly heat counters."""
    return int(ts // HOUR_S)


def hour_buckets_of(ts: ArrayLike) -> np.ndarray:
    """``hour_bucket`` over an array (history rebuild groups by it)."""
    return np.floor_divide(np.asarray(ts, dtype=np.float64), HOUR_S).astype(np.int64)


def bucket_start(bucket: int, bucket_s: int = HOUR_S) -> float:
    return float(bucket * bucket_s)


def window_buckets(now: float, window_s: float, bucket_s: int = HOUR_S) -> range:
    """Buckets that overlap the window ``(now - window_s, now]``.

    The oldest bucket is only partly inside the window, so a window summed
    from buckets covers up to one bucket more than ``window_s`` (the last hour
    reads 1-2 hours of counts with hourly buckets).  Use ``bucket_s`` = 60 or
    300 for a tighter "last hour".
    """
    if window_s <= 0:
        return range(0)
    return range(time_bucket(now - window_s, bucket_s), time_bucket(now, bucket_s) + 1)


def local_day_start(now: float, utc_offset_s: int = CHINA_UTC_OFFSET_S) -> float:
    """Epoch seconds of the local midnight that starts ``now``'s day (Asia/Shanghai by default)."""
    return float((now + utc_offset_s) // DAY_S * DAY_S - utc_offset_s)


def today_buckets(now: float, bucket_s: int = HOUR_S, utc_offset_s: int = CHINA_UTC_OFFSET_S) -> range:
    """Buckets from local midnight to ``now`` ("today" on the wall screen).

    Exact with hourly buckets: Shanghai's midnight is a whole UTC hour.
    """
    start = local_day_start(now, utc_offset_s)
    return range(time_bucket(start, bucket_s), time_bucket(now, bucket_s) + 1)


# Named rolling windows the dashboard offers (seconds).
ROLLING_WINDOWS_S: dict[str, int] = {"1h": HOUR_S, "24h": DAY_S, "7d": 7 * DAY_S}


# --- coverage gap ----------------------------------------------------------------


def risk_weights(intervals_d: Mapping[str, float]) -> dict[str, float]:
    """Weight of an overdue enterprise by colour: required inspections per year.

    ``365 / interval_days``: with the default intervals red 12.2, orange 4.1,
    yellow 2.0, blue 1.0.  A cell's gap value is then the number of required
    inspections per year that are not being done there, so one overdue red
    plant outweighs a dozen overdue blue shops, as the inspection plan does.
    The weights follow the configured intervals, so changing an interval
    changes the layer consistently.
    """
    bad = {c: d for c, d in intervals_d.items() if not d or d <= 0}
    if bad:
        raise ValueError(f"intervals must be positive days: {bad}")
    return {colour: 365.0 / float(days) for colour, days in intervals_d.items()}


def gap_cells(
    lats: ArrayLike,
    lons: ArrayLike,
    risks: Sequence[str] | np.ndarray,
    res: int,
    weights: Mapping[str, float] | None = None,
    intervals_d: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Coverage-gap layer: ``{cell: summed risk weight}`` of the overdue enterprises given.

    Pass only overdue enterprises (``geo.coverage.overdue_mask``).  Weights per
    colour come from ``weights`` or, by default, ``risk_weights(intervals_d)``
    (``intervals_d`` defaults to ``geo.china.DEFAULT_INTERVALS_D``).  An
    unknown colour is a ``ValueError``: a silent default would hide bad data.
    """
    if weights is None:
        if intervals_d is None:
            intervals_d = DEFAULT_INTERVALS_D
        weights = risk_weights(intervals_d)
    risks = np.asarray(risks, dtype=object).ravel()
    if risks.size == 0:
        return {}
    colours, codes = np.unique(risks.astype(str), return_inverse=True)
    unknown = [c for c in colours.tolist() if c not in weights]
    if unknown:
        raise ValueError(f"no weight for risk colour(s) {unknown}; known: {sorted(weights)}")
    w = np.asarray([weights[c] for c in colours.tolist()], dtype=np.float64)[codes.ravel()]
    return bin_weights(lats, lons, w, res)


def top_cells(counts: Mapping[str, int | float], n: int) -> list[tuple[str, int | float]]:
    """The ``n`` hottest cells (ties by cell id)."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
