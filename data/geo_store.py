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
import math
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime

import numpy as np
import orjson
import redis
from sqlalchemy import Engine, delete, insert, select, update

from alerts.rules import FUTURE_SLACK_S
from config.settings import Settings
from data.city_frames import day_plans
from data.errors import INFRA_ERRORS
from data.live import ChangeStream
from data.models import Enterprise, Visit as VisitRow
from data.registry import Registry
from geo.cells import cells_u64_to_str, latlng_to_cell, points_to_cells_u64
from geo.china import CHINA_TZ
from geo.duplicates import classify, detect_approach
from geo.heat import hour_bucket, hour_buckets_of
from geo.index import EnterpriseIndex
from geo.types import Ping, Visit
from geo.visits import READABLE_VERSIONS, VisitParams, advance, recent_pings

log = logging.getLogger(__name__)

HEAT_RES = 9  # live counters are kept at res 9; coarser ones are rolled up on read
HEAT_TTL_S = 8 * 86400  # a week of rolling windows plus a day
STATE_TTL_S = 2 * 86400  # an inspector silent for two days starts afresh
WATCH_RETRIES = 20  # compare-and-set attempts before a batch gives up
# One compare-and-set call writes at most this many visit states and bytes: a
# call blocks Redis for its whole run (~15 ms per MB on a quiet machine), and the
# alarms wait behind it (docs/benchmarks.md section 18).
CAS_CHUNK_STATES = 500
CAS_CHUNK_BYTES = 1 << 20
# Visit states kept in memory (see GeoStore._load_states): a city's inspectors,
# a few KB each.
STATE_CACHE_MAX = 50_000
# The enterprise index is rebuilt this often (new enterprises from imports).
INDEX_REFRESH_S = 300.0
# Today's plans (which enterprises each inspector is to inspect: the credit of a stop
# goes to a planned enterprise within reach, geo.visits.advance's ``planned``) are
# read again this often: a plan approved or a joint task added counts within a minute.
PLANS_REFRESH_S = 60.0
PLANS_RETRY_S = 5.0  # ... and this soon again when the database did not answer
# Early warning fires once per inspector and enterprise in this time.
APPROACH_REPEAT_S = 1800
# How stale the list of recently visited enterprises may be for the early warning.
VISITED_REFRESH_S = 5.0

# Compare-and-set of many visit states: all or nothing.  ARGV[2] is
# [[key, expected rev, byte length of the new value], ...], ARGV[3] the new
# values back to back.  (The states used to travel as JSON strings inside the
# JSON of the rows: escaping them, and cjson decoding them again, was most of
# the script's time, which the worker waits for.)  Only the rev at the head
# of each stored value is read (GETRANGE), not the whole state.
# Each script below is called with KEYS[1] = the namespace (``ns``), which it does
# not read: the keys it touches come in ARGV, and all start with ``ns``, so on a
# Redis Cluster (``ns`` a hash tag) the call goes to the one node that holds them.
_CAS_SCRIPT = """
local ttl = tonumber(ARGV[1])
local rows = cjson.decode(ARGV[2])
local blob = ARGV[3]
local bad = {}
for i = 1, #rows do
  local head = redis.call('GETRANGE', rows[i][1], 0, 23)
  local rev = tonumber(string.match(head, '^(%d+)|')) or 0
  if rev ~= rows[i][2] then bad[#bad + 1] = rows[i][1] end
end
if #bad > 0 then return bad end
local pos = 1
for i = 1, #rows do
  local n = rows[i][3]
  redis.call('SET', rows[i][1], string.sub(blob, pos, pos + n - 1), 'EX', ttl)
  pos = pos + n
end
return bad
"""

# Read many visit states: [key, ...] -> JSON array of "<rev>|<json>", or 0 for none.
# (One JSON reply instead of MGET's one RESP string per key.)
_READ_SCRIPT = """
local keys = cjson.decode(ARGV[1])
local out = {}
for i = 1, #keys do
  out[i] = redis.call('GET', keys[i]) or 0
end
return cjson.encode(out)
"""

_HEAT_SCRIPT = """
local ttl = tonumber(ARGV[1])
local rows = cjson.decode(ARGV[2])
local seen = {}
for i = 1, #rows do
  local r = rows[i]
  redis.call('HINCRBY', r[1], r[2], r[3])
  if not seen[r[1]] then
    -- one EXPIRE per key: a batch's rows share a few hourly keys
    redis.call('EXPIRE', r[1], ttl)
    seen[r[1]] = true
  end
end
return #rows
"""


