"""Visit detection: when an inspector stays at an enterprise.

Definition
----------
A fix is *at* enterprise E when E lies within ``visit_radius_m`` plus the fix's
accuracy (capped at ``acc_cap_m``) of it.  A fix may be at several enterprises
at once (a row of shops, a building of firms); of those, the fix is *nearest*
to one (by distance, ties by id), or to the nearest of those on the inspector's
plan for the day when any is (``planned``).  Taking an inspector's fixes in time order,
two consecutive fixes at E belong to one *stay* when

* they are at most ``gap_max_s`` apart (a shorter silence does not split), and
* at most ``outliers_max`` fixes *not* at E lie between them (one wild fix
  does not split; two in a row mean the inspector left).

A stay runs from its first to its last fix at E; it is a *visit* when it
lasts ``dwell_min_s`` or more and E is the nearest for at least
``credit_share_min`` of its fixes.  So one stop in a street of shops is
credited to the shop the inspector stood at, not to every shop within reach
of it: the neighbours were only *passed by* (their stays are dropped).  The
nearest per fix is noisy between close neighbours, which is why the rule is a
share of the whole stay and not fix by fix: two enterprises at one address, or
an inspector standing between two, may both be credited; a dozen within reach
are not.  Jitter that keeps the fixes inside the radius
cannot split a visit, and the result depends only on the set of fixes, never
on the order they arrived in.  Fixes whose accuracy is worse than
``acc_ignore_m`` (cell-tower and Wi-Fi fallbacks) say nothing about where the
inspector is: they neither extend nor interrupt a stay.

Streaming
---------
``advance(state, pings, nearby, params)`` folds a batch of one inspector's
pings into a JSON-serialisable ``state`` and returns the new state and
events.  It never mutates its input, so a caller may retry it (Redis
WATCH/MULTI: on a conflict, reload the state and call ``advance`` again with
the same pings; the discarded attempt's events are discarded with it).

* A ping arriving up to ``lateness_max_s`` behind the newest one seen is
  placed in order: the state keeps a buffer of the recent pings, sorted by
  time.  The *watermark* is ``newest ts - lateness_max_s``; pings at or below
  it are settled and are folded out of the buffer into a few numbers per
  enterprise (``live``).  A ping that arrives at or below the watermark is
  too late and is dropped (``state["late"]`` counts them).  The buffer holds
  at most ``buffer_max`` pings; beyond that the watermark is pushed forward.
* A visit is *final* when no ping still to come can change it: its last fix
  at E is at least ``gap_max_s`` below the watermark, or more than
  ``outliers_max`` settled fixes away from E have followed it.

Events (``VisitEvent.kind``):

* ``confirmed`` - emitted by the call whose ping completes the dwell (not
  delayed by the watermark: the duplicate check runs on it);
* ``extended`` - the visit's bounds changed (normally its end grew by at least
  ``extend_step_s``; a late ping just before the start may move the start);
* ``ended`` - final, with the final (enterprise, inspector, start, end);
* ``retracted`` - a confirmed visit that late pings took back (two away fixes
  arriving late inside it split it into stays shorter than the dwell, or
  two confirmed visits merged into one).  Rare; it needs pings out of order.

Each event carries ``key``, fixed when the visit is confirmed
(``"inspector|enterprise|start at confirmation"``, with a ``#n`` suffix in the
rare case that is taken by an open visit whose start has moved), so the
caller can upsert one row per visit even when the start moves.

Given every ping within ``lateness_max_s`` of order, the ``ended`` visits of
any arrival order, any batching and any number of workers sharing the state
equal ``detect_visits`` over the same pings (after ``flush``); the tests
check this with hypothesis.

Limitations
-----------
* Without a plan, the credit goes by where the enterprises' points are: an
  enterprise whose geocoded point is tens of metres off (they often are) loses
  the credit to a neighbour whose point lies nearer the inspector.  Several firms at one
  point are credited to the first by id.  A stay of one stop at two
  enterprises in turn, close enough to be within reach of both throughout,
  credits both when each was nearest for its share of the fixes.
* ``flush`` (and ``advance(now=...)`` after ``idle_close_s`` of silence) ends
  every stay; a ping that arrives later and would have continued a stay
  starts a new one instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from geo.types import Ping, Visit

STATE_VERSION = 2
# Versions ``advance`` reads: a version 1 state (no nearest per fix, no counts per
# stay) is taken up as it stands (see _upgrade: its buffered fixes count for no
# enterprise's share, and its open stays are judged on the fixes after the upgrade).
READABLE_VERSIONS = (1, 2)

NearbyFn = Callable[[float, float, float], list[tuple[str, float]]]


@dataclass(slots=True, frozen=True)
class VisitParams:
    # A stay shorter than this is no visit (Settings.dwell_min_s): ten minutes
    # is the shortest on-site check the inspection rules count as a visit.
    dwell_min_s: float = 600.0
    # Base radius around the enterprise's point (Settings.visit_radius_m): the
    # geocoded point is somewhere on a site that is itself tens of metres wide.
    visit_radius_m: float = 50.0
    # A silence shorter than this does not split a stay (Settings.visit_gap_max_s):
    # phones stop reporting indoors and when the app is backgrounded.
    gap_max_s: float = 600.0
    # The fix's accuracy widens the radius, but by at most this much: a phone
    # indoors reports 20-60 m; a 300 m "accuracy" would make every enterprise in
    # a 0.35 km disk look visited.  So the radius is 50-100 m.
    acc_cap_m: float = 50.0
    # Fixes less accurate than this (network location, not GPS) are ignored
    # for visits: they neither extend nor break a stay.
    acc_ignore_m: float = 200.0
    # Fixes away from the enterprise tolerated between two fixes at it: one
    # wild fix (multipath in a yard of tanks and steel) does not end a visit;
    # two in a row do.
    outliers_max: int = 1
    # How far behind the newest ping a ping may arrive and still be placed in
    # order.  Workers of one broker reorder by well under a second and a
    # phone's retry by seconds; OwnTracks' offline queue replays in order.
    # Two minutes covers both while keeping the buffer small (4 pings at the
    # simulator's 30 s interval, 120 at 1 Hz).
    lateness_max_s: float = 120.0
    # Hard cap on buffered pings, so the state stays small in Redis whatever a
    # device sends (a 1 Hz tracker fills 120).
    buffer_max: int = 256
    # Emit ``extended`` when the end has grown by this much since the last
    # event: the live map needs minutes, not every fix.
    extend_step_s: float = 60.0
    # ``advance(now=...)`` ends every stay after this much silence: a phone
    # switched off at the end of the day must not keep its visit open forever.
    idle_close_s: float = 3600.0
    # Recent fixes kept for ``recent_pings`` (early warning of an approach).
    tail_max: int = 5
    # A stay at E is a visit only when E is the nearest enterprise for at least
    # this share of its fixes (Settings.visit_credit_share_min).  One stop among shops 10-30 m apart gives the shop
    # stood at most of the fixes and each neighbour a few; GPS noise of 3-15 m
    # spreads the nearest over two or three.  On the demo city's stays
    # (docs/benchmarks.md section 21) a quarter credited every stop, with 1.2
    # visits a stop, where crediting every enterprise within reach gave 10.9.
    credit_share_min: float = 0.25
    # A stay still open is first reported (``confirmed``) only when E is the nearest
    # for this share of its fixes so far; once reported it stays while it is a visit
    # by ``credit_share_min``.  Reporting at a quarter took back (``retracted``) a
    # quarter of the confirmations in the demo city's stops as the shares moved
    # (docs/benchmarks.md section 21), each a visit row written and deleted, and a
    # duplicate notice that may have gone out.  A stay that is a visit only at a
    # share between the two is reported when it ends.  The visits that end are the
    # same whatever this is.
    confirm_share_min: float = 0.5

    @classmethod
    def from_settings(cls, settings) -> VisitParams:
        """From the one Settings object (duck-typed: geo imports no config)."""
        return cls(
            dwell_min_s=float(settings.dwell_min_s),
            visit_radius_m=float(settings.visit_radius_m),
            gap_max_s=float(settings.visit_gap_max_s),
            credit_share_min=float(getattr(settings, "visit_credit_share_min", cls.credit_share_min)),
        )

    def radius_m(self, acc_m: float | None) -> float:
        """Radius within which a fix of accuracy ``acc_m`` is at an enterprise."""
        if acc_m is None or not math.isfinite(acc_m) or acc_m <= 0:
            return self.visit_radius_m
        return self.visit_radius_m + min(acc_m, self.acc_cap_m)

    def usable(self, acc_m: float | None) -> bool:
        return acc_m is None or not math.isfinite(acc_m) or acc_m <= self.acc_ignore_m


@dataclass(slots=True, frozen=True)
class VisitEvent:
    kind: str  # "confirmed" | "extended" | "ended" | "retracted"
    key: str
    visit: Visit


# --- state ------------------------------------------------------------------------
#
# {"v": 2, "inspector_id": str, "max_ts": float|None, "wm": float|None,
#  "buf":  [[ts, lat, lon, acc|None, [enterprise ids at this fix], k], ...]  sorted, ts > wm
#          k: the position in the list of the nearest of them; -1 when none, or unknown
#  "live": {enterprise_id: [start_ts, last_ts, away_count, fixes, nearest]}  settled part
#          fixes: the stay's fixes whose nearest is known; nearest: those nearest E
#  "rep":  {key: [enterprise_id, start_ts, reported end_ts, current end_ts]}
#                                                               confirmed, not ended
#  "tail": [[ts, lat, lon, acc|None], ...]                      newest last
#  "late": int}


def new_state(inspector_id: str | None = None) -> dict:
    return {
        "v": STATE_VERSION,
        "inspector_id": inspector_id,
        "max_ts": None,
        "wm": None,
        "buf": [],
        "live": {},
        "rep": {},
        "tail": [],
        "late": 0,
    }


_STATE_KEYS = frozenset(new_state())


def _copy_state(state: dict) -> dict:
    st = {
        "v": state.get("v", STATE_VERSION),
        "inspector_id": state.get("inspector_id"),
        "max_ts": state.get("max_ts"),
        "wm": state.get("wm"),
        "buf": [list(e) for e in state.get("buf", [])],
        "live": {k: list(v) for k, v in state.get("live", {}).items()},
        "rep": {k: list(v) for k, v in state.get("rep", {}).items()},
        "tail": [list(e) for e in state.get("tail", [])],
        "late": int(state.get("late", 0)),
    }
    if st["v"] != STATE_VERSION:
        _upgrade(st)
    return st


def _upgrade(st: dict) -> None:
    """A version 1 state as version 2 (in place).  Its buffered fixes' nearest is
    unknown (``k = -1``: they count for no enterprise's share) and its open stays'
    counts start at zero, so those stays are judged on the fixes that come after
    the upgrade; a stay with no fix of known nearest is credited, as version 1
    credited every stay."""
    if st["v"] not in READABLE_VERSIONS:
        raise ValueError(f"visit state version {st['v']!r}, not one of {READABLE_VERSIONS}")
    for e in st["buf"]:
        if len(e) == 5:
            e.append(-1)
    for v in st["live"].values():
        if len(v) == 3:
            v += [0, 0]
    st["v"] = STATE_VERSION


# --- the fold ------------------------------------------------------------------------


def _step(live: dict, ts: float, at: Sequence[str], k: int, params: VisitParams, closed: list) -> None:
    """Fold one fix (at enterprises ``at``, the nearest at position ``k``) into the
    open stays ``live``."""
    near = at[k] if k >= 0 else None
    known = 1 if k >= 0 else 0
    if len(at) > 1:
        at = sorted(set(at))  # each once, in id order (what callers pass anyway)
    outliers = params.outliers_max
    if live:
        for eid in [e for e in live if e not in at]:
            st = live[eid]
            st[2] += 1
            if st[2] > outliers:
                closed.append((eid, *st[:2], *st[3:]))
                del live[eid]
    gap = params.gap_max_s
    for eid in at:
        st = live.get(eid)
        if st is not None and ts - st[1] <= gap and st[2] <= outliers:
            st[1] = ts
            st[2] = 0
            st[3] += known
            if eid == near:
                st[4] += 1
        else:
            if st is not None:
                closed.append((eid, *st[:2], *st[3:]))
            live[eid] = [ts, ts, 0, known, 1 if eid == near else 0]


def _close_expired(live: dict, wm: float, params: VisitParams, closed: list) -> None:
    """Close stays that no fix above ``wm`` can continue (last + gap <= wm)."""
    if not live:
        return
    gap = params.gap_max_s
    for eid in [e for e, st in live.items() if st[1] + gap <= wm]:
        st = live.pop(eid)
        closed.append((eid, *st[:2], *st[3:]))


def _is_visit(stay: tuple, params: VisitParams) -> bool:
    """Whether a closed or provisional stay ``(eid, start, end, fixes, nearest)``
    is a visit: it lasts the dwell, and E was the nearest for its share of the
    fixes (a stay with no fix of known nearest, from a version 1 state, is)."""
    _eid, start, end, fixes, nearest = stay
    return end - start >= params.dwell_min_s and nearest >= params.credit_share_min * fixes


def _may_dwell(live: dict, buf: list, params: VisitParams) -> bool:
    """Whether a provisional stay could last ``dwell_min_s``.

    Every provisional stay starts at an open stay's start or at a buffered
    fix and ends at an open stay's last fix or at a buffered fix, so it lies
    inside [earliest of those, latest of those]; float subtraction is
    monotonic, so a span under the dwell rules out every visit exactly.
    """
    if buf:
        lo, hi = buf[0][0], buf[-1][0]
    elif live:
        lo, hi = next(iter(live.values()))[:2]
    else:
        return False
    # A loop, not min()/max() over generators: this runs on every call.
    for st in live.values():
        if st[0] < lo:
            lo = st[0]
        if st[1] > hi:
            hi = st[1]
    return hi - lo >= params.dwell_min_s


def _candidates(nearby: NearbyFn, p: Ping, params: VisitParams, planned: Collection[str] = ()) -> tuple[list[str], int]:
    """The enterprises the fix is at (ids sorted) and the position of the nearest (-1: none)."""
    r = params.radius_m(_acc(p))
    return _at_and_nearest([(eid, d) for eid, d in nearby(p.lat, p.lon, r) if d <= r], planned)


def _at_and_nearest(hits: Iterable[tuple[object, float]], planned: Collection[str] = ()) -> tuple[list[str], int]:
    """``(ids sorted, position of the nearest)`` of ``(id, distance)`` pairs; ties by id.

    The nearest is the nearest of the ``planned`` ones when any is among them."""
    # str: the ids become JSON object keys in the state.
    best: dict[str, float] = {}
    for eid, d in hits:
        key = str(eid)
        if key not in best or d < best[key]:
            best[key] = d
    if not best:
        return [], -1
    at = sorted(best)
    pool = [e for e in at if e in planned] if planned else at
    nearest = min(pool or at, key=lambda e: (best[e], e))
    return at, at.index(nearest)


def prefer_planned(
    pings: Sequence[Ping], at: Sequence[list[str]], near: Sequence[int], planned: Collection[str],
    nearby: NearbyFn, params: VisitParams,
) -> list[int]:
    """``near`` with each fix that is within reach of a planned enterprise pointing at
    the nearest planned one (``advance``'s ``planned``, for a caller's ``at``/``near``).
    Only fixes at a planned enterprise and at least one other are looked up again."""
    out = list(near)
    if not planned:
        return out
    planned = frozenset(planned)
    for k, ids in enumerate(at):
        if len(ids) > 1 and ids[near[k]] not in planned and not planned.isdisjoint(ids):
            ids2, k2 = _candidates(nearby, pings[k], params, planned)
            if ids2 == ids:
                out[k] = k2
    return out


def _valid(p: Ping) -> bool:
    return math.isfinite(p.ts) and math.isfinite(p.lat) and math.isfinite(p.lon)


def _acc(p: Ping) -> float | None:
    """The fix's accuracy, or None when absent or meaningless (NaN, <= 0)."""
    a = p.acc_m
    return a if a is not None and math.isfinite(a) and a > 0 else None


def _entry_key(e: list) -> tuple:
    return _order_key(e[0], e[1], e[2], e[3])


def _extend_sorted(entries: list, new: list) -> None:
    """Add ``new`` to the sorted ``entries`` (both ``[ts, lat, lon, acc, ...]``), keeping order.

    Fixes mostly arrive in order: then the new ones only go after the old
    ones, and re-sorting the whole buffer (a key tuple per entry, per call)
    is skipped.  The result is the same as a stable sort of both.
    """
    # Strictly increasing times order the entries by key as well (time is
    # the key's first part), so the key tuples are only built on a tie or
    # when something is out of order.
    prev = entries[-1][0] if entries else None
    for e in new:
        if prev is not None and not e[0] > prev:
            break
        prev = e[0]
    else:
        entries.extend(new)
        return
    if len(new) > 1:
        new.sort(key=_entry_key)
    if entries and not _entry_key(new[0]) > _entry_key(entries[-1]):
        entries.extend(new)
        entries.sort(key=_entry_key)
    else:
        entries.extend(new)


def _order_key(ts: float, lat: float, lon: float, acc: float | None) -> tuple:
    """Total order of fixes: by time, then position and accuracy for equal times.

    Two fixes with the same key are the same fix (a redelivery) and count once.
    """
    return (ts, lat, lon, -1.0 if acc is None else acc)


# --- streaming -------------------------------------------------------------------------


def advance(
    state: dict | None,
    pings: Sequence[Ping],
    nearby: NearbyFn,
    params: VisitParams = VisitParams(),
    *,
    unit_id: str | None = None,
    now: float | None = None,
    consume: bool = False,
    at: Sequence[list[str]] | None = None,
    near: Sequence[int] | None = None,
    planned: Collection[str] = (),
    clock_edge: float | None = None,
) -> tuple[dict, list[VisitEvent]]:
    """Fold a batch of one inspector's pings into ``state``; return the new state and events.

    ``nearby(lat, lon, radius_m)`` lists ``(enterprise_id, distance_m)`` within
    the radius (``EnterpriseIndex.nearby``).  ``unit_id`` is stamped on the
    events' visits.  With ``now`` (wall clock), a state silent for
    ``idle_close_s`` is flushed.  ``state`` is not modified, unless the caller
    hands it over with ``consume=True`` (a state it has just decoded and will
    not use again: copying it was a tenth of advance() in the ingest profile).

    ``at[k]``, when given, is what ``nearby`` says of ``pings[k]``: the ids
    (``str``, sorted, each once) of the enterprises within
    ``params.radius_m(acc)`` of it, and ``near[k]`` the position in that list
    of the nearest of them (-1 when the list is empty).  A caller that looked
    every fix of a batch up at once (``EnterpriseIndex.within_many``) passes
    both, and ``nearby`` is not called.  The lists are taken into the state as
    they are: the caller must not change them afterwards.

    ``planned`` are the enterprise ids the inspector has a plan to inspect today
    (``data.city_frames.day_plans``): a fix within reach of one of them counts it
    as its nearest (the nearest of them), so a stop at a planned enterprise is
    credited to it even where a neighbour's point lies nearer.  The visits then
    depend on the plan too: the same for any arrival order while it is the same.

    ``clock_edge`` is the latest time a fix can be of (the receipt time plus a
    slack).  A fix stamped beyond it is a fast clock's (a phone that booted
    minutes fast): it is kept in order, but does not move the watermark, so the
    fixes of the present that follow it are not "late" and dropped.  It settles
    when the newest fix of the present passes it, or at ``flush``.
    """
    if (at is None) != (near is None):
        raise ValueError("advance() takes at= and near= together")
    planned = frozenset(planned) if planned else ()
    if at is not None and planned:
        near = prefer_planned(pings, at, near, planned, nearby, params)
    if state is None:
        st = new_state()
    elif consume and state.keys() == _STATE_KEYS and state["v"] == STATE_VERSION:
        st = state
    else:
        st = _copy_state(state)
    if st["inspector_id"] is None and pings:
        st["inspector_id"] = pings[0].inspector_id
    inspector_id = st["inspector_id"]

    wm = st["wm"]
    max_ts = st["max_ts"]
    buf = st["buf"]
    # Keys of the buffered fixes, for spotting redeliveries; built only when a
    # fix does not sort after the whole buffer (a later fix cannot be in it).
    last_key = _entry_key(buf[-1]) if buf else None
    buf_keys: set | None = None
    new_keys: set = set()
    new_entries = []
    tail_new = []
    # The loop body inlines _valid, _acc, params.usable and _order_key: it
    # runs for every fix of every batch (advance() was the geo engine's
    # largest cost in the ingest profile).
    isfinite = math.isfinite
    acc_ignore_m = params.acc_ignore_m
    for k, p in enumerate(pings):
        ts, lat, lon = p.ts, p.lat, p.lon
        if not (isfinite(ts) and isfinite(lat) and isfinite(lon)):
            continue
        if p.inspector_id != inspector_id:
            raise ValueError(f"ping of {p.inspector_id!r} in the state of {inspector_id!r}")
        # Late: at or below the watermark seen *before* this batch, so the
        # order of pings inside one batch never matters.
        if wm is not None and ts <= wm:
            st["late"] += 1
            continue
        if (max_ts is None or ts > max_ts) and (clock_edge is None or ts <= clock_edge):
            max_ts = ts
        acc = p.acc_m
        if acc is not None and not (isfinite(acc) and acc > 0):
            acc = None
        if acc is not None and acc > acc_ignore_m:
            continue  # not usable (network location)
        key = (ts, lat, lon, -1.0 if acc is None else acc)
        if buf_keys is None and last_key is not None and not key > last_key:
            buf_keys = {_entry_key(e) for e in buf}
        if key in new_keys or (buf_keys is not None and key in buf_keys):
            continue  # the same fix again (redelivery)
        new_keys.add(key)
        if at is not None:
            new_entries.append([ts, lat, lon, acc, at[k], near[k]])
        else:
            new_entries.append([ts, lat, lon, acc, *_candidates(nearby, p, params, planned)])
        tail_new.append([ts, lat, lon, acc])
    if new_entries:
        _extend_sorted(buf, new_entries)
    if tail_new:
        tail = st["tail"]
        _extend_sorted(tail, tail_new)
        st["tail"] = tail[-params.tail_max :]
    st["max_ts"] = max_ts

    if max_ts is None:
        return st, []

    # Move the watermark and settle what lies at or below it.
    new_wm = max_ts - params.lateness_max_s
    if len(buf) > params.buffer_max:
        new_wm = max(new_wm, buf[len(buf) - params.buffer_max - 1][0])
    flush_all = now is not None and now - max_ts >= params.idle_close_s
    if flush_all:
        new_wm = max(max_ts, buf[-1][0]) if buf else max_ts  # a fast clock's fixes too
    if wm is not None:
        new_wm = max(new_wm, wm)
    return _settle(st, new_wm, params, unit_id, close_all=flush_all)


def flush(
    state: dict | None, params: VisitParams = VisitParams(), *, unit_id: str | None = None
) -> tuple[dict, list[VisitEvent]]:
    """Settle everything: end every stay (end of a history replay, or a silent device).

    Pings at or before the newest ts seen are too late afterwards.
    """
    st = new_state() if state is None else _copy_state(state)
    # The newest fix seen, a fast clock's ones included (they do not move max_ts).
    marks = [t for t in (st["max_ts"], st["wm"], st["buf"][-1][0] if st["buf"] else None) if t is not None]
    if not marks:
        return st, []
    new_wm = max(marks)
    return _settle(st, new_wm, params, unit_id, close_all=True)


def _settle(
    st: dict, new_wm: float, params: VisitParams, unit_id: str | None, close_all: bool
) -> tuple[dict, list[VisitEvent]]:
    buf, live = st["buf"], st["live"]
    final: list[tuple] = []
    n = 0
    while n < len(buf) and buf[n][0] <= new_wm:
        e = buf[n]
        _step(live, e[0], e[4], e[5], params, final)
        n += 1
    del buf[:n]
    if close_all:
        for eid in list(live):
            s = live.pop(eid)
            final.append((eid, *s[:2], *s[3:]))
    else:
        _close_expired(live, new_wm, params, final)
    st["wm"] = new_wm

    # Provisional view: the settled open stays continued through the buffer.
    # Skipped when it cannot change anything: nothing is reported (``rep``
    # empty) and no provisional stay can last the dwell (see _may_dwell).
    # Most calls are of that kind (an inspector on the move, or early in a
    # stay), and the pass was a third of advance() in the ingest profile.
    prov_visits: list[tuple] = []
    if st["rep"] or _may_dwell(live, buf, params):
        prov_live = {k: list(v) for k, v in live.items()}
        prov: list[tuple] = []
        for e in buf:
            _step(prov_live, e[0], e[4], e[5], params, prov)
        prov.extend((eid, *s[:2], *s[3:]) for eid, s in prov_live.items())
        # (eid, start, end, sure): a provisional visit is first reported only when sure
        # (see confirm_share_min); one reported already is kept while it is a visit.
        prov_visits = sorted(((*v[:3], v[4] >= params.confirm_share_min * v[3]) for v in prov if _is_visit(v, params)),
                             key=lambda v: (v[1], v[0]))

    final_visits = sorted((v[:3] for v in final if _is_visit(v, params)), key=lambda v: (v[1], v[0])) if final else []
    events = _reconcile(st, final_visits, prov_visits, params, unit_id)
    return st, events


def _reconcile(
    st: dict, final_visits: list, prov_visits: list, params: VisitParams, unit_id: str | None
) -> list[VisitEvent]:
    """Compare what was reported with what the pings now say; emit the differences."""
    rep: dict = st["rep"]
    if not (rep or final_visits or prov_visits):
        return []  # the usual call: nothing reported, nothing to report
    inspector_id = st["inspector_id"]
    events: list[VisitEvent] = []

    def visit(eid, start, end) -> Visit:
        return Visit(eid, inspector_id, unit_id, start, end)

    def take_matches(eid, start, end) -> list[str]:
        hits = [k for k, (e, s, t, t2) in rep.items() if e == eid and s <= end and start <= max(t, t2)]
        hits.sort(key=lambda k: (rep[k][1], k))
        return hits

    def new_key(eid, start) -> str:
        # The start at confirmation; a visit whose start later moved may
        # still hold that key, so a second one gets a suffix.
        key = base = f"{inspector_id}|{eid}|{start!r}"
        n = 1
        while key in rep:
            n += 1
            key = f"{base}#{n}"
        return key

    def retract(k):
        e, s, t, _t2 = rep.pop(k)
        events.append(VisitEvent("retracted", k, visit(e, s, t)))

    for eid, start, end in final_visits:
        hits = take_matches(eid, start, end)
        if hits:
            key = hits[0]
            for k in hits[1:]:
                retract(k)
            del rep[key]
        else:
            key = new_key(eid, start)
            events.append(VisitEvent("confirmed", key, visit(eid, start, end)))
        events.append(VisitEvent("ended", key, visit(eid, start, end)))

    matched = set()
    for eid, start, end, sure in prov_visits:
        hits = [k for k in take_matches(eid, start, end) if k not in matched]
        if not hits:
            if not sure:
                continue  # reported when it ends, if it is a visit then
            key = new_key(eid, start)
            rep[key] = [eid, start, end, end]
            matched.add(key)
            events.append(VisitEvent("confirmed", key, visit(eid, start, end)))
            continue
        key = hits[0]
        matched.add(key)
        for k in hits[1:]:
            retract(k)
        _e, s0, t0, _t = rep[key]
        if start != s0 or end < t0 or end - t0 >= params.extend_step_s:
            rep[key] = [eid, start, end, end]
            events.append(VisitEvent("extended", key, visit(eid, start, end)))
        else:
            rep[key][3] = end

    for k in [k for k in rep if k not in matched]:
        retract(k)
    return events


# --- reading the state ------------------------------------------------------------------


def current_stays(state: dict | None, params: VisitParams = VisitParams()) -> list[tuple[str, float, float]]:
    """Confirmed, not yet ended visits the inspector is still at: ``[(enterprise_id, start_ts, end_ts)]``.

    "Still at" means a fix at the enterprise within ``gap_max_s`` of the
    newest ping; feed these to ``geo.duplicates.detect_overlap_now``.
    """
    if not state or state.get("max_ts") is None:
        return []
    horizon = state["max_ts"] - params.gap_max_s
    return sorted(
        ((e, s, t) for e, s, _reported, t in state.get("rep", {}).values() if t >= horizon),
        key=lambda v: (v[1], v[0]),
    )


def recent_pings(state: dict | None) -> list[Ping]:
    """The last few usable fixes, oldest first (for ``geo.duplicates.detect_approach``)."""
    if not state:
        return []
    iid = state.get("inspector_id") or ""
    return [Ping(iid, ts, lat, lon, acc) for ts, lat, lon, acc in state.get("tail", [])]


# --- batch ------------------------------------------------------------------------------


def detect_visits(
    pings: Iterable[Ping],
    nearby: NearbyFn | object,
    params: VisitParams = VisitParams(),
    *,
    unit_of: Callable[[str], str | None] | None = None,
    planned_of: Callable[[str], Collection[str]] | None = None,
) -> list[Visit]:
    """All visits in a history of pings (any inspectors, any order).

    ``nearby`` is a callable like ``EnterpriseIndex.nearby``, or an object with
    ``nearby_many(lats, lons, radii)`` (an ``EnterpriseIndex``), which is used
    to look up all fixes at once.  ``unit_of(inspector_id)`` fills ``unit_id``;
    ``planned_of(inspector_id)`` gives ``advance``'s ``planned``.
    Sorted by (start, inspector, enterprise).  The same visits as the
    streaming path's ``ended`` events.
    """
    by_inspector: dict[str, dict[tuple, Ping]] = {}
    for p in pings:
        if _valid(p) and params.usable(_acc(p)):
            by_inspector.setdefault(p.inspector_id, {})[_order_key(p.ts, p.lat, p.lon, _acc(p))] = p
    many = getattr(nearby, "nearby_many", None)
    one = nearby if callable(nearby) else getattr(nearby, "nearby")
    out: list[Visit] = []
    for iid, fixes in by_inspector.items():
        ordered = [fixes[k] for k in sorted(fixes)]
        planned = frozenset(planned_of(iid) or ()) if planned_of else ()
        if many is not None:
            radii = [params.radius_m(_acc(p)) for p in ordered]
            hits = many([p.lat for p in ordered], [p.lon for p in ordered], radii)
            at_lists = [_at_and_nearest(((e, d) for e, d in h if d <= r), planned) for h, r in zip(hits, radii)]
        else:
            at_lists = [_candidates(one, p, params, planned) for p in ordered]
        live: dict = {}
        closed: list = []
        for p, at in zip(ordered, at_lists):
            _step(live, p.ts, at[0], at[1], params, closed)
        closed.extend((eid, *s[:2], *s[3:]) for eid, s in live.items())
        unit = unit_of(iid) if unit_of else None
        out.extend(Visit(c[0], iid, unit, c[1], c[2]) for c in closed if _is_visit(c, params))
    out.sort(key=lambda v: (v.start_ts, v.inspector_id, v.enterprise_id))
    return out
