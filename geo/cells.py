"""H3 cells: the resolutions we use and the conversions between representations.

One representation outside kernels: a cell is an h3-py ``str`` ("89411caf52bffff").
Inside a vectorised kernel (binning a million pings, building the enterprise
index) cells are ``numpy.uint64`` arrays, because that is what h3ronpy produces
and what ``np.unique`` sorts fast; they become ``str`` before they leave the
kernel (``cells_u64_to_str``).  A cell's ``str`` is the lowercase hex of its
``uint64``, so the two convert losslessly.
"""

from __future__ import annotations

import h3
import numpy as np
from h3ronpy import cells_to_string, change_resolution
from h3ronpy.vector import coordinates_to_cells
from numpy.typing import ArrayLike

# Heatmap resolutions, coarse to fine.  Average hexagon edge / area:
#   res 7: 1.41 km / 5.2 km^2  - a whole district at once (map zoom < 12.5): a
#          few hundred cells across a district, readable on the wall screen;
#   res 8: 531 m / 0.74 km^2   - a street (街道) at zoom 12.5-14: several cells per
#          community, so hot blocks stand out from quiet ones;
#   res 9: 201 m / 0.105 km^2  - a grid (网格) or an industrial park at zoom >= 14:
#          about a city block, still coarser than GPS error (5-50 m) so a
#          stationary inspector lights one cell, not a smear of jitter.
# Finer than 9 the heat of pings turns into a picture of individual fixes,
# which the map already shows as markers.  Each step is ~7x the area of the
# next, the standard H3 aperture, so a screen picks the resolution for its
# zoom and never draws raw points.
HEAT_RESOLUTIONS: tuple[int, ...] = (7, 8, 9)
HEAT_RES_MIN = HEAT_RESOLUTIONS[0]
HEAT_RES_MAX = HEAT_RESOLUTIONS[-1]

# The neighbourhood of an enterprise: res 11 (edge ~28.7 m, area ~2,150 m^2).
# The visit radius is 50 m plus up to 50 m of fix accuracy, i.e. 50-100 m,
# which needs a grid disk of k = 3-5 at res 11 (37-91 cells, see geo/index.py
# for how k is derived), while one cell holds only a handful of enterprises
# even in a dense industrial park (130,000 enterprises over ~2,000 km^2 is
# ~0.14 per res-11 cell on average).  Res 12 (edge 10.8 m) needs k = 5-9
# (91-271 cells) for the same radius: more dict probes per lookup for no
# better pruning, because the exact-distance step decides anyway.  Res 10
# (edge 76 m) needs only k = 3, but its cells hold 7x as many enterprises, so
# a lookup in a park computes dozens of needless distances.
ENTERPRISE_RES = 11

# Resolutions H3 defines (0 = continents ... 15 = about a square metre).
MAX_RES = 15


def latlng_to_cell(lat: float, lon: float, res: int) -> str:
    """The cell (``str``) that holds a WGS-84 point (h3-py's argument order)."""
    return h3.latlng_to_cell(lat, lon, res)


def cell_to_latlng(cell: str) -> tuple[float, float]:
    """Centre of a cell as (lat, lon)."""
    return h3.cell_to_latlng(cell)


def cell_to_parent(cell: str, res: int) -> str:
    return h3.cell_to_parent(cell, res)


def is_valid_cell(cell: str) -> bool:
    return h3.is_valid_cell(cell)


def valid_point_mask(lats: ArrayLike, lons: ArrayLike) -> np.ndarray:
    """True where (lat, lon) is a finite point on the globe.

    h3ronpy raises on NaN and on out-of-range values for the whole array, so
    the vectorised paths drop such points first.
    """
    lats = np.asarray(lats, dtype=np.float64)
    lons = np.asarray(lons, dtype=np.float64)
    return np.isfinite(lats) & np.isfinite(lons) & (np.abs(lats) <= 90.0) & (np.abs(lons) <= 180.0)


def points_to_cells_u64(lats: ArrayLike, lons: ArrayLike, res: int) -> np.ndarray:
    """Cells of many points as ``uint64`` (the vectorised kernel, h3ronpy).

    Every point must be valid (see ``valid_point_mask``); h3ronpy rejects the
    whole array otherwise.
    """
    lats = np.ascontiguousarray(lats, dtype=np.float64)
    lons = np.ascontiguousarray(lons, dtype=np.float64)
    if lats.shape != lons.shape:
        raise ValueError("lats and lons differ in shape")
    if lats.size == 0:
        return np.empty(0, dtype=np.uint64)
    return np.asarray(coordinates_to_cells(lats, lons, int(res)), dtype=np.uint64)


def cells_u64_to_str(cells: ArrayLike) -> list[str]:
    """``uint64`` cells to h3-py strings, in order."""
    cells = np.ascontiguousarray(cells, dtype=np.uint64)
    if cells.size == 0:
        return []
    return cells_to_string(cells).to_pylist()


def cells_str_to_u64(cells: list[str] | tuple[str, ...]) -> np.ndarray:
    """h3-py strings to ``uint64`` (the inverse of ``cells_u64_to_str``)."""
    return np.fromiter((int(c, 16) for c in cells), dtype=np.uint64, count=len(cells))


def cells_u64_to_parent(cells: ArrayLike, res: int) -> np.ndarray:
    """Vectorised ``cell_to_parent`` over ``uint64`` cells (h3ronpy).

    Every cell must be at ``res`` or finer.
    """
    cells = np.ascontiguousarray(cells, dtype=np.uint64)
    if cells.size == 0:
        return cells
    return np.asarray(change_resolution(cells, int(res)), dtype=np.uint64)


def cells_u64_resolution(cells: ArrayLike) -> np.ndarray:
    """Resolution of each ``uint64`` cell (bits 52-55 of the index)."""
    cells = np.asarray(cells, dtype=np.uint64)
    return ((cells >> np.uint64(52)) & np.uint64(0xF)).astype(np.int8)


def cell_to_boundary(cell: str) -> tuple[tuple[float, float], ...]:
    """The cell's corners as (lat, lng) pairs (h3-py's order), for drawing hexagons."""
    return h3.cell_to_boundary(cell)