def _cas_chunks(advanced: list) -> Iterator[list]:
    """``advanced`` (tuples whose sixth item is the state's body) in runs of at most
    CAS_CHUNK_STATES states and CAS_CHUNK_BYTES bytes (a single larger state alone)."""
    chunk: list = []
    size = 0
    for a in advanced:
        if chunk and (len(chunk) >= CAS_CHUNK_STATES or size + len(a[5]) > CAS_CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(a)
        size += len(a[5])
    if chunk:
        yield chunk


def _ts(p: Ping) -> float:
    return p.ts


def _next_rev(rev: int) -> int:
    """The rev a state is written with.  A new state starts at a random rev, so a
    key deleted and written again does not repeat revs that a worker's cache
    (GeoStore._load_states) may still hold; 2**40 keeps revs exact in Lua's
    doubles and in cjson's 14 digits."""
    return rev + 1 if rev else secrets.randbelow(1 << 40) + 1


class GeoStore:
    def __init__(self, settings: Settings, engine: Engine, redis_client: redis.Redis, registry: Registry):
        self.settings = settings
        self.engine = engine
        self.r = redis_client
        self.ns = settings.redis_prefix
        self.registry = registry
        self.params = VisitParams.from_settings(settings)
        self.window_s = settings.duplicate_window_s
        self.intervals_s = {k: v * 86400.0 for k, v in settings.interval_days().items()}
        self._heat = redis_client.register_script(_HEAT_SCRIPT)
        self._cas = redis_client.register_script(_CAS_SCRIPT)
        self._read = redis_client.register_script(_READ_SCRIPT)
        self.changes = ChangeStream(redis_client, self.ns)
        # Visit states this worker wrote last: inspector -> (rev, state, monotonic
        # time written).  See _load_states.
        self._states: dict[str, tuple[int, dict, float]] = {}
        self.index: EnterpriseIndex | None = None
        self.enterprises: dict[str, tuple] = {}  # id -> (lat, lon, risk, street, grid, name)
        self._index_at = 0.0
        self._plans: dict[str, frozenset[str]] = {}
        self._plans_key: tuple[str, float] = ("", -PLANS_REFRESH_S)  # (China date, monotonic time read)
        self._visited: EnterpriseIndex | None = None
        self._visited_units: dict[str, str | None] = {}
        self._visited_at = -VISITED_REFRESH_S

    def key(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    # --- index ---------------------------------------------------------------------
    def ensure_index(self) -> EnterpriseIndex:
        if self.index is None or time.monotonic() - self._index_at > INDEX_REFRESH_S:
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(select(Enterprise.id, Enterprise.lat, Enterprise.lon, Enterprise.risk,
                                               Enterprise.street_id, Enterprise.grid_id, Enterprise.name)).all()
            except INFRA_ERRORS as e:
                if self.index is None:
                    raise  # nothing to go on with: the batch waits for the database
                # As for the plans: the index read last goes on, and is read again soon.
                log.warning("the enterprises could not be read again (%s); the index read last goes on", e)
                self._index_at = time.monotonic() - INDEX_REFRESH_S + PLANS_RETRY_S
                return self.index
            self.enterprises = {r.id: (r.lat, r.lon, r.risk, r.street_id, r.grid_id, r.name) for r in rows}
            index = EnterpriseIndex.from_arrays([r.id for r in rows], [r.lat for r in rows], [r.lon for r in rows])
            index.prepare_many()
            self.index = index
            self._index_at = time.monotonic()
        return self.index

    def planned(self) -> dict[str, frozenset[str]]:
        """Each inspector's planned enterprises of today (China time): approved plan
        items and joint tasks that name them (``data.city_frames.day_plans``)."""
        today = datetime.now(CHINA_TZ).date().isoformat()
        day, at = self._plans_key
        if day != today or time.monotonic() - at > PLANS_REFRESH_S:
            try:
                self._plans = {i: frozenset(e) for i, e in day_plans(self.engine, today).items()}
                self._plans_key = (today, time.monotonic())
            except INFRA_ERRORS as e:
                # The database away must not stop the fixes: the plans read last go on
                # (none on another day), and the read is tried again in a few seconds.
                log.warning("today's plans could not be read (%s); the visits' credit uses the last ones read", e)
                if day != today:
                    self._plans = {}
                self._plans_key = (today, time.monotonic() - PLANS_REFRESH_S + PLANS_RETRY_S)
        return self._plans

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
        """Fold each inspector's pings into its state; compare-and-set them in chunks.

        States are stored as ``"<rev>|<json>"``.  One Lua call reads them (see
        _load_states); one Lua call per chunk (``_cas_chunks``: at most
        CAS_CHUNK_STATES states and CAS_CHUNK_BYTES) writes its states only if
        every rev is still the one read (else nothing of that chunk is written,
        and its inspectors are read and advanced again).  This replaced
        WATCH/MULTI with a SET per inspector, whose replies cost a third of the
        geo engine.  One call for the whole batch blocked Redis, and every
        client behind it, for 0.2 s on a quiet machine and up to 0.7 s at ten
        times a city (3,000 states of ~13 KB); the alarms' way goes through the
        same Redis (docs/benchmarks.md section 18).

        Each inspector's state is its own: a chunk written stays written.  When a
        later chunk fails (Redis gone), the events of the chunks written are
        applied before the error goes up, so that the batch read again (its
        pings then redeliveries to those states) loses no visit."""
        ids = sorted(by_insp)
        ordered = {i: sorted(by_insp[i], key=_ts) for i in ids}
        at = dict(zip(ids, self._batch_at([ordered[i] for i in ids], index)))
        plans = self.planned()
        # A fix stamped beyond now is a fast clock's: it must not move the watermark
        # past the fixes of the present (alerts.rules.stale_future, FUTURE_SLACK_S).
        clock_edge = time.time() + FUTURE_SLACK_S
        new_states: dict[str, dict] = {}
        events: list = []
        pending = ids
        for attempt in range(WATCH_RETRIES):
            keys = [self.key("visit", i) for i in pending]
            loaded = self._load_states(pending, keys)
            advanced = []
            for i, k, (rev, state) in zip(pending, keys, loaded):
                st, ev = advance(state, ordered[i], index.nearby, self.params, unit_id=units[i], consume=True,
                                 at=at[i][0], near=at[i][1], planned=plans.get(i, ()), clock_edge=clock_edge)
                nxt = _next_rev(rev)
                advanced.append((i, k, rev, st, ev, b"%d|%b" % (nxt, orjson.dumps(st)), nxt))
            retry: list[str] = []
            try:
                for chunk in _cas_chunks(advanced):
                    rows = [(k, rev, len(body)) for _, k, rev, _, _, body, _ in chunk]
                    conflicts = self._cas(keys=[self.ns],
                                          args=[STATE_TTL_S, orjson.dumps(rows), b"".join(a[5] for a in chunk)])
                    if conflicts:
                        retry += [a[0] for a in chunk]
                        continue
                    now = time.monotonic()
                    if len(self._states) + len(chunk) > STATE_CACHE_MAX:
                        self._states.clear()
                    for i, _, _, st, ev, _, nxt in chunk:
                        self._states[i] = (nxt, st, now)
                        new_states[i] = st
                        events += ev
            except Exception:
                if events:
                    self._apply_events(events)
                raise
            if not retry:
                return new_states, events
            pending = retry
            time.sleep(0.001 * (attempt + 1))
        if events:
            self._apply_events(events)
        raise RuntimeError(f"visit state of {len(pending)} inspectors kept changing under {WATCH_RETRIES} retries")

    def _load_states(self, ids: list[str], keys: list[str]) -> list[tuple[int, dict | None]]:
        """(rev, state) per inspector, for ``advance(consume=True)``.

        A state this worker wrote last is used as it is, without asking Redis:
        the compare-and-set that follows checks its rev, and on a conflict the
        next attempt reads every state afresh.  Only the others are read, one
        Lua call per CAS_CHUNK_STATES of them.  Reading and decoding every state
        per batch (MGET of ~500 keys, RESP parsing, orjson) was about a fifth of
        the geo engine in the profile.  Held states are taken out while in use and put back
        only after a successful write, so a failed or conflicting attempt never
        leaves a half-advanced state behind.  A held state older than the
        states' TTL is not trusted (its key may have expired and started
        again); new states start at a random rev (_next_rev), so a deleted and
        re-created key does not repeat a held rev either."""
        now = time.monotonic()
        out: list[tuple[int, dict | None] | None] = []
        missing: list[int] = []
        for n, i in enumerate(ids):
            c = self._states.pop(i, None)
            if c is not None and now - c[2] < STATE_TTL_S:
                out.append((c[0], c[1]))
            else:
                out.append(None)
                missing.append(n)
        for c in range(0, len(missing), CAS_CHUNK_STATES):
            part = missing[c:c + CAS_CHUNK_STATES]
            reply = orjson.loads(self._read(keys=[self.ns], args=[orjson.dumps([keys[n] for n in part])]))
            for n, v in zip(part, reply):
                if v:
                    head, _, body = v.partition("|")
                    out[n] = (int(head), self._decode_state(ids[n], body))
                else:
                    out[n] = (0, None)
        return out  # type: ignore[return-value]

    def _decode_state(self, inspector_id: str, body: str) -> dict | None:
        """A stored visit state, or None when it cannot be read.

        An unreadable state (damaged, or of a format version this version does
        not know) is logged and counted (``anjian_visit_states_discarded_total``),
        and the inspector starts afresh: its open stays are lost, not every fix
        of the next two days (STATE_TTL_S) to an error."""
        try:
            state = orjson.loads(body)
            if not isinstance(state, dict) or not isinstance(state.get("buf"), list):
                raise ValueError("not a visit state")
            if state.get("v") not in READABLE_VERSIONS:
                raise ValueError(f"format version {state.get('v')!r}, not one of {READABLE_VERSIONS}")
            return state
        except ValueError as e:
            log.error("visit state of inspector %s is unreadable (%s); it starts afresh", inspector_id, e)
            self.r.hincrby(self.key("metrics", "visit_states_discarded"), "unreadable", 1)
            return None

    def _batch_at(self, ordered: list[list[Ping]], index: EnterpriseIndex) -> list[tuple[list, list[int]]]:
        """For every fix of the batch, the enterprises it is at and the nearest of
        them (``advance``'s ``at`` and ``near``), per inspector, from one vectorised
        lookup of the whole batch (``within_many``; the per-fix lookup was the geo
        engine's largest cost in the profile)."""
        flat = [p for ps in ordered for p in ps]
        radius_m = self.params.radius_m
        found, near = index.within_many([p.lat for p in flat], [p.lon for p in flat],
                                        [radius_m(p.acc_m) for p in flat])
        out, a = [], 0
        for ps in ordered:
            out.append((found[a:a + len(ps)], near[a:a + len(ps)]))
            a += len(ps)
        return out

    def _count_heat(self, pings: Sequence[Ping], units: dict[str, str | None]) -> None:
        """Hourly ping counters per res-9 cell, one Lua call per batch.  Cells, hours
        and the counts per (hour, cell) and per (unit, hour, cell) come from a few
        vectorised calls over the whole batch (per-ping h3 calls, then a Counter of
        per-ping tuples, were most of this in the profile)."""
        # h3ronpy refuses a whole array for one bad point; validated pings have none.
        pts = [p for p in pings if -90.0 <= p.lat <= 90.0 and -180.0 <= p.lon <= 180.0 and math.isfinite(p.ts)]
        if not pts:
            return
        n = len(pts)
        cells = points_to_cells_u64(np.fromiter((p.lat for p in pts), np.float64, n),
                                    np.fromiter((p.lon for p in pts), np.float64, n), HEAT_RES)
        hours = hour_buckets_of(np.fromiter((p.ts for p in pts), np.float64, n))
        unit_names = sorted({u for u in units.values() if u})
        code = {u: c for c, u in enumerate(unit_names)}
        unit_of = np.fromiter((code.get(units.get(p.inspector_id), -1) for p in pts), np.int64, n)
        rows = []
        # All units ("p"), then each unit ("pu"), with its count per (hour, cell).
        for key_of, sel in ((lambda u, h: self.key("heat", "p", str(h)), None),
                            (lambda u, h: self.key("heat", "pu", unit_names[u], str(h)), unit_of >= 0)):
            c, h, u = (cells, hours, unit_of) if sel is None else (cells[sel], hours[sel], unit_of[sel])
            if c.size == 0:
                continue
            if sel is None:
                u = np.zeros_like(u)
            order = np.lexsort((c, h, u))
            c, h, u = c[order], h[order], u[order]
            first = np.flatnonzero(np.r_[True, (c[1:] != c[:-1]) | (h[1:] != h[:-1]) | (u[1:] != u[:-1])])
            counts = np.diff(np.r_[first, c.size]).tolist()
            names = cells_u64_to_str(c[first])
            keys: dict[tuple[int, int], str] = {}
            for uu, hh, name, k in zip(u[first].tolist(), h[first].tolist(), names, counts):
                key = keys.get((uu, hh))
                if key is None:
                    key = keys[(uu, hh)] = key_of(uu, hh)
                rows.append((key, name, k))
        self._heat(keys=[self.ns], args=[HEAT_TTL_S, orjson.dumps(rows)])

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
            pipe.evalsha(self._heat.sha, 1, self.ns, HEAT_TTL_S, orjson.dumps(rows))
        self.changes.publish("visit", ",".join(sorted({e.visit.inspector_id for e in events})), pipe=pipe)
        try:
            pipe.execute()
        except redis.exceptions.NoScriptError:
            self._heat(keys=[self.ns], args=[HEAT_TTL_S, orjson.dumps([(k, c, n) for (k, c), n in visit_heat.items()])])
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
