"""Enterprise index: which enterprises are within a radius of a point.

Each enterprise is put in its H3 cell at ``ENTERPRISE_RES`` (vectorised with
h3ronpy, then one sort).  A lookup takes the query point's cell, the
``grid_disk`` of cells that can hold a point within the radius, the
enterprises of those cells, and decides by exact great-circle distance.

How big the disk must be: a point lies at most ``R`` (the cell's circumradius)
from its cell's centre, so two points ``r`` apart have cell centres at most
``r + 2R`` apart; and cells ``m`` steps apart in the grid have centres at
least ``m * s * sqrt(3)/2`` apart (``s``: spacing of neighbouring centres; the
nearest cells of a hexagonal ring sit at the middle of its sides).  So
``k = ceil((r + 2R) / (s * sqrt(3)/2))`` rings hold every candidate.  ``R`` and
``s`` are measured on the actual cells near the query (H3 cells vary in size
and shape over the globe) and cached per region, with a 5 % safety margin.
For a regular hexagon of edge ``e`` this is ``k = ceil((r + 2e) / 1.5e)``.

Internally cells are ``int`` (h3's ``basic_int`` API: no string parsing on
the hot path); everything public speaks ``str`` cells.

Many points at once (``nearby_many``: an ingest batch, a history) take
another route to the same answers: the enterprises are also sorted along a
plain latitude/longitude grid (rows ``_GRID_ROW_M`` high, then longitude), so
a point's candidates are a few contiguous runs of that order, found with one
``searchsorted`` for the whole batch.  No per-point Python, and no first
lookup of a cell to pay (in the ingest profile, 60% of the H3 path's batch
cost was building the candidate lists of cells seen for the first time).  The
runs are bounded exactly: two points ``d`` apart differ in latitude by at
most ``d / R`` and in longitude by at most ``2 asin(sin(d / 2R) / cos(phi))``,
``phi`` the larger of their absolute latitudes (from the haversine formula);
both bounds get a margin far above float rounding, and the exact distance
decides, as on the H3 path.  Points within ``_GRID_LAT_MAX`` of a pole, or
whose radius crosses the antimeridian, take the H3 path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import h3
import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import ArrayLike

from geo.cells import ENTERPRISE_RES, cells_u64_to_str, points_to_cells_u64, valid_point_mask
from geo.coords import EARTH_RADIUS_M, haversine_m

# Cells of the grid geometry cache: res 5 cells are ~250 km^2; H3's distortion
# changes by far less than the 5 % margin across one of them.
_GEOMETRY_CACHE_RES = 5
# Shrink the measured ring spacing / grow the circumradius by this much, for
# the distortion between the measured cell and the cells around it.
_SAFETY = 1.05
# Below this many candidates the distances are computed in plain Python
# (numpy's per-call overhead is larger than the work).
_NUMPY_MIN_CANDIDATES = 48


def _geometry(cell: int) -> tuple[float, float]:
    """(circumradius R, neighbour-centre spacing s) of a cell, metres."""
    clat, clon = h3i.cell_to_latlng(cell)
    verts = h3i.cell_to_boundary(cell)
    r = max(haversine_m(clon, clat, vlon, vlat) for vlat, vlon in verts)
    s = min(
        haversine_m(clon, clat, nlon, nlat)
        for nlat, nlon in (h3i.cell_to_latlng(n) for n in h3i.grid_disk(cell, 1) if n != cell)
    )
    return r, s


# Cells whose candidate lists are remembered (each a short list of ints).
_CANDIDATE_CACHE_MAX = 50_000
# Points measured at once by ``nearby_many``: bounds its flat (point, candidate)
# arrays (~10 MB at the visit radius in a dense city) when a long history goes
# through it.
_MANY_CHUNK = 8192
# Row height of the batch path's latitude/longitude grid: the largest visit
# radius (50 m plus 50 m of accuracy), so a query spans two or three rows.
# Any radius is answered exactly; a larger one spans more rows.
_GRID_ROW_M = 100.0
# Beyond this latitude a longitude run gets wide (1 / cos(lat)), and no
# enterprise of ours is there: the H3 path answers.
_GRID_LAT_MAX = 80.0
# Added to the grid's latitude/longitude bounds (degrees): ~0.1 mm, some
# million times the float rounding of the bound, so no enterprise at the edge
# is missed; the exact distance test removes the extra candidates.
_GRID_MARGIN_DEG = 1e-9
# Metres per degree of latitude (mean Earth radius, as the distances).
_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0


def _searchsorted(a: np.ndarray, v: np.ndarray, side: str) -> np.ndarray:
    """``np.searchsorted(a, v, side)`` for unsorted ``v``, searched in sorted order:
    a third of the time for a batch of points (neighbouring searches share
    cache lines, and numpy starts each search from the previous answer)."""
    order = np.argsort(v, kind="stable")
    out = np.empty(v.size, dtype=np.intp)
    out[order] = np.searchsorted(a, v[order], side)
    return out


class EnterpriseIndex:
    """Enterprises bucketed by H3 cell; ``nearby`` answers radius queries exactly."""

    def __init__(
        self,
        ids: np.ndarray,
        lats: np.ndarray,
        lons: np.ndarray,
        cells: np.ndarray,
        res: int,
        skipped: int = 0,
    ):
        # Arrays sorted by cell; ``_slices`` maps cell -> (start, stop).
        self.res = res
        self.ids = ids
        self.lats = lats
        self.lons = lons
        self.cells = cells
        self.skipped = skipped  # enterprises without a usable coordinate
        self._ids_list: list[str] = ids.tolist()
        lat_r = np.radians(lats)
        self._lat_r: list[float] = lat_r.tolist()
        self._lon_r: list[float] = np.radians(lons).tolist()
        self._cos_lat: list[float] = np.cos(lat_r).tolist()
        self._lat_r_np = lat_r
        self._lon_r_np = np.radians(lons)
        self._cos_lat_np = np.cos(lat_r)
        if cells.size:
            starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
            stops = np.r_[starts[1:], cells.size]
            self._slices: dict[int, tuple[int, int]] = dict(
                zip(cells[starts].tolist(), zip(starts.tolist(), stops.tolist()))
            )
        else:
            self._slices = {}
        self._pos: dict[str, int] | None = None
        self._geom_cache: dict[int, tuple[float, float]] = {}
        self._cand_cache: dict[tuple[int, int], list[int]] = {}
        self._arr_cache: dict[tuple[int, int], tuple] = {}
        self._k_cache: dict[tuple[int, float], int] = {}
        self._grid_cache: tuple | None = None
        self._plain: bool | None = None

    # --- building ---------------------------------------------------------------

    @classmethod
    def from_arrays(
        cls,
        ids: Sequence[str] | np.ndarray,
        lats: ArrayLike,
        lons: ArrayLike,
        res: int = ENTERPRISE_RES,
    ) -> EnterpriseIndex:
        """Build from parallel arrays (WGS-84).  Enterprises without a valid coordinate are skipped."""
        ids = np.asarray(ids, dtype=object).ravel()
        lats = np.asarray(lats, dtype=np.float64).ravel()
        lons = np.asarray(lons, dtype=np.float64).ravel()
        if not (ids.size == lats.size == lons.size):
            raise ValueError("ids, lats and lons differ in length")
        ok = valid_point_mask(lats, lons)
        skipped = int(ids.size - ok.sum())
        if skipped:
            ids, lats, lons = ids[ok], lats[ok], lons[ok]
        cells = points_to_cells_u64(lats, lons, res)
        order = np.argsort(cells, kind="stable")
        return cls(ids[order], lats[order], lons[order], cells[order], res, skipped)

    def __len__(self) -> int:
        return int(self.ids.size)

    # --- lookups ----------------------------------------------------------------

    def _position(self, enterprise_id: str) -> int:
        if self._pos is None:
            self._pos = {eid: i for i, eid in enumerate(self._ids_list)}
        return self._pos[enterprise_id]

    def __contains__(self, enterprise_id: str) -> bool:
        try:
            self._position(enterprise_id)
        except KeyError:
            return False
        return True

    def location(self, enterprise_id: str) -> tuple[float, float]:
        """(lat, lon) of an enterprise; ``KeyError`` when unknown."""
        i = self._position(enterprise_id)
        return float(self.lats[i]), float(self.lons[i])

    def cell_of(self, enterprise_id: str) -> str:
        """The enterprise's cell at ``self.res``."""
        return h3.int_to_str(int(self.cells[self._position(enterprise_id)]))

    def cells_str(self) -> list[str]:
        """Cells of all enterprises, in the index's (cell-sorted) order."""
        return cells_u64_to_str(self.cells)

    def k_for_radius(self, radius_m: float, cell: int | None = None) -> int:
        """Rings of ``grid_disk`` that hold every point within ``radius_m`` of a point in ``cell``."""
        if cell is None:
            cell = int(self.cells[0]) if self.cells.size else h3i.latlng_to_cell(0.0, 0.0, self.res)
        region = h3i.cell_to_parent(cell, min(_GEOMETRY_CACHE_RES, self.res))
        geom = self._geom_cache.get(region)
        if geom is None:
            geom = self._geom_cache[region] = _geometry(h3i.cell_to_center_child(region, self.res))
        circum, spacing = geom
        ring_step = spacing * math.sqrt(3.0) / 2.0 / _SAFETY
        return max(0, math.ceil((max(radius_m, 0.0) + 2.0 * circum * _SAFETY) / ring_step))

    def _candidates(self, cell: int, k: int) -> list[int]:
        # Inspectors mostly stand still (visits) or creep along a street, so
        # consecutive fixes fall in the same cell: remembering each cell's
        # candidates turns the grid-disk walk (~100 dict probes at k=5) into
        # one probe.  The profile of bench/bench_ingest.py had that walk as the
        # geo engine's largest cost.  Bounded: cleared when it grows past
        # _CANDIDATE_CACHE_MAX (a city's worth of active cells).
        key = (cell, k)
        hit = self._cand_cache.get(key)
        if hit is not None:
            return hit
        slices = self._slices
        idx: list[int] = []
        for c in h3i.grid_disk(cell, k):
            sl = slices.get(c)
            if sl is not None:
                idx.extend(range(sl[0], sl[1]))
        if len(self._cand_cache) >= _CANDIDATE_CACHE_MAX:
            self._cand_cache.clear()
        self._cand_cache[key] = idx
        return idx

    def _candidate_arrays(self, cell: int, k: int):
        """The candidates of ``_candidates`` with their coordinates, ready for one
        vectorised distance pass (cached with the same bound)."""
        key = (cell, k)
        hit = self._arr_cache.get(key)
        if hit is not None:
            return hit
        idx = self._candidates(cell, k)
        ia = np.asarray(idx, dtype=np.int64)
        hit = (ia, self._lat_r_np[ia], self._lon_r_np[ia], self._cos_lat_np[ia])
        if len(self._arr_cache) >= _CANDIDATE_CACHE_MAX:
            self._arr_cache.clear()
        self._arr_cache[key] = hit
        return hit

    def nearby(self, lat: float, lon: float, radius_m: float) -> list[tuple[str, float]]:
        """Enterprises within ``radius_m`` of (lat, lon): ``[(id, distance_m)]``, nearest first.

        Distances are great-circle (haversine, mean Earth radius), exact to
        floating point; ties are broken by id so the answer is deterministic.
        """
        if not self._slices or radius_m < 0 or not (math.isfinite(lat) and math.isfinite(lon)):
            return []
        cell = h3i.latlng_to_cell(lat, lon, self.res)
        kkey = (cell, radius_m)
        k = self._k_cache.get(kkey)
        if k is None:
            if len(self._k_cache) >= _CANDIDATE_CACHE_MAX:
                self._k_cache.clear()
            k = self._k_cache[kkey] = self.k_for_radius(radius_m, cell)
        ia, lat_r, lon_r, cos_lat = self._candidate_arrays(cell, k)
        if ia.size == 0:
            return []
        if ia.size < _NUMPY_MIN_CANDIDATES:
            out = self._within(lat, lon, radius_m, self._candidates(cell, k))
            out.sort(key=lambda t: (t[1], t[0]))
            return out
        phi = math.radians(lat)
        lam = math.radians(lon)
        h = np.sin((lat_r - phi) * 0.5) ** 2 + math.cos(phi) * cos_lat * np.sin((lon_r - lam) * 0.5) ** 2
        d = (2.0 * EARTH_RADIUS_M) * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        hit = np.flatnonzero(d <= radius_m)
        if hit.size == 0:
            return []
        ids = self._ids_list
        out = [(ids[i], dd) for i, dd in zip(ia[hit].tolist(), d[hit].tolist())]
        out.sort(key=lambda t: (t[1], t[0]))
        return out

    def _within(self, lat: float, lon: float, radius_m: float, idx: list[int]) -> list[tuple[str, float]]:
        ids = self._ids_list
        if len(idx) < _NUMPY_MIN_CANDIDATES:
            phi = math.radians(lat)
            lam = math.radians(lon)
            cphi = math.cos(phi)
            lat_r, lon_r, cos_lat = self._lat_r, self._lon_r, self._cos_lat
            out = []
            for i in idx:
                h = math.sin((lat_r[i] - phi) / 2.0) ** 2 + cphi * cos_lat[i] * math.sin((lon_r[i] - lam) / 2.0) ** 2
                d = 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(h, 1.0)))
                if d <= radius_m:
                    out.append((ids[i], d))
            return out
        ia = np.asarray(idx, dtype=np.int64)
        phi = math.radians(lat)
        lam = math.radians(lon)
        h = (
            np.sin((self._lat_r_np[ia] - phi) / 2.0) ** 2
            + math.cos(phi) * self._cos_lat_np[ia] * np.sin((self._lon_r_np[ia] - lam) / 2.0) ** 2
        )
        d = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        hit = np.flatnonzero(d <= radius_m)
        return [(ids[int(ia[j])], float(d[j])) for j in hit.tolist()]

    def nearest(self, lat: float, lon: float, radius_m: float) -> tuple[str, float] | None:
        """The nearest enterprise within ``radius_m``, or None."""
        hits = self.nearby(lat, lon, radius_m)
        return hits[0] if hits else None

    def nearby_many(
        self, lats: ArrayLike, lons: ArrayLike, radii_m: ArrayLike | float
    ) -> list[list[tuple[str, float]]]:
        """``nearby`` for many points (history, or one ingest batch) in one vectorised pass.

        ``radii_m`` is one radius or one per point.  Each point's candidates
        come from the same per-cell cache as ``nearby``; all (point, candidate)
        pairs are then measured as one flat array, so the per-point cost is a
        few dict probes instead of a Python or numpy distance loop per point
        (the ingest profile had ``nearby``'s per-fix loop as the geo engine's
        largest cost).  The answers equal ``nearby``'s, point by point.
        """
        lats = np.asarray(lats, dtype=np.float64).ravel()
        lons = np.asarray(lons, dtype=np.float64).ravel()
        radii = np.broadcast_to(np.asarray(radii_m, dtype=np.float64), lats.shape)
        out: list[list[tuple[str, float]]] = [[] for _ in range(lats.size)]
        if lats.size == 0 or not self._slices:
            return out
        ok = valid_point_mask(lats, lons) & (radii >= 0)
        pts = np.flatnonzero(ok)
        if pts.size == 0:
            return out
        for a in range(0, pts.size, _MANY_CHUNK):
            self._nearby_chunk(lats, lons, radii, pts[a:a + _MANY_CHUNK], out)
        return out

    def prepare_many(self) -> None:
        """Build what ``nearby_many`` and ``ids_within_many`` use now rather than on
        their first call (an ingest worker does it before messages arrive)."""
        self._grid()
        self._plain_ids()

    def _grid(self) -> tuple:
        """(row height in degrees, sorted grid keys, index positions in key order,
        rank of each position's id in id order), built on first use."""
        if self._grid_cache is None:
            g = _GRID_ROW_M / _M_PER_DEG
            # row * 400 + (lon + 180): rows apart, longitude order inside a row
            # (lon + 180 < 400).  Rows stay below 2**53 / 400, so the sum is
            # monotonic in both parts.
            key = np.floor(self.lats / g) * 400.0 + (self.lons + 180.0)
            order = np.argsort(key, kind="stable")
            rank = np.empty(self.ids.size, dtype=np.int64)
            rank[np.argsort(self.ids, kind="stable")] = np.arange(self.ids.size)
            self._grid_cache = (g, key[order], order, rank)
        return self._grid_cache

    def _grid_candidates(self, lats: np.ndarray, lons: np.ndarray, radii: np.ndarray, pts: np.ndarray):
        """Candidates of the points ``pts`` from the latitude/longitude grid, as
        (owner point, index position) arrays, and the points it cannot answer
        (near a pole or across the antimeridian)."""
        g, key, order, _rank = self._grid()
        lat, lon, r = lats[pts], lons[pts], radii[pts]
        ang = r / EARTH_RADIUS_M
        dlat = np.degrees(ang) + _GRID_MARGIN_DEG
        phi = np.abs(lat) + dlat
        ok = phi <= _GRID_LAT_MAX
        sin_half = np.sin(ang * 0.5) / np.cos(np.radians(np.minimum(phi, _GRID_LAT_MAX)))
        ok &= sin_half < 1.0
        dlon = np.degrees(2.0 * np.arcsin(np.minimum(sin_half, 1.0))) + _GRID_MARGIN_DEG
        west, east = lon - dlon, lon + dlon
        ok &= (west > -180.0) & (east < 180.0)
        rest = pts[~ok]
        if not ok.all():
            pts, lat, west, east, dlat = pts[ok], lat[ok], west[ok], east[ok], dlat[ok]
        if pts.size == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64), rest
        row0 = np.floor((lat - dlat) / g)
        nrows = (np.floor((lat + dlat) / g) - row0).astype(np.int64) + 1
        rows = row0[None, :] + np.arange(int(nrows.max()))[:, None]  # (rows, points)
        lo = _searchsorted(key, (rows * 400.0 + (west + 180.0)).ravel(), "left")
        hi = _searchsorted(key, (rows * 400.0 + (east + 180.0)).ravel(), "right")
        counts = np.where((np.arange(rows.shape[0])[:, None] < nrows[None, :]).ravel(), hi - lo, 0)
        total = int(counts.sum())
        # Expand the runs [lo, lo + count) into one array of key positions.
        starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        ia = order[np.arange(total) + starts]
        owner = np.repeat(np.broadcast_to(pts, rows.shape).ravel(), counts)
        return owner, ia, rest

    def _h3_candidates(self, lats: np.ndarray, lons: np.ndarray, radii: np.ndarray, pts: np.ndarray):
        """Candidates of the points ``pts`` from the H3 grid disks (``nearby``'s way)."""
        qcells = points_to_cells_u64(lats[pts], lons[pts], self.res).tolist()
        k_cache = self._k_cache
        parts: list[np.ndarray] = []
        counts: list[int] = []
        for cell, r in zip(qcells, radii[pts].tolist()):
            k = k_cache.get((cell, r))
            if k is None:
                if len(k_cache) >= _CANDIDATE_CACHE_MAX:
                    k_cache.clear()
                k = k_cache[(cell, r)] = self.k_for_radius(r, cell)
            ia = self._candidate_arrays(cell, k)[0]
            parts.append(ia)
            counts.append(ia.size)
        ia = np.concatenate(parts) if parts else np.empty(0, np.int64)
        return np.repeat(pts, counts), ia

    def _hits(self, lats: np.ndarray, lons: np.ndarray, radii: np.ndarray, pts: np.ndarray):
        """Every (point, enterprise) pair within the point's radius, for the valid
        points ``pts``: (owner point, index position, distance) arrays."""
        owner, ia, rest = self._grid_candidates(lats, lons, radii, pts)
        if rest.size:
            owner_h3, ia_h3 = self._h3_candidates(lats, lons, radii, rest)
            owner, ia = np.concatenate([owner, owner_h3]), np.concatenate([ia, ia_h3])
        if ia.size == 0:
            return owner, ia, np.empty(0)
        phi = np.radians(lats)[owner]
        lam = np.radians(lons)[owner]
        h = (np.sin((self._lat_r_np[ia] - phi) * 0.5) ** 2
             + np.cos(phi) * self._cos_lat_np[ia] * np.sin((self._lon_r_np[ia] - lam) * 0.5) ** 2)
        d = (2.0 * EARTH_RADIUS_M) * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
        hit = np.flatnonzero(d <= radii[owner])
        return owner[hit], ia[hit], d[hit]

    def _nearby_chunk(self, lats: np.ndarray, lons: np.ndarray, radii: np.ndarray, pts: np.ndarray,
                      out: list[list[tuple[str, float]]]) -> None:
        """Fill ``out[p]`` for the valid points ``pts``: every (point, candidate) pair in one pass."""
        owner, ia, d = self._hits(lats, lons, radii, pts)
        if ia.size == 0:
            return
        # Nearest first, ties by id, as ``nearby``: one sort for the whole chunk.
        by = np.lexsort((self._grid()[3][ia], d, owner))
        ids = self._ids_list
        for p, i, dd in zip(owner[by].tolist(), ia[by].tolist(), d[by].tolist()):
            out[p].append((ids[i], dd))

    def ids_within_many(self, lats: ArrayLike, lons: ArrayLike, radii_m: ArrayLike | float) -> list[list[str]]:
        """For each point, the ids (``str``) of the enterprises within its radius,
        sorted by id: the set ``nearby_many`` finds, without distances or their
        order."""
        return self.within_many(lats, lons, radii_m)[0]

    def within_many(
        self, lats: ArrayLike, lons: ArrayLike, radii_m: ArrayLike | float
    ) -> tuple[list[list[str]], list[int]]:
        """For each point, the ids (``str``) of the enterprises within its radius,
        sorted by id, and the position in that list of the nearest of them (ties
        by id, as ``nearby``; -1 when there is none): what visit detection needs
        of every fix of an ingest batch (``geo.visits.advance``'s ``at`` and
        ``near``), without building ``nearby_many``'s pairs."""
        lats = np.asarray(lats, dtype=np.float64).ravel()
        lons = np.asarray(lons, dtype=np.float64).ravel()
        radii = np.broadcast_to(np.asarray(radii_m, dtype=np.float64), lats.shape)
        out: list[list[str]] = [[] for _ in range(lats.size)]
        near: list[int] = [-1] * lats.size
        if lats.size == 0 or not self._slices:
            return out, near
        pts = np.flatnonzero(valid_point_mask(lats, lons) & (radii >= 0))
        ids = self._ids_list
        rank = self._grid()[3]
        nearest_of: dict[int, int] = {}  # point -> index position of its nearest
        for a in range(0, pts.size, _MANY_CHUNK):
            owner, ia, d = self._hits(lats, lons, radii, pts[a:a + _MANY_CHUNK])
            if ia.size == 0:
                continue
            by = np.lexsort((rank[ia], owner))
            for p, i in zip(owner[by].tolist(), ia[by].tolist()):
                out[p].append(ids[i])
            # Nearest first within each point (ties by id): the first of each run.
            by_d = np.lexsort((rank[ia], d, owner))
            o = owner[by_d]
            first = np.flatnonzero(np.r_[True, o[1:] != o[:-1]])
            nearest_of.update(zip(o[first].tolist(), ia[by_d][first].tolist()))
        plain = self._plain_ids()
        for p, i in nearest_of.items():
            if not plain:
                out[p] = sorted({str(e) for e in out[p]})
            near[p] = out[p].index(str(ids[i]))
        if not plain:
            out = [sorted({str(e) for e in o}) for o in out]
        return out, near

    def _plain_ids(self) -> bool:
        """Whether every id is a distinct ``str`` (then id order is ``str`` order and
        no enterprise is listed twice)."""
        if self._plain is None:
            ids = self._ids_list
            self._plain = all(type(e) is str for e in ids) and len(set(ids)) == len(ids)
        return self._plain
