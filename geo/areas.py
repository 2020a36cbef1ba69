"""Point-in-polygon assignment of points to streets and grids.

Vectorised with shapely's STRtree: one bulk query for all points, no Python
loop over polygons.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from numpy.typing import ArrayLike


class AreaIndex:
    """Maps points to the id of the polygon that covers them (or None)."""

    def __init__(self, ids: Sequence[str], geometries: Sequence[shapely.Geometry]):
        if len(ids) != len(geometries):
            raise ValueError("ids and geometries differ in length")
        self.ids = np.asarray(list(ids), dtype=object)
        self.geometries = np.asarray(list(geometries), dtype=object)
        self._tree = shapely.STRtree(self.geometries)

    def __len__(self) -> int:
        return len(self.ids)

    def assign(self, lons: ArrayLike, lats: ArrayLike) -> np.ndarray:
        """Ids of the covering polygon per point; None where no polygon covers it.

        Where polygons overlap (shared borders), the first polygon in index
        order wins, so the answer is deterministic.
        """
        lons = np.asarray(lons, dtype=float).ravel()
        lats = np.asarray(lats, dtype=float).ravel()
        if lons.shape != lats.shape:
            raise ValueError("lons and lats differ in length")
        out = np.full(lons.shape[0], None, dtype=object)
        if lons.size == 0 or len(self.ids) == 0:
            return out
        points = shapely.points(lons, lats)
        point_idx, poly_idx = self._tree.query(points, predicate="intersects")
        if point_idx.size:
            # Sort so that for each point the lowest polygon index comes first,
            # then keep the first hit per point.
            order = np.lexsort((poly_idx, point_idx))
            point_idx, poly_idx = point_idx[order], poly_idx[order]
            first = np.ones(point_idx.size, dtype=bool)
            first[1:] = point_idx[1:] != point_idx[:-1]
            out[point_idx[first]] = self.ids[poly_idx[first]]
        return out

    def assign_one(self, lon: float, lat: float) -> str | None:
        return self.assign(np.array([lon]), np.array([lat]))[0]
