"""WGS-84 <-> GCJ-02 <-> BD-09, vectorised over numpy arrays.

GCJ-02 is the obfuscated datum Chinese map providers (AutoNavi/Gaode, Tencent)
publish; BD-09 is Baidu's further offset of it.  The forward transforms are the
published closed forms.  The inverses have no closed form: the one-step
"subtract the offset at the shifted point" formula is off by up to ~5 m, so we
iterate ``x <- x - (f(x) - target)`` (a fixed-point iteration; ``f`` is a
near-identity map, so it contracts fast) until the residual is far below 1 mm.

Every function takes scalars or arrays (lon first, like GeoJSON) and returns the
same shape.  Outside the GCJ-02 region GCJ-02 equals WGS-84, as the providers do it.

The GCJ-02 region
-----------------
Where the shift applies is a polygon region shipped in ``geo/regions`` (an
outline of China, Hong Kong, Macau and Taiwan from AutoNavi's boundaries, see
its README), not the rectangle every published implementation uses: that one
shifted Seoul, Hanoi and Pyongyang too.  Which of Hong Kong, Macau and Taiwan
count is a convention of the map provider's data (docs/coordinates.md), chosen
with ``set_gcj02_region`` (the ``gcj02_region`` setting; ``load_settings``
applies it):

* ``mainland_hk_macau`` (default): as AutoNavi/Gaode, the GCJ-02 tiles preset,
  draws it: mainland, Hong Kong and Macau shifted, Taiwan not;
* ``mainland``: mainland only (Google's China map);
* ``mainland_hk_macau_taiwan``: all four.

The test is on the hot path (one per converted point), so it is a lookup in a
two-level grid built once per region: 0.25 degree cells that are wholly in or
out answer at once, cells the boundary crosses hold 0.025 degree subcells, and
only a point in a subcell the boundary crosses is tested against the polygon
(shapely, prepared).
"""

from __future__ import annotations

import json
import math
import functools
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

# Krasovsky 1940 ellipsoid, as used by the GCJ-02 algorithm.
_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

# Iteration stops when the residual is below this many degrees (~1e-6 m), or
# after _MAX_ITER rounds; 4-6 rounds suffice in practice.
_TOL_DEG = 1e-11
_MAX_ITER = 30

CRS_NAMES = ("wgs84", "gcj02", "bd09")


# --- the GCJ-02 region -----------------------------------------------------------

REGIONS_DIR = Path(__file__).with_name("regions")
# name -> (the parts shifted, the parts cut out of them); files in REGIONS_DIR.
GCJ02_REGIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mainland_hk_macau": (("china",), ("taiwan",)),
    "mainland": (("china",), ("hongkong", "macau", "taiwan")),
    "mainland_hk_macau_taiwan": (("china",), ()),
}
DEFAULT_GCJ02_REGION = "mainland_hk_macau"

_COARSE = 4  # cells per degree (0.25 degrees)
_FINE = 10  # subcells per cell side (0.025 degrees)
_OUT, _IN, _EDGE = 0, 1, 2


