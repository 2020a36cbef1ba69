"""The geo engine inside ingest: visits, duplicates, overlaps, approaches and
live heat counters.  Pure logic is in ``geo/``; this module keeps its state.

Per inspector, the visit state (``geo.visits``) lives in Redis and is updated
atomically by compare-and-set (a Lua script): a worker reads the states of
the inspectors in its batch, folds the pings in, and writes them back only if
no other worker changed one meanwhile; otherwise it reads again and retries.  So the pings of one
inspector may land on any worker and the visits come out as from one.
Events are acted on only after the write succeeded.

Visit rows in SQL are upserted by the stay's key.  When a visit is confirmed
it is classified against the enterprise's earlier visits (``duplicate_of`` a
different unit's visit inside the window, ``same_unit_repeat_of`` its own
unit's), and the duplicate goes to ``ns:geo:events`` for the alert engine.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Sequence

import orjson
import redis
from sqlalchemy import Engine, delete, insert, select, update

from config.settings import Settings
from data.models import Enterprise, Visit as VisitRow
from data.registry import Registry
from geo.cells import latlng_to_cell
from geo.duplicates import classify, detect_approach
from geo.heat import hour_bucket
from geo.index import EnterpriseIndex
from geo.types import Ping, Visit
from geo.visits import VisitParams, advance, recent_pings

log = logging.getLogger(__name__)

HEAT_RES = 9  # live counters are kept at res 9; coarser ones are rolled up on read
HEAT_TTL_S = 8 * 86400  # a week of rolling windows plus a day
STATE_TTL_S = 2 * 86400  # an inspector silent for two days starts afresh
WATCH_RETRIES = 20  # compare-and-set attempts before a batch gives up
# The enterprise index is rebuilt this often (new enterprises from imports).
INDEX_REFRESH_S = 300.0
# Early warning fires once per inspector and enterprise in this time.
APPROACH_REPEAT_S = 1800
# How stale the list of recently visited enterprises may be for the early warning.
VISITED_REFRESH_S = 5.0

# Compare-and-set of many visit states: all or nothing.
_CAS_SCRIPT = """
local ttl = tonumber(ARGV[1])
local rows = cjson.decode(ARGV[2])
local bad = {}
for i = 1, #rows do
  local cur = redis.call('GET', rows[i][1])
  local rev = 0
  if cur then rev = tonumber(string.match(cur, '^(%d+)|')) or 0 end
  if rev ~= rows[i][2] then bad[#bad + 1] = rows[i][1] end
end
if #bad > 0 then return bad end
for i = 1, #rows do
  redis.call('SET', rows[i][1], rows[i][3], 'EX', ttl)
end
return bad
"""

_HEAT_SCRIPT = """
local ttl = tonumber(ARGV[1])
local rows = cjson.decode(ARGV[2])
for i = 1, #rows do
  local r = rows[i]
  redis.call('HINCRBY', r[1], r[2], r[3])
  redis.call('EXPIRE', r[1], ttl)
end
return #rows
"""


class GeoStore:
    def __init__(self, settings: Settings, engine: Engine, redis_client: redis.Redis, registry: Registry):
        self.settings = settings
        self.engine = engine
        self.r = redis_client
        self.ns = settings.redis_namespace
        self.registry = registry
        self.params = VisitParams.from_settings(settings)
        self.window_s = settings.duplicate_window_s
        self.intervals_s = {k: v * 86400.0 for k, v in settings.interval_days().items()}
        self._heat = redis_client.register_script(_HEAT_SCRIPT)
        self._cas = redis_client.register_script(_CAS_SCRIPT)
        self.index: EnterpriseIndex | None = None
        self.enterprises: dict[str, tuple] = {}  # id -> (lat, lon, risk, street, grid, name)
        self._index_at = 0.0
        self._visited: EnterpriseIndex | None = None
        self._visited_units: dict[str, str | None] = {}
        self._visited_at = -VISITED_REFRESH_S

    def key(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    # --- index ---------------------------------------------------------------------
    def ensure_index(self) -> EnterpriseIndex:
        if self.index is None or time.monotonic() - self._index_at > INDEX_REFRESH_S:
            with self.engine.connect() as conn:
                rows = conn.execute(select(Enterprise.id, Enterprise.lat, Enterprise.lon, Enterprise.risk,
                                           Enterprise.street_id, Enterprise.grid_id, Enterprise.name)).all()
            self.enterprises = {r.id: (r.lat, r.lon, r.risk, r.street_id, r.grid_id, r.name) for r in rows}
            self.index = EnterpriseIndex.from_arrays([r.id for r in rows], [r.lat for r in rows],
                                                     [r.lon for r in rows])
            self._index_at = time.monotonic()
        return self.index

    # --- the pipeline step ---------------------------------------------------------------
    def process(self, pings: Sequence[Ping]) -> None:
        if not pings:
            return
        index = self.ensure_index()
        by_insp: dict[str, list[Ping]] = defaultdict(list)
        for p in pings:
            by_insp[p.inspector_id].append(p)
        units = {i: (self.registry.inspectors[i].unit_id if i in self.registry.inspectors else None) for i in by_insp}
        states, events = self._advance_all(by_insp, units, index)
        self._count_heat(pings, units)
        if events:
            self._apply_events(events)
        self._approaches(states, units)

    def _advance_all(self, by_insp, units, index):
        """Fold each inspector's pings into its state; compare-and-set all of them at once.

        States are stored as ``"<rev>|<json>"``.  One MGET reads them; one Lua
        call writes them all only if every rev is still the one read (else
        nothing is written, and we read again).  This replaced WATCH/MULTI with
        a SET per inspector, whose replies cost a third of the geo engine."""
        ids = sorted(by_insp)
        keys = [self.key("visit", i) for i in ids]
        for attempt in range(WATCH_RETRIES):
            raw = self.r.mget(keys)
            new_states, events, rows = {}, [], []
            for i, k, v in zip(ids, keys, raw):
                rev, state = 0, None
                if v:
                    head, _, body = v.partition(b"|")
                    rev, state = int(head), orjson.loads(body)
                st, ev = advance(state, sorted(by_insp[i], key=lambda p: p.ts), index.nearby, self.params,
                                 unit_id=units[i])
                new_states[i] = st
                events += ev
                rows.append((k, rev, f"{rev + 1}|".encode() + orjson.dumps(st)))
            conflicts = self._cas(keys=[], args=[STATE_TTL_S, orjson.dumps(
                [(k, rev, body.decode()) for k, rev, body in rows])])
            if not conflicts:
                return new_states, events
            time.sleep(0.001 * (attempt + 1))
        raise RuntimeError(f"visit state of {len(ids)} inspectors kept changing under {WATCH_RETRIES} retries")

    def _count_heat(self, pings: Sequence[Ping], units: dict[str, str | None]) -> None:
        c: Counter = Counter()
        for p in pings:
            cell = latlng_to_cell(p.lat, p.lon, HEAT_RES)
            hour = hour_bucket(p.ts)
            c[(self.key("heat", "p", str(hour)), cell)] += 1
            unit = units.get(p.inspector_id)
            if unit:
                c[(self.key("heat", "pu", unit, str(hour)), cell)] += 1
        rows = [(k, cell, n) for (k, cell), n in c.items()]
        self._heat(keys=[], args=[HEAT_TTL_S, orjson.dumps(rows)])

    # --- visits ---------------------------------------------------------------------------
    def _apply_events(self, events) -> None:
        geo_events: list[dict] = []
        visiting_set: dict[str, str] = {}
        visiting_del: list[str] = []
        visit_heat: Counter = Counter()
        visited: dict[str, tuple[str | None, float]] = {}
        with self.engine.begin() as conn:
            for ev in events:
                v: Visit = ev.visit
                if ev.kind == "retracted":
                    conn.execute(delete(VisitRow).where(VisitRow.stay_key == ev.key))
                    visiting_del.append(v.inspector_id)
                    continue
                row = conn.execute(select(VisitRow.id, VisitRow.duplicate_of).where(VisitRow.stay_key == ev.key)).first()
                ended = ev.kind == "ended"
                if row is None:
                    self._insert_visit(conn, ev.key, v, ended, geo_events)
                    visited[v.enterprise_id] = (v.unit_id, v.start_ts)
                    ent = self.enterprises.get(v.enterprise_id)
                    if ent:
                        cell = latlng_to_cell(ent[0], ent[1], HEAT_RES)
                        hour = str(hour_bucket(v.start_ts))
                        visit_heat[(self.key("heat", "v", hour), cell)] += 1
                        if v.unit_id:
                            visit_heat[(self.key("heat", "vu", v.unit_id, hour), cell)] += 1
                else:
                    conn.execute(update(VisitRow).where(VisitRow.id == row.id)
                                 .values(start_ts=v.start_ts, end_ts=v.end_ts, ended=ended))
                if ended:
                    visiting_del.append(v.inspector_id)
                    self._inspected(conn, v)
                else:
                    visiting_set[v.inspector_id] = v.enterprise_id
        pipe = self.r.pipeline(transaction=False)
        if visiting_set:
            pipe.hset(self.key("visiting"), mapping=visiting_set)
        for iid in visiting_del:
            if iid not in visiting_set:
                pipe.hdel(self.key("visiting"), iid)
        # For the early warning: enterprises visited lately, and by which unit.
        for eid, (unit, ts) in visited.items():
            ent = self.enterprises.get(eid)
            if ent:
                pipe.geoadd(self.key("visited", "geo"), (ent[1], ent[0], eid))
                pipe.hset(self.key("visited", "last"), eid, orjson.dumps([unit, ts]))
        for g in geo_events:
            pipe.xadd(self.key("geo", "events"), {"e": orjson.dumps(g)}, maxlen=10000, approximate=True)
        if visit_heat:
            rows = [(k, cell, n) for (k, cell), n in visit_heat.items()]
            pipe.evalsha(self._heat.sha, 0, HEAT_TTL_S, orjson.dumps(rows))
        v = self.r.incr(self.key("ver"))
        pipe.xadd(self.key("changes"), {"v": v, "kind": "visit", "ids": ",".join(sorted({e.visit.inspector_id for e in events}))},
                  maxlen=10000, approximate=True)
        try:
            pipe.execute()
        except redis.NoScriptError:
            self._heat(keys=[], args=[HEAT_TTL_S, orjson.dumps([(k, c, n) for (k, c), n in visit_heat.items()])])
        self._overlaps(visiting_set)

    def _insert_visit(self, conn, key: str, v: Visit, ended: bool, geo_events: list[dict]) -> int:
        since = v.start_ts - self.window_s
        earlier = [
            Visit(r.enterprise_id, r.inspector_id, r.unit_id, r.start_ts, r.end_ts, id=r.id)
            for r in conn.execute(select(VisitRow.id, VisitRow.enterprise_id, VisitRow.inspector_id, VisitRow.unit_id,
                                         VisitRow.start_ts, VisitRow.end_ts)
                                  .where(VisitRow.enterprise_id == v.enterprise_id, VisitRow.start_ts >= since))
        ]
        dup, rep = classify(v, earlier, self.window_s)
        unit = v.unit_id or (self.registry.inspectors[v.inspector_id].unit_id
                             if v.inspector_id in self.registry.inspectors else None)
        vid = conn.execute(insert(VisitRow).values(
            enterprise_id=v.enterprise_id, inspector_id=v.inspector_id, unit_id=unit, start_ts=v.start_ts,
            end_ts=v.end_ts, duplicate_of=dup, same_unit_repeat_of=rep, stay_key=key, ended=ended,
        ).returning(VisitRow.id)).scalar_one()
        if dup is not None:
            first = next(e for e in earlier if e.id == dup)
            geo_events.append({"type": "duplicate_visit", "visit_id": vid, "duplicate_of": dup,
                               "enterprise_id": v.enterprise_id, "inspector_id": v.inspector_id, "unit_id": unit,
                               "first_inspector_id": first.inspector_id, "first_unit_id": first.unit_id,
                               "at": v.start_ts + self.params.dwell_min_s})
        return vid

    def _inspected(self, conn, v: Visit) -> None:
        """A finished visit is an inspection: move the enterprise's due date."""
        ent = self.enterprises.get(v.enterprise_id)
        if ent is None:
            return
        interval = self.intervals_s.get(ent[2])
        conn.execute(update(Enterprise).where(Enterprise.id == v.enterprise_id,
                                              (Enterprise.last_inspected_at.is_(None))
                                              | (Enterprise.last_inspected_at < v.end_ts))
                     .values(last_inspected_at=v.end_ts,
                             next_due_at=(v.end_ts + interval) if interval else None))

    # --- overlaps and approaches ------------------------------------------------------------
    def _overlaps(self, now_visiting: dict[str, str]) -> None:
        """Two units at one enterprise at the same time."""
        if not now_visiting:
            return
        visiting = {k.decode(): v.decode() for k, v in self.r.hgetall(self.key("visiting")).items()}
        by_ent: dict[str, list[str]] = defaultdict(list)
        for iid, eid in visiting.items():
            by_ent[eid].append(iid)
        for eid in set(now_visiting.values()):
            inspectors = sorted(by_ent.get(eid, []))
            units = {self.registry.inspectors[i].unit_id for i in inspectors if i in self.registry.inspectors}
            if len(units) < 2:
                continue
            marker = self.key("overlap", eid, ",".join(inspectors))
            if self.r.set(marker, 1, nx=True, ex=4 * 3600):
                self.r.xadd(self.key("geo", "events"), {"e": orjson.dumps({
                    "type": "overlap_now", "enterprise_id": eid, "inspector_ids": inspectors,
                    "unit_ids": sorted(units), "at": time.time()})}, maxlen=10000, approximate=True)

    def _visited_index(self) -> EnterpriseIndex | None:
        """Enterprises another unit may have visited inside the window, as a small
        index, rebuilt from Redis every few seconds (not per batch: one GEOSEARCH per
        moving inspector per batch was a fifth of the geo engine's cost)."""
        now = time.monotonic()
        if now - self._visited_at < VISITED_REFRESH_S:
            return self._visited
        cutoff = time.time() - self.window_s
        raw = self.r.hgetall(self.key("visited", "last"))
        last = {}
        for k, v in raw.items():
            unit, ts = orjson.loads(v)
            if ts >= cutoff and k.decode() in self.enterprises:
                last[k.decode()] = unit
        ids = list(last)
        self._visited_units = last
        self._visited = EnterpriseIndex.from_arrays(ids, [self.enterprises[i][0] for i in ids],
                                                    [self.enterprises[i][1] for i in ids]) if ids else None
        self._visited_at = now
        return self._visited

    def _approaches(self, states: dict[str, dict], units: dict[str, str | None]) -> None:
        """Early warning: closing in on an enterprise another unit visited inside the window."""
        radius = self.settings.approach_radius_m
        if not radius:
            return
        index = self._visited_index()
        if index is None:
            return
        for iid, st in states.items():
            if st.get("rep"):
                continue  # at an enterprise now, not on the way
            pings = recent_pings(st)
            if len(pings) < 3:
                continue
            mine = units.get(iid)

            def visited_nearby(lat, lon, r, mine=mine):
                return [(e, d) for e, d in index.nearby(lat, lon, r) if self._visited_units.get(e) != mine]

            for a in detect_approach(pings, visited_nearby, radius):
                if self.r.set(self.key("approach", iid, a.enterprise_id), 1, nx=True, ex=APPROACH_REPEAT_S):
                    self.r.xadd(self.key("geo", "events"), {"e": orjson.dumps({
                        "type": "approach_warning", "inspector_id": iid, "unit_id": mine,
                        "enterprise_id": a.enterprise_id, "distance_m": round(a.distance_m, 1), "at": a.ts})},
                        maxlen=10000, approximate=True)
