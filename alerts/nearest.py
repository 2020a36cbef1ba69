"""Nearest available inspectors to a place: H3 rings out, great-circle ranking.

Search: put the available inspectors (online, not busy) into H3 cells at
resolution ``NEAREST_RES``, then walk ``grid_ring(origin, d)`` for d = 0, 1,
2, ... collecting them.  A hexagon ring is not a circle, so the first ring
that completes k candidates may still miss a nearer one in the next ring (a
point near the corner of a ring-2 cell can be nearer than one at the far side
of a ring-1 cell).  So, once k are found, the search always takes one more
ring, and goes on while the nearest possible point of the next ring could
still beat the k-th best (``_ring_lower_bound_m``).  Then it ranks by
great-circle distance (``geo.coords.haversine_m``).

Resolution 8 (average edge ~530 m, cell centres ~0.9 km apart): at the
density of an on-duty inspection force in a Chinese district (a few hundred
inspectors over a few hundred km²), five candidates usually turn up within 2-4
rings, i.e. a few dozen cells.  Resolution 9 (~200 m) would need ~2.6 times as
many rings for the same distance; resolution 7 (~1.4 km) makes the mandatory
extra ring several km wide.  ``MAX_RINGS_DEFAULT`` = 40 rings reaches ~35 km,
the width of a large district: beyond that, "nearest" is a phone call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import h3

from geo.coords import haversine_m

NEAREST_RES = 8
MAX_RINGS_DEFAULT = 40

# ETA = START_DELAY_S + distance * DETOUR_FACTOR / URBAN_SPEED_MPS.
# Street inspectors and officers move by e-bike or car in city traffic; door
# to door, both average about 18 km/h (5 m/s) in Chinese city centres at
# working hours, signals and parking included.
URBAN_SPEED_MPS = 5.0
# Road distance over straight-line distance ("circuity") in dense urban grids
# is 1.2-1.4; Chinese superblocks (gated compounds, long blocks, elevated
# roads) sit at the upper end.
DETOUR_FACTOR = 1.4
# Finishing the conversation, walking to the vehicle, starting navigation.
START_DELAY_S = 60.0

# Safety margins on the local H3 edge length for the ring lower bound: cells
# near one another differ by a few percent in size and are not regular
# hexagons; 20 % either way covers that with room.
_EDGE_SHRINK = 0.8
_EDGE_GROW = 1.2


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    lat: float
    lon: float
    online: bool = True
    busy: bool = False  # on another task
    unit_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One ranked suggestion: an inspector to send, or an enterprise to go to."""

    id: str
    distance_m: float  # great circle
    eta_s: float
    name: str | None = None
    unit_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    ring: int | None = None  # H3 grid distance from the target's cell (inspectors)
    risk: str | None = None  # risk colour (enterprises)


def eta_s(distance_m: float, *, speed_mps: float = URBAN_SPEED_MPS, detour: float = DETOUR_FACTOR,
          start_s: float = START_DELAY_S) -> float:
    """Estimated seconds to cover a great-circle distance in town."""
    return start_s + distance_m * detour / speed_mps


def _ring(origin: str, d: int) -> list[str]:
    if d == 0:
        return [origin]
    try:
        return list(h3.grid_ring(origin, d))
    except Exception:  # pentagon distortion (none in China at this resolution)
        inner = set(h3.grid_disk(origin, d - 1))
        return [c for c in h3.grid_disk(origin, d) if c not in inner]


def _edge_bounds_m(origin: str) -> tuple[float, float]:
    lengths = [h3.edge_length(e, "m") for e in h3.origin_to_directed_edges(origin)]
    return min(lengths) * _EDGE_SHRINK, max(lengths) * _EDGE_GROW


def _ring_lower_bound_m(d: int, edge_lo_m: float, edge_hi_m: float) -> float:
    """No point in a cell at grid distance d lies nearer than this to any point of the origin cell.

    Hexagons with edge e (= circumradius) have centres sqrt(3)·e apart; the
    centres of ring d are at least d·(3/2)·e from the origin's centre (the
    ring's flat sides); each point lies within e of its centre.
    """
    return 1.5 * d * edge_lo_m - 2.0 * edge_hi_m


def rank_nearest(
    target_lat: float,
    target_lon: float,
    inspectors: Sequence[Candidate],
    k: int = 5,
    max_rings: int = MAX_RINGS_DEFAULT,
    *,
    res: int = NEAREST_RES,
) -> list[Suggestion]:
    """The k nearest available (online, not busy) inspectors, nearest first.

    Ties in distance go by id, so the answer is deterministic.  Fewer than k
    come back when fewer are available within ``max_rings``.
    """
    if k <= 0:
        return []
    if not (math.isfinite(target_lat) and math.isfinite(target_lon)):
        raise ValueError("target coordinates must be finite")
    origin = h3.latlng_to_cell(target_lat, target_lon, res)
    by_cell: dict[str, list[Candidate]] = {}
    for c in inspectors:
        if not c.online or c.busy or not (math.isfinite(c.lat) and math.isfinite(c.lon)):
            continue
        by_cell.setdefault(h3.latlng_to_cell(c.lat, c.lon, res), []).append(c)
    if not by_cell:
        return []

    edge_lo, edge_hi = _edge_bounds_m(origin)
    found: list[tuple[float, str, int, Candidate]] = []
    remaining = sum(len(v) for v in by_cell.values())
    complete_at: int | None = None  # the ring at which k were first found
    for d in range(max_rings + 1):
        for cell in _ring(origin, d):
            for c in by_cell.get(cell, ()):
                found.append((haversine_m(target_lon, target_lat, c.lon, c.lat), c.id, d, c))
                remaining -= 1
        if remaining == 0:
            break
        if complete_at is None and len(found) >= k:
            complete_at = d
        if complete_at is not None and d > complete_at:
            kth = sorted(f[0] for f in found)[k - 1]
            if _ring_lower_bound_m(d + 1, edge_lo, edge_hi) >= kth:
                break
    found.sort(key=lambda f: (f[0], f[1]))
    return [
        Suggestion(id=c.id, distance_m=dist, eta_s=eta_s(dist), name=c.name, unit_id=c.unit_id,
                   lat=c.lat, lon=c.lon, ring=d)
        for dist, _, d, c in found[:k]
    ]