class _RegionGrid:
    """Point-in-region for WGS-84 points, through a two-level grid (see the module docstring)."""

    def __init__(self, geom):
        self.geom = geom
        shapely.prepare(geom)
        minx, miny, maxx, maxy = geom.bounds
        self.x0 = math.floor(minx * _COARSE) / _COARSE
        self.y0 = math.floor(miny * _COARSE) / _COARSE
        self.nx = math.ceil((maxx - self.x0) * _COARSE) + 1
        self.ny = math.ceil((maxy - self.y0) * _COARSE) + 1
        self.x1 = self.x0 + self.nx / _COARSE
        self.y1 = self.y0 + self.ny / _COARSE
        fine = _COARSE * _FINE
        # Subcells the boundary passes through (a vertex every half subcell, and
        # their neighbours, so that a boundary that only cuts a corner counts).
        line = shapely.segmentize(shapely.boundary(geom), 0.5 / fine)
        xy = shapely.get_coordinates(line)
        fx = np.floor((xy[:, 0] - self.x0) * fine).astype(np.int64)
        fy = np.floor((xy[:, 1] - self.y0) * fine).astype(np.int64)
        nfx, nfy = self.nx * _FINE, self.ny * _FINE
        d = np.array([-1, 0, 1])
        fx = (fx[:, None, None] + d[None, :, None] + 0 * d[None, None, :]).ravel()
        fy = (fy[:, None, None] + 0 * d[None, :, None] + d[None, None, :]).ravel()
        keep = (fx >= 0) & (fx < nfx) & (fy >= 0) & (fy < nfy)
        flat = np.unique(fy[keep] * nfx + fx[keep])
        fx, fy = flat % nfx, flat // nfx
        # Cells: the boundary's are EDGE, the others take their centre's side.
        cx, cy = np.meshgrid(np.arange(self.nx), np.arange(self.ny))
        inside = shapely.contains_xy(geom, self.x0 + (cx + 0.5) / _COARSE, self.y0 + (cy + 0.5) / _COARSE)
        coarse = np.where(inside, _IN, _OUT).astype(np.uint8)
        ecx, ecy = fx // _FINE, fy // _FINE
        cells = np.unique(ecy * self.nx + ecx)
        coarse.ravel()[cells] = _EDGE
        self.sub_of = np.full(self.ny * self.nx, -1, dtype=np.int32)
        self.sub_of[cells] = np.arange(len(cells), dtype=np.int32)
        self.sub_of = self.sub_of.reshape(self.ny, self.nx)
        # Subcells of the EDGE cells: their centre's side, then EDGE where the boundary passes.
        k, j, i = np.meshgrid(np.arange(len(cells)), np.arange(_FINE), np.arange(_FINE), indexing="ij")
        gx = (cells[k] % self.nx) * _FINE + i
        gy = (cells[k] // self.nx) * _FINE + j
        fine_inside = shapely.contains_xy(geom, self.x0 + (gx + 0.5) / fine, self.y0 + (gy + 0.5) / fine)
        sub = np.where(fine_inside, _IN, _OUT).astype(np.uint8).reshape(len(cells), _FINE, _FINE)
        sub[self.sub_of[ecy, ecx], fy % _FINE, fx % _FINE] = _EDGE
        self.coarse = coarse
        self.fine = sub if len(cells) else np.zeros((1, _FINE, _FINE), dtype=np.uint8)
        # Plain-Python copies for the scalar path (numpy indexing costs ~100 ns a time).
        self._coarse_b = coarse.tobytes()
        self._sub_of_l = self.sub_of.ravel().tolist()
        self._fine_b = self.fine.tobytes()

    def contains_scalar(self, lon: float, lat: float) -> bool:
        if not (self.x0 <= lon < self.x1 and self.y0 <= lat < self.y1):
            return False
        fx = int((lon - self.x0) * (_COARSE * _FINE))
        fy = int((lat - self.y0) * (_COARSE * _FINE))
        cx, cy = fx // _FINE, fy // _FINE
        v = self._coarse_b[cy * self.nx + cx]
        if v != _EDGE:
            return v == _IN
        v = self._fine_b[self._sub_of_l[cy * self.nx + cx] * _FINE * _FINE + (fy % _FINE) * _FINE + fx % _FINE]
        if v != _EDGE:
            return v == _IN
        return bool(shapely.contains_xy(self.geom, lon, lat))

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        lon, lat = np.broadcast_arrays(lon, lat)
        out = np.zeros(lon.shape, dtype=bool)
        ok = (lon >= self.x0) & (lon < self.x1) & (lat >= self.y0) & (lat < self.y1)
        if not ok.any():
            return out
        fine = _COARSE * _FINE
        fx = ((lon[ok] - self.x0) * fine).astype(np.int64)
        fy = ((lat[ok] - self.y0) * fine).astype(np.int64)
        cx, cy = fx // _FINE, fy // _FINE
        v = self.coarse[cy, cx]
        edge = v == _EDGE
        if edge.any():
            sub = self.fine[self.sub_of[cy[edge], cx[edge]], fy[edge] % _FINE, fx[edge] % _FINE]
            exact = sub == _EDGE
            if exact.any():
                sub = sub.copy()
                lon_e, lat_e = lon[ok][edge][exact], lat[ok][edge][exact]
                sub[exact] = np.where(shapely.contains_xy(self.geom, lon_e, lat_e), _IN, _OUT)
            v = v.copy()
            v[edge] = sub
        out[ok] = v == _IN
        return out


def _load_region(name: str):
    return shape(json.loads((REGIONS_DIR / f"{name}.wgs84.geojson").read_text(encoding="utf-8"))["geometry"])


def build_gcj02_region(name: str):
    """The region ``name`` (GCJ02_REGIONS) as one shapely geometry, WGS-84."""
    try:
        keep, cut = GCJ02_REGIONS[name]
    except KeyError:
        raise ValueError(f"unknown GCJ-02 region {name!r}; expected one of {tuple(GCJ02_REGIONS)}") from None
    geom = shapely.union_all([_load_region(n) for n in keep])
    if cut:
        geom = shapely.difference(geom, shapely.union_all([_load_region(n) for n in cut]))
    return geom


_region_name = DEFAULT_GCJ02_REGION


def set_gcj02_region(name: str) -> None:
    """Choose where GCJ-02 applies, for the whole process (the ``gcj02_region`` setting)."""
    global _region_name
    if name not in GCJ02_REGIONS:
        raise ValueError(f"unknown GCJ-02 region {name!r}; expected one of {tuple(GCJ02_REGIONS)}")
    _region_name = name


def gcj02_region() -> str:
    return _region_name


@functools.lru_cache(maxsize=None)
def _region_grid(name: str) -> _RegionGrid:
    # One per region, built on first use (about 0.1 s). Two threads that meet an
    # unbuilt grid at once may both build it; the cache keeps one, both are right.
    return _RegionGrid(build_gcj02_region(name))


def _grid() -> _RegionGrid:
    return _region_grid(_region_name)


def in_gcj02_region(lon, lat):
    """Whether GCJ-02 applies at these WGS-84 points (scalars or arrays)."""
    if _is_scalar(lon, lat):
        return _grid().contains_scalar(float(lon), float(lat))
    lon, lat, scalar = _as_arrays(lon, lat)
    out = _grid().contains(lon, lat)
    return bool(out) if scalar else out


def _out_of_china(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return ~_grid().contains(lon, lat)


def _transform_lat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _is_scalar(lon, lat) -> bool:
    return isinstance(lon, (float, int)) and isinstance(lat, (float, int))


def _as_arrays(lon, lat):
    scalar = np.isscalar(lon) and np.isscalar(lat)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float), scalar


def _ret(lon: np.ndarray, lat: np.ndarray, scalar: bool):
    if scalar:
        return float(lon), float(lat)
    return lon, lat


def _wgs84_to_gcj02_scalar(lon: float, lat: float) -> tuple[float, float]:
    """The same formula in plain floats: ~30x faster than numpy for one point
    (the ingest converts one fix at a time)."""
    if not _grid().contains_scalar(lon, lat):
        return lon, lat
    return _gcj_shift_scalar(lon, lat)


def _gcj_shift_scalar(lon: float, lat: float) -> tuple[float, float]:
    """The GCJ-02 formula, wherever the point is."""
    x, y = lon - 105.0, lat - 35.0
    pi = math.pi
    s6x, s2x = math.sin(6.0 * x * pi), math.sin(2.0 * x * pi)
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * pi) + 40.0 * math.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * pi) + 320.0 * math.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * s6x + 20.0 * s2x) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * pi) + 40.0 * math.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon += (150.0 * math.sin(x / 12.0 * pi) + 300.0 * math.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = lat / 180.0 * pi
    magic = 1.0 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * math.cos(radlat) * pi)
    return lon + dlon, lat + dlat


