"""Shared helpers of the geo tests: points at a distance, brute-force lookups."""

from __future__ import annotations

import math

import numpy as np

from geo.coords import EARTH_RADIUS_M, haversine_m


def destination(lat: float, lon: float, distance_m: float, bearing_deg: float) -> tuple[float, float]:
    """The point ``distance_m`` from (lat, lon) along ``bearing_deg`` (great circle)."""
    d = distance_m / EARTH_RADIUS_M
    b = math.radians(bearing_deg)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), math.degrees(l2)


class BruteNearby:
    """``nearby`` by computing every distance: the reference the index must match."""

    def __init__(self, ids, lats, lons):
        self.ids = list(ids)
        self.lats = np.asarray(lats, dtype=float)
        self.lons = np.asarray(lons, dtype=float)

    def __call__(self, lat: float, lon: float, radius_m: float) -> list[tuple[str, float]]:
        if not self.ids:
            return []
        d = np.atleast_1d(haversine_m(lon, lat, self.lons, self.lats))
        hits = [(self.ids[i], float(d[i])) for i in np.flatnonzero(d <= radius_m)]
        hits.sort(key=lambda t: (t[1], t[0]))
        return hits
