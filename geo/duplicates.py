"""Duplicate work (去重): repeated visits, two units at once, and an approach in time to stop it.

Three rules, all pure; the alerts package turns their results into alerts.

* ``classify`` - a visit to an enterprise that a *different* unit visited
  within ``window_s`` before it is a duplicate; one by the *same* unit is a
  repeat, counted separately (the unit's own follow-up is its business, two
  units covering one enterprise is waste).
* ``detect_overlap_now`` - two units at one enterprise at the same time.
* ``detect_approach`` - an inspector within ~300 m of an enterprise that was
  already visited inside the window, and closing in: the dispatcher can send
  them elsewhere before they arrive.

Units: a visit or stay without a ``unit_id`` is taken to be its inspector's
own unit (``inspector:<id>``), so two inspectors of unknown units count as
different units and one inspector never duplicates themself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from geo.coords import haversine_m
from geo.types import Ping, Visit

# Settings.duplicate_window_s: the weekly plan cycle of the seed system.
DUPLICATE_WINDOW_S = 7 * 86400
# Settings.approach_radius_m: about two minutes' walk or thirty seconds' drive
# in town, time enough for a dispatcher to call.
APPROACH_RADIUS_M = 300.0
# An approach must close in by at least this much across the recent fixes:
# more than phone GPS jitter (5-20 m per fix), so a stationary inspector whose
# fixes happen to creep closer is not flagged.
APPROACH_MIN_CLOSING_M = 30.0
# Fixes used to judge "closing in", and how old the oldest may be: the last
# few minutes of movement, not the route of the past hour.
APPROACH_FIXES = 3
APPROACH_MAX_SPAN_S = 600.0


def unit_key(unit_id: str | None, inspector_id: str) -> str:
    """The unit a visit counts for (see the module docstring)."""
    return unit_id if unit_id is not None else f"inspector:{inspector_id}"


def _order(v: Visit) -> tuple:
    """Which of two visits came first: by start, then inspector, then id."""
    return (v.start_ts, v.inspector_id, str(v.id))


def classify(
    visit: Visit, earlier_visits: Iterable[Visit], window_s: float = DUPLICATE_WINDOW_S
) -> tuple[int | str | None, int | str | None]:
    """``(duplicate_of, same_unit_repeat_of)``: ids of the earlier visits this one repeats.

    ``earlier_visits`` are visits of the same enterprise (others are ignored,
    and so is ``visit`` itself).  One qualifies when it started before
    ``visit`` (ties broken by inspector id, so of two simultaneous visits
    exactly one is the duplicate) and no more than ``window_s`` before it.
    Each answer is the most recent qualifying visit - by another unit for
    ``duplicate_of``, by the same unit for ``same_unit_repeat_of`` - or None.
    """
    mine = unit_key(visit.unit_id, visit.inspector_id)
    me = _order(visit)
    dup: Visit | None = None
    rep: Visit | None = None
    for e in earlier_visits:
        if e.enterprise_id != visit.enterprise_id or e is visit:
            continue
        if visit.id is not None and e.id == visit.id:
            continue
        if e.inspector_id == visit.inspector_id and e.start_ts == visit.start_ts:
            continue  # the same stay (a second row of it)
        if not (_order(e) < me and visit.start_ts - e.start_ts <= window_s):
            continue
        if unit_key(e.unit_id, e.inspector_id) == mine:
            if rep is None or _order(e) > _order(rep):
                rep = e
        elif dup is None or _order(e) > _order(dup):
            dup = e
    return (dup.id if dup else None, rep.id if rep else None)


# --- overlap now ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class ActiveStay:
    inspector_id: str
    unit_id: str | None
    enterprise_id: str
    since_ts: float


@dataclass(slots=True, frozen=True)
class Overlap:
    """Two or more units at one enterprise at once.

    ``stays`` in arrival order; ``since_ts`` is when the second unit arrived.
    """

    enterprise_id: str
    since_ts: float
    stays: tuple[ActiveStay, ...]

    @property
    def unit_ids(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for s in self.stays:
            seen.setdefault(unit_key(s.unit_id, s.inspector_id), None)
        return tuple(seen)

    @property
    def inspector_ids(self) -> tuple[str, ...]:
        return tuple(s.inspector_id for s in self.stays)


def detect_overlap_now(
    stays: Iterable[ActiveStay | tuple[str, str | None, str, float]],
) -> list[Overlap]:
    """Enterprises where inspectors of two or more units are right now.

    ``stays`` are the current stays of all inspectors (confirmed visits not
    yet ended: ``geo.visits.current_stays``), as ``ActiveStay`` or tuples
    ``(inspector_id, unit_id, enterprise_id, since_ts)``.  One ``Overlap`` per
    enterprise, sorted by enterprise id.
    """
    by_ent: dict[str, list[ActiveStay]] = {}
    for s in stays:
        if not isinstance(s, ActiveStay):
            s = ActiveStay(*s)
        by_ent.setdefault(s.enterprise_id, []).append(s)
    out = []
    for eid in sorted(by_ent):
        group = sorted(by_ent[eid], key=lambda s: (s.since_ts, s.inspector_id))
        first_unit = unit_key(group[0].unit_id, group[0].inspector_id)
        second = next((s for s in group if unit_key(s.unit_id, s.inspector_id) != first_unit), None)
        if second is not None:
            out.append(Overlap(eid, second.since_ts, tuple(group)))
    return out


# --- approach ---------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Approach:
    inspector_id: str
    enterprise_id: str
    ts: float  # time of the newest fix
    distance_m: float  # at the newest fix
    closing_m: float  # how much closer than at the oldest fix used
    closing_speed_mps: float


def detect_approach(
    pings: Sequence[Ping],
    visited_nearby: Callable[[float, float, float], list[tuple[str, float]]],
    radius_m: float = APPROACH_RADIUS_M,
    *,
    fixes: int = APPROACH_FIXES,
    min_closing_m: float = APPROACH_MIN_CLOSING_M,
    max_span_s: float = APPROACH_MAX_SPAN_S,
) -> list[Approach]:
    """Enterprises already visited that this inspector is closing in on.

    ``pings``: the inspector's last few fixes (``geo.visits.recent_pings``),
    any order.  ``visited_nearby(lat, lon, r)`` lists ``(enterprise_id,
    distance_m)`` of enterprises *visited inside the duplicate window by
    another unit* within ``r`` (an ``EnterpriseIndex`` over those, or a
    filter around the full index).

    An approach: within ``radius_m`` at the newest fix, and the distance
    strictly decreasing over the last ``fixes`` fixes (spanning at most
    ``max_span_s``), by ``min_closing_m`` or more in all.  Nearest first.
    """
    pts = sorted(
        (p for p in pings if math.isfinite(p.ts) and math.isfinite(p.lat) and math.isfinite(p.lon)),
        key=lambda p: p.ts,
    )
    if len(pts) < max(2, fixes):
        return []
    pts = pts[-fixes:]
    newest = pts[-1]
    pts = [p for p in pts if newest.ts - p.ts <= max_span_s]
    if len(pts) < max(2, fixes):
        return []
    near = {eid: d for eid, d in visited_nearby(newest.lat, newest.lon, radius_m) if d <= radius_m}
    if not near:
        return []
    # Distance of each earlier fix to each candidate: every candidate is within
    # radius + (distance between the fixes) of an earlier fix.
    series: dict[str, list[float]] = {eid: [] for eid in near}
    for p in pts[:-1]:
        reach = radius_m + haversine_m(p.lon, p.lat, newest.lon, newest.lat) + 1.0
        dists = dict(visited_nearby(p.lat, p.lon, reach))
        for eid in series:
            series[eid].append(dists.get(eid, math.inf))
    out = []
    dt = newest.ts - pts[0].ts
    for eid, d_last in near.items():
        ds = series[eid] + [d_last]
        if any(not math.isfinite(d) for d in ds):
            continue
        if all(b < a for a, b in zip(ds, ds[1:])) and ds[0] - ds[-1] >= min_closing_m:
            closing = ds[0] - ds[-1]
            out.append(Approach(newest.inspector_id, eid, newest.ts, d_last, closing, closing / dt if dt > 0 else math.inf))
    out.sort(key=lambda a: (a.distance_m, a.enterprise_id))
    return out