def _gcj02_to_bd09_scalar(lon: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lon) + 0.000003 * math.cos(lon * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def _invert_scalar(forward, lon: float, lat: float, shift=None) -> tuple[float, float]:
    if shift is None:
        x, y = lon, lat
    else:
        sx, sy = shift(lon, lat)
        x, y = lon - (sx - lon), lat - (sy - lat)
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x, y = x - ex, y - ey
        if abs(ex) < _TOL_DEG and abs(ey) < _TOL_DEG:
            break
    return x, y


def wgs84_to_gcj02(lon, lat):
    if _is_scalar(lon, lat):
        return _wgs84_to_gcj02_scalar(float(lon), float(lat))
    lon, lat, scalar = _as_arrays(lon, lat)
    slon, slat = _gcj_shift(lon, lat)
    out = _out_of_china(lon, lat)
    return _ret(np.where(out, lon, slon), np.where(out, lat, slat), scalar)


def _gcj_shift(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The GCJ-02 formula, wherever the points are."""
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return lon + dlon, lat + dlat


def gcj02_to_bd09(lon, lat):
    if _is_scalar(lon, lat):
        return _gcj02_to_bd09_scalar(float(lon), float(lat))
    lon, lat, scalar = _as_arrays(lon, lat)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return _ret(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006, scalar)


def _invert(forward, lon, lat, shift=None):
    """Solve forward(x) == (lon, lat) by fixed-point iteration.

    ``shift`` (scalar, vectorised): for GCJ-02, the unconditional formula.  The
    iteration then starts from the one-step estimate (the target minus the
    shift there) rather than from the target itself.  That matters only within
    a shift's length (~700 m) of the region's edge, where the map is not
    one-to-one: a mainland point shifted across the edge lands on the same
    GCJ-02 coordinates as the unshifted point already there (the Shenzhen
    River with ``gcj02_region=mainland``).  Starting from the estimate, such a
    point is read as the mainland's; elsewhere outside the region the second
    round lands on the target itself (unshifted), as before."""
    if _is_scalar(lon, lat):
        return _invert_scalar(forward, float(lon), float(lat), shift and shift[0])
    lon, lat, scalar = _as_arrays(lon, lat)
    shape_ = lon.shape
    lon, lat = lon.ravel(), lat.ravel()
    if shift is None:
        x, y = lon.copy(), lat.copy()
    else:
        sx, sy = shift[1](lon, lat)
        x, y = lon - (sx - lon), lat - (sy - lat)
    # Only the points not yet converged go round again: near the edge of the
    # GCJ-02 region the forward map jumps, and a point there can keep
    # alternating; it must not make every other point iterate _MAX_ITER times.
    todo = np.arange(lon.size)
    for _ in range(_MAX_ITER):
        fx, fy = forward(x[todo], y[todo])
        ex, ey = fx - lon[todo], fy - lat[todo]
        x[todo] -= ex
        y[todo] -= ey
        todo = todo[(np.abs(ex) >= _TOL_DEG) | (np.abs(ey) >= _TOL_DEG)]
        if not todo.size:
            break
    return _ret(x.reshape(shape_), y.reshape(shape_), scalar)


def gcj02_to_wgs84(lon, lat):
    return _invert(wgs84_to_gcj02, lon, lat, (_gcj_shift_scalar, _gcj_shift))


def bd09_to_gcj02(lon, lat):
    return _invert(gcj02_to_bd09, lon, lat)


def wgs84_to_bd09(lon, lat):
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon, lat):
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


_TO_WGS = {"wgs84": lambda lon, lat: _ret(*_as_arrays(lon, lat)), "gcj02": gcj02_to_wgs84, "bd09": bd09_to_wgs84}
_FROM_WGS = {"wgs84": lambda lon, lat: _ret(*_as_arrays(lon, lat)), "gcj02": wgs84_to_gcj02, "bd09": wgs84_to_bd09}


def to_wgs84(lon, lat, crs: str = "wgs84"):
    """Convert from ``crs`` (wgs84, gcj02, bd09) to WGS-84."""
    try:
        return _TO_WGS[crs](lon, lat)
    except KeyError:
        raise ValueError(f"unknown crs {crs!r}; expected one of {CRS_NAMES}") from None


def from_wgs84(lon, lat, crs: str = "wgs84"):
    """Convert WGS-84 to ``crs`` (wgs84, gcj02, bd09)."""
    try:
        return _FROM_WGS[crs](lon, lat)
    except KeyError:
        raise ValueError(f"unknown crs {crs!r}; expected one of {CRS_NAMES}") from None


def haversine_m(lon1, lat1, lon2, lat2):
    """Great-circle distance in metres (mean Earth radius), vectorised."""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, dtype=float)) for v in (lon1, lat1, lon2, lat2))
    dlat = lat2 - lat1
    dlon = lon2 - lon1
    h = np.sin(dlat / 2.0) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlon / 2.0) ** 2
    d = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
    return float(d) if d.ndim == 0 else d


# IUGG mean radius; H3 uses the same authalic-ish value for its distances.
EARTH_RADIUS_M = 6371008.8
