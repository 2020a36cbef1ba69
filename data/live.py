"""Live state in Redis: the latest fix per inspector, a GEO index, sensor states,
and a change stream with a version counter.

Writes come from ingest workers in batches, one Lua call per batch: the script
applies msg_id idempotency (``SET NX``), keeps an older fix from overwriting a
newer one, bumps the version counter and appends one entry to the change
stream.  Being one script, it is atomic, so any number of workers can apply
batches concurrently without a lock.

Key layout (``ns`` is ``settings.redis_prefix``: the namespace, or ``{namespace}``, a hash
tag that keeps every key in one slot, on a Redis Cluster):

==============================  ===============================================
``ns:insp:{id}``                hash: ts, lat, lon, acc, speed, batt, src
``ns:insp:geo``                 GEO set of inspectors' latest fixes
``ns:sensor:{id}``              hash: ts, level, lel, ppm, alarm, batt, src
``ns:avail:{kind}``             hash: id -> "online"/"offline" ts
``ns:msgid:{i|s}:{id}``         sorted set: a device's recent msg_ids (score:
                                when applied, in us), at most ``msg_id_cap``,
                                none older than ``msg_id_ttl_s``
``ns:ver``                      version counter, bumped by every change
``ns:changes``                  stream of (v, kind, ids), capped; one writer
                                (``_LUA_CHANGE``), atomic with ``ns:ver``
``ns:gas:alarms``               the alert engine's priority lane: every reading
                                that is not normal or follows one that was not,
                                and every availability change
``ns:gas:events``               the other readings (normal after normal: the
                                heartbeats); both never trimmed past what the
                                engine's group has not acked
``ns:events_lost``              hash: when events were last lost (see below)
``ns:seq``                      hash: "{i|s}:{id}" -> the device's newest ``seq``
``ns:seq_gap``                  hash: when a sequence gap was last seen, and where
``ns:broker_dropped``           hash: the broker's own count of messages it dropped
                                (``value``), when it last rose (``at``), and the
                                rises added up (``total``; see broker_dropped)
``ns:metrics:*``                counters shared by all processes (see metrics)
``ns:workers``                  hash: worker id -> JSON heartbeat (lag, queue)
``ns:replicas``                 hash: replicas the master has and the ingest wants
``ns:replica_probe``            counter the ingest writes before WAIT (await_replicas)
==============================  ===============================================
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
import redis

from alerts.rules import FUTURE_SLACK_S
from geo.types import GasReading, Ping

def connect(url: str, cluster: bool = False) -> redis.Redis:
    """A client for the live-state Redis, as every process opens it.  ``cluster``:
    ``url`` names any node of a Redis Cluster (redis-py finds the others, follows
    MOVED/ASK and a failover).  The cluster client has the same command methods,
    so the callers do not tell the two apart; its keys are kept in one slot by the
    hash-tag prefix (``Settings.redis_prefix``)."""
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, health_check_interval=30)  # type: ignore[return-value]
    return redis.Redis.from_url(url, health_check_interval=30)


# Processing-latency histogram buckets, seconds (Prometheus convention).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Sequence gaps (docs/mqtt.md): per device, the newest ``seq`` seen.  A message
# whose seq is more than one above it means the ones between were lost before
# they reached us (counted: ``gap``, messages missing); one at or below it is late
# (``late``: a redelivery, or one that fills an earlier gap), except seq 0 or 1
# below a higher one, which is the device starting over (``restart``).
_TRACK_SEQ = """
local seen, metrics, gapkey = KEYS[1], KEYS[2], KEYS[3]
local now = ARGV[1]
local gap, late, restart, first, worst = 0, 0, 0, 0, ''
for i = 2, #ARGV, 2 do
  local field, seq = ARGV[i], tonumber(ARGV[i + 1])
  local last = tonumber(redis.call('HGET', seen, field))
  if last == nil then
    first = first + 1
    redis.call('HSET', seen, field, seq)
  elseif seq > last then
    if seq > last + 1 then
      gap = gap + (seq - last - 1)
      worst = field
    end
    redis.call('HSET', seen, field, seq)
  elseif seq <= 1 and last > 1 then
    restart = restart + 1
    redis.call('HSET', seen, field, seq)
  else
    late = late + 1
  end
end
if gap > 0 then
  redis.call('HINCRBY', metrics, 'gap', gap)
  redis.call('HSET', gapkey, 'at', now, 'device', worst)
end
if late > 0 then redis.call('HINCRBY', metrics, 'late', late) end
if restart > 0 then redis.call('HINCRBY', metrics, 'restart', restart) end
return {gap, late, restart, first}
"""

# The broker's count of the messages it dropped ($SYS/broker/publish/messages/dropped on
# Mosquitto), as an ingest worker last received it.  A rise is drops we had not seen:
# added to ``total`` and stamped ``at``.  A fall is the broker starting over (a restart
# resets its counters): its new value is all new drops.  With nothing recorded, the
# value counts from 0: Mosquitto publishes the count only once it is above 0, so the
# first value a new deployment sees is its first drops (on a broker that dropped
# messages before Anjian watched it, those are counted once too).  Every worker
# reports the same number; the second report of one value adds nothing.
_BROKER_DROPPED = """
local v, now = tonumber(ARGV[1]), ARGV[2]
local last = tonumber(redis.call('HGET', KEYS[1], 'value')) or 0
local rise = 0
if v > last then rise = v - last elseif v < last then rise = v end
redis.call('HSET', KEYS[1], 'value', v, 'seen_at', now)
if rise > 0 then
  redis.call('HINCRBY', KEYS[1], 'total', rise)
  redis.call('HSET', KEYS[1], 'at', now)
end
return rise
"""

# Statuses the apply scripts return per message.
APPLIED, OLDER, DUPLICATE = 0, 1, 2

# The change stream is for screens catching up after a short disconnect; 10k
# entries cover minutes of a busy city.  "~" lets Redis trim lazily (cheap).
CHANGES_MAXLEN = 10_000
# The alert engine's gas streams, the priority lane first (see _LUA_GAS_EVENTS).
GAS_ALARMS, GAS_EVENTS = "gas:alarms", "gas:events"
GAS_LANES = (GAS_ALARMS, GAS_EVENTS)
# A gas stream beyond this length loses the entries that every consumer group
# has acknowledged (XTRIM MINID below the oldest entry a group still needs:
# its oldest pending entry, else its last delivered one); never the others.
GAS_EVENTS_MAXLEN = 100_000
# The consumer group that reads the gas streams (the alert engine).  Created by
# a stream's first trim if the engine has never run, so that it reads from the start.
GAS_EVENTS_GROUP = "alert-engine"
# The memory ceiling: past this many entries that the group still needs (the
# engine away for hours: ~3 h of a busy city's readings, ~200 MB), the oldest
# are trimmed anyway, and counted as lost.
GAS_EVENTS_MAX_UNREAD = 2_000_000
# msg_ids remembered per device (see _LUA_MSGID): the newest this many (at
# least this many less 16), within ``ingest_msg_id_ttl_s``.  128 keeps each set in Redis's compact encoding
# (zset-max-listpack-entries, 128 by default): a broker redelivers within
# minutes, and a phone's 128 fixes are 10 minutes even at one per 5 s.
MSG_ID_CAP = 128
# Reasons events were lost (``ns:metrics:events_lost``): trimmed unread at the
# memory ceiling (counted by the writer, exactly), and found missing by the
# reader (a pending entry deleted, or entries deleted before it read them).
LOST_TRIMMED = "gas_events_trimmed_unread"
LOST_PENDING = "gas_events_pending_deleted"
LOST_UNREAD = "gas_events_deleted_unread"

# The one writer of the change stream: the version and its entry in one step,
# so that the stream is in version order (a reader stops at the first entry at
# or below the version it has).  Every script that changes live state includes
# it; Python callers go through ``ChangeStream.publish``.
_LUA_CHANGE = """
local function change(ns, kind, ids)
  local v = redis.call('INCR', ns .. ':ver')
  redis.call('XADD', ns .. ':changes', 'MAXLEN', '~', %(changes_maxlen)d, '*', 'v', v, 'kind', kind, 'ids', ids)
  return v
end
"""

# The alert engine's two gas streams (GAS_LANES): each appended without a cap,
# trimmed only below what the consumer group still needs, and past
# ``max_unread`` entries (a memory ceiling: the engine away for hours) trimmed
# anyway, with the loss counted and stamped.
#
# The lane: a reading goes to ns:gas:alarms when its level or the sensor's
# stored level before it is anything but normal (an alarm, a fault, a test, the
# return to normal), and every availability change goes there; the rest, normal
# after normal, go to ns:gas:events.  The engine reads the alarm lane first, so
# an alarm never waits behind a backlog of heartbeats (ten times a city's load,
# docs/benchmarks.md section 14).  Every change of a sensor's class passes
# through the alarm lane in order; a heartbeat read after a newer alarm is late
# to the rules (alerts/rules.py), which is what it is.
_LUA_GAS_EVENTS = """
local function gas_lane(level, prev)
  if level == 'normal' and (prev == '' or prev == 'normal') then return ':gas:events' end
  return ':gas:alarms'
end
local function id_lt(a, b)
  local am, as = string.match(a, '(%%d+)%%-(%%d+)')
  local bm, bs = string.match(b, '(%%d+)%%-(%%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function trim_gas(ns, lane, max_unread, now)
  local key = ns .. lane
  local len = redis.call('XLEN', key)
  if len <= %(gas_maxlen)d then return end
  local groups = redis.call('XINFO', 'GROUPS', key)
  if #groups == 0 then
    redis.call('XGROUP', 'CREATE', key, '%(gas_group)s', '0')
    groups = redis.call('XINFO', 'GROUPS', key)
  end
  local floor = nil
  for _, g in ipairs(groups) do
    local name, need
    for k = 1, #g, 2 do
      if g[k] == 'name' then name = g[k + 1] elseif g[k] == 'last-delivered-id' then need = g[k + 1] end
    end
    local p = redis.call('XPENDING', key, name)
    if tonumber(p[1]) > 0 then need = p[2] end
    if floor == nil or id_lt(need, floor) then floor = need end
  end
  redis.call('XTRIM', key, 'MINID', '~', floor)
  if max_unread > 0 and redis.call('XLEN', key) > max_unread then
    local n = redis.call('XTRIM', key, 'MAXLEN', max_unread)
    if n > 0 then
      redis.call('HINCRBY', ns .. ':metrics:events_lost', '%(lost_trimmed)s', n)
      redis.call('HSET', ns .. ':events_lost', 'at', now, 'reason', '%(lost_trimmed)s')
    end
  end
end
"""

# msg_id idempotency, per device: a sorted set of its msg_ids scored by when
# they were applied.  ZADD NX tells a redelivered one from a new one; a set that
# reaches ``cap`` loses its oldest 16 (so it keeps the newest cap - 16 to cap,
# and stays in Redis's compact listpack encoding); after the batch each touched
# set loses ids older than the window, and expires a window after the device's
# last message.
_LUA_MSGID = """
local touched, ord = {}, 0
local function seen(key, msg, now, cap)
  -- scores in arrival order within a batch too (the trim keeps the newest)
  ord = ord + 1
  -- (integer microseconds: the compact encoding stores and compares them as integers)
  if redis.call('ZADD', key, 'NX', math.floor(now * 1e6) + ord, msg) == 0 then return true end
  touched[key] = true
  -- full: the oldest 16 go at once (one trim per 16 messages), so the set is
  -- never longer than cap and stays in the compact encoding
  if redis.call('ZCARD', key) >= cap then redis.call('ZREMRANGEBYRANK', key, 0, 15) end
  return false
end
local function bound_msgids(now, ttl)
  for key in pairs(touched) do
    redis.call('ZREMRANGEBYSCORE', key, '-inf', math.floor((now - ttl) * 1e6))
    redis.call('EXPIRE', key, ttl)
  end
end
"""

# The batch travels as one JSON argument (decoded by cjson inside Redis):
# packing it as thousands of separate arguments cost more than everything
# else in the worker (measured with bench/bench_ingest.py --profile).  An
# inspector's hash and GEO entry are written once per batch, with its newest
# fix: with a backlog a batch holds several fixes per inspector, and the
# script's run time is the worker's wait.
_APPLY_PINGS = _LUA_CHANGE + _LUA_MSGID + """
local ns, ttl, cap, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rows = cjson.decode(ARGV[2])
local res, changed = {}, {}
-- best[id]: newest ts of the inspector so far (stored, then this batch's), or
-- false when it has none; last[id]: its newest applied row of this batch.
local best, last, ids = {}, {}, {}
for i = 1, #rows do
  local p = rows[i]
  local id, ts, msg = p[1], p[2], p[9]
  local status = 0
  if msg ~= '' and seen(ns .. ':msgid:i:' .. id, msg, now, cap) then
    status = 2
  end
  if status == 0 then
    local b = best[id]
    if b == nil then
      local cur = redis.call('HGET', ns .. ':insp:' .. id, 'ts')
      b = cur and tonumber(cur) or false
    end
    -- Older: no newer than the stored fix, unless that one is a fast clock's and this
    -- one is of the present (alerts.rules.stale_future, FUTURE_SLACK_S).
    if b and b >= ts and not (b > now + %(future_slack_s)s and ts <= now + %(future_slack_s)s) then
      status = 1
      best[id] = b
    else
      best[id] = ts
      if not last[id] then ids[#ids + 1] = id end
      last[id] = p
      changed[#changed + 1] = id
    end
  end
  res[#res + 1] = status
end
-- One write per inspector: its newest fix (the hash and the GEO entry end up
-- as they would after writing every applied fix in turn).
for _, id in ipairs(ids) do
  local p = last[id]
  redis.call('HSET', ns .. ':insp:' .. id, 'ts', string.format('%%.17g', p[2]), 'lat', string.format('%%.17g', p[3]),
             'lon', string.format('%%.17g', p[4]), 'acc', p[5], 'speed', p[6], 'batt', p[7], 'src', p[8])
  redis.call('GEOADD', ns .. ':insp:geo', p[4], p[3], id)
end
bound_msgids(now, ttl)
if #changed > 0 then change(ns, 'inspector', table.concat(changed, ',')) end
-- One digit per ping, as one string: a reply of a thousand integers cost the
-- client more to parse than the rest of this step.
return table.concat(res)
"""

# Sensors: same idempotency and ordering.  Every reading that is not a
# duplicate also goes to the alert engine, in its lane (gas_lane) (which counts
# alarming readings and needs heartbeats too), with the previous level and
# whether it arrived late (older than the stored one).  The script returns per
# message {status, previous level}.
_APPLY_SENSORS = _LUA_CHANGE + _LUA_MSGID + _LUA_GAS_EVENTS + """
local ns, ttl, cap, now, max_unread = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local res, changed, lanes = {}, {}, {}
local n = (#ARGV - 4) / 9
for i = 0, n - 1 do
  local b = 4 + i * 9
  local id, ts, level, msg = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 9]
  local status, prev = 0, ''
  if msg ~= '' and seen(ns .. ':msgid:s:' .. id, msg, now, cap) then
    status = 2
  end
  if status ~= 2 then
    local key = ns .. ':sensor:' .. id
    local cur = redis.call('HMGET', key, 'ts', 'level')
    prev = cur[2] or ''
    local stored, t = tonumber(cur[1] or ''), tonumber(ts)
    -- Late: no newer than the stored reading, unless that one is a fast clock's and
    -- this one is of the present (alerts.rules.stale_future, FUTURE_SLACK_S).
    if stored and stored >= t and not (stored > now + %(future_slack_s)s and t <= now + %(future_slack_s)s) then
      status = 1
    else
      redis.call('HSET', key, 'ts', ts, 'level', level, 'lel', ARGV[b + 4], 'ppm', ARGV[b + 5],
                 'alarm', ARGV[b + 6], 'batt', ARGV[b + 7], 'src', ARGV[b + 8])
      changed[#changed + 1] = id
    end
    local lane = gas_lane(level, prev)
    lanes[lane] = true
    redis.call('XADD', ns .. lane, '*',
               'sensor', id, 'ts', ts, 'level', level, 'prev', prev, 'lel', ARGV[b + 4],
               'alarm', ARGV[b + 6], 'late', tostring(status), 'rx', ARGV[3])
  end
  res[#res + 1] = {status, prev}
end
bound_msgids(now, ttl)
for lane in pairs(lanes) do trim_gas(ns, lane, max_unread, now) end
if #changed > 0 then change(ns, 'sensor', table.concat(changed, ',')) end
return res
"""


class ReplicaWaitTimeout(redis.TimeoutError):
    """Fewer replicas than asked for hold an ingest batch (``LiveState.await_replicas``):
    the batch is not acknowledged, and is tried again (data.errors.INFRA_ERRORS)."""


def reported_offline(avail: tuple[bool, float] | None, last_ts: float | None) -> bool:
    """The device's own word (``availability()``'s entry) says offline, and nothing
    newer was heard from it since: a fix or reading at or after the will's time
    wins, so a phone that reconnects after its last will is online again."""
    return avail is not None and not avail[0] and (last_ts is None or avail[1] >= last_ts)


# Availability (a device's last will, or its status topic): the hash, the change
# and, for a sensor, its gas event, in one step.
_AVAILABILITY = _LUA_CHANGE + _LUA_GAS_EVENTS + """
local ns, kind, id, state, ts = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('HSET', ns .. ':avail:' .. kind, id, state .. ' ' .. ts)
if kind == 'sensor' then
  redis.call('XADD', ns .. ':gas:alarms', '*', 'sensor', id, 'ts', ts, 'level', state, 'prev', '', 'lel', '',
             'alarm', '')
  trim_gas(ns, ':gas:alarms', tonumber(ARGV[6]), ARGV[5])
end
change(ns, kind .. '_availability', id)
"""


def _s(v: float | None) -> str:
    return "" if v is None else repr(float(v))


# Reads of many hashes in one round trip: redis-py parsing thousands of HGETALL
# replies costs ~50 us each in Python; one JSON string decoded by orjson costs ~1 us
# a hash.  KEYS[1] is the key prefix, ARGV[1] names the fields (JSON), the rest
# are the ids.  (Only real keys go in KEYS: a cluster routes the call by them.)
_READ_HASHES = """
local fields = cjson.decode(ARGV[1])
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local v = redis.call('HMGET', KEYS[1] .. id, unpack(fields))
  if v[1] then
    local row = {id}
    for k = 1, #fields do row[k + 1] = v[k] or '' end
    out[#out + 1] = row
  end
end
return cjson.encode(out)
"""
_FIX_FIELDS = ("ts", "lat", "lon", "acc", "speed", "batt", "src")
_SENSOR_FIELDS = ("ts", "level", "lel", "ppm", "alarm", "batt", "src")
# Ids per script call, and fixes per call of the ingest's script: a script blocks
# Redis, and every client behind it (the alarms' way too), for its whole run.
# 5,000 hashes took 25-34 ms on a quiet machine and up to 0.67 s at ten times a
# city, a batch of 3,000 fixes up to 0.4 s (docs/benchmarks.md section 18).
_READ_CHUNK = 500
_APPLY_CHUNK = 500


def _f(v: bytes | str | None) -> float | None:
    if v is None or v == b"" or v == "":
        return None
    return float(v)


@dataclass(slots=True)
class InspectorFix:
    id: str
    ts: float
    lat: float
    lon: float
    acc_m: float | None
    speed_mps: float | None
    batt_pct: float | None
    source: str


@dataclass(slots=True)
class SensorState:
    id: str
    ts: float
    level: str
    lel_pct: float | None
    ppm: float | None
    alarm: str | None
    batt_pct: float | None
    source: str


class ChangeStream:
    """The one writer of ``ns:changes`` for code outside the live-state scripts:
    ``ns:ver`` bumped and the entry added in one script (``_LUA_CHANGE``)."""

    _SCRIPT = _LUA_CHANGE % {"changes_maxlen": CHANGES_MAXLEN} + """
if ARGV[3] ~= '' then redis.call('INCR', KEYS[1] .. ':' .. ARGV[3]) end
return change(KEYS[1], ARGV[1], ARGV[2])
"""

    def __init__(self, client: redis.Redis, namespace: str):
        self.ns = namespace
        self._script = client.register_script(self._SCRIPT)

    def publish(self, kind: str, ids: str, *, also_bump: str = "", pipe=None):
        """One change of ``kind`` to ``ids`` (comma-separated); ``also_bump``: another
        counter (``ns:{also_bump}``) bumped in the same step.  With ``pipe`` it runs
        inside that pipeline (atomic with its other commands if it is a MULTI);
        without, it returns the new version."""
        return self._script(keys=[self.ns], args=[kind, ids, also_bump], client=pipe)


class LiveState:
    """All reads and writes of live state go through here."""

    def __init__(self, client: redis.Redis, namespace: str, msg_id_ttl_s: int = 3600, msg_id_cap: int = MSG_ID_CAP,
                 gas_events_max_unread: int = GAS_EVENTS_MAX_UNREAD):
        self.r = client
        self.ns = namespace
        self.msg_id_ttl_s = msg_id_ttl_s
        self.msg_id_cap = msg_id_cap
        self.gas_events_max_unread = gas_events_max_unread
        fmt = {"changes_maxlen": CHANGES_MAXLEN, "gas_maxlen": GAS_EVENTS_MAXLEN, "gas_group": GAS_EVENTS_GROUP,
               "lost_trimmed": LOST_TRIMMED, "future_slack_s": repr(FUTURE_SLACK_S)}
        self._apply_pings = client.register_script(_APPLY_PINGS % fmt)
        self._apply_sensors = client.register_script(_APPLY_SENSORS % fmt)
        self._availability = client.register_script(_AVAILABILITY % fmt)
        self._read_hashes = client.register_script(_READ_HASHES)
        self._track_seq = client.register_script(_TRACK_SEQ)
        self._broker_dropped = client.register_script(_BROKER_DROPPED)
        self.changes = ChangeStream(client, namespace)
        self._replicas_seen: tuple[int, int, float] = (-1, -1, 0.0)  # see await_replicas

    def key(self, *parts: str) -> str:
        return ":".join((self.ns, *parts))

    # --- writes (ingest) ----------------------------------------------------
    def apply_pings(self, pings: Sequence[Ping]) -> list[int]:
        """Apply a batch of resolved pings; returns APPLIED/OLDER/DUPLICATE per ping."""
        if not pings:
            return []
        rows = [(p.inspector_id, p.ts, p.lat, p.lon, _s(p.acc_m), _s(p.speed_mps), _s(p.batt_pct), p.source,
                 p.msg_id or "") for p in pings]
        out: list[int] = []
        for k in range(0, len(rows), _APPLY_CHUNK):
            reply = self._apply_pings(keys=[self.ns], args=[self.msg_id_ttl_s, orjson.dumps(rows[k:k + _APPLY_CHUNK]),
                                                            self.msg_id_cap, repr(time.time())])
            out += [c - 48 for c in reply]  # b"0012" -> [0, 0, 1, 2]
        return out

    # --- durability: replicas (docs/deploy.md, "Redis Cluster") ---------------------
    def primary(self) -> str:
        """host:port of the master that holds the namespace's keys now ('' for one server)."""
        if not hasattr(self.r, "get_node_from_key"):
            return ""
        return self.r.get_node_from_key(self.ns).name

    def _primary_client(self) -> redis.Redis:
        """A plain client of that master: a cluster client sends WAIT to every master."""
        if not hasattr(self.r, "get_node_from_key"):
            return self.r
        node = self.r.get_node_from_key(self.ns)
        if node.redis_connection is None:
            self.r.nodes_manager.initialize()
            node = self.r.get_node_from_key(self.ns)
        return node.redis_connection

    def _refresh_slots(self) -> None:
        if hasattr(self.r, "nodes_manager"):
            try:
                self.r.nodes_manager.initialize()
            except (redis.RedisError, redis.exceptions.RedisClusterException):
                pass  # no node answers yet: the next try asks again

    def await_replicas(self, wanted: int, timeout_ms: int) -> tuple[int, int]:
        """Block until ``wanted`` replicas of the namespace's master (at most as many as
        it has now) hold every write made to it so far, by any client.

        A write of our own (a counter) then WAIT, on one connection: WAIT counts the
        replicas that have reached that connection's last write, and the master's
        replication stream is in order, so they hold everything written before it.
        A master with fewer replicas than ``wanted`` (one lost its replica, or was
        promoted and has none yet) is waited for with the ones it has, so ingest goes
        on, less safe, until its replica is back (health says so: ``redis_replicas``).
        Returns (replicas that acknowledged, replicas the master has); raises
        ``ReplicaWaitTimeout`` when fewer acknowledged in ``timeout_ms``."""
        client = self._primary_client()
        try:
            role = client.execute_command("ROLE")
        except (redis.ConnectionError, redis.TimeoutError):
            # The master is gone.  This plain client does not tell the cluster client,
            # whose map of the slots is refreshed only by its own failed commands: ask
            # for the map now, so that the next try finds the promoted replica (and the
            # batch is applied again there, see ingest ApplyLiveState).
            self._refresh_slots()
            raise
        have = len(role[2]) if role and role[0] in (b"master", "master") else 0
        now = time.monotonic()
        if (have, wanted) != self._replicas_seen[:2] or now - self._replicas_seen[2] > 5.0:
            self.r.hset(self.key("replicas"), mapping={"have": have, "wanted": wanted, "at": repr(time.time())})
            self._replicas_seen = (have, wanted, now)
        need = min(wanted, have)
        pipe = client.pipeline(transaction=False)
        pipe.incr(self.key("replica_probe"))
        pipe.execute_command("WAIT", need, timeout_ms)
        try:
            acked = int(pipe.execute()[1])
        except (redis.ConnectionError, redis.TimeoutError):
            self._refresh_slots()
            raise
        if acked < need:
            raise ReplicaWaitTimeout(f"{acked} of {need} replicas of {self.primary() or 'redis'} acknowledged "
                                     f"in {timeout_ms} ms")
        return acked, have

    def replicas(self) -> dict[str, float] | None:
        """What the last ``await_replicas`` found: have, wanted, at; None if never asked."""
        raw = self.r.hgetall(self.key("replicas"))
        return {k.decode(): float(v) for k, v in raw.items()} if raw else None

    def apply_sensor_readings(self, readings: Sequence[GasReading], levels: Sequence[str]) -> list[tuple[int, str]]:
        """Apply readings with their computed levels; returns (status, previous level)."""
        if not readings:
            return []
        args: list[str | int] = [self.msg_id_ttl_s, self.msg_id_cap, repr(time.time()), self.gas_events_max_unread]
        for g, level in zip(readings, levels, strict=True):
            args += (g.sensor_id, repr(g.ts), level, _s(g.lel_pct), _s(g.ppm), g.alarm or "",
                     _s(g.batt_pct), g.source, g.msg_id or "")
        out = self._apply_sensors(keys=[self.ns], args=args)
        return [(int(s), p.decode() if isinstance(p, bytes) else p) for s, p in out]

    def track_sequences(self, entries: Sequence[tuple[str, str, int]]) -> tuple[int, int, int]:
        """Follow each device's message counter: ``entries`` are (kind "i"/"s", device id,
        seq) in arrival order.  Returns (messages missing in gaps, late, restarts), also
        counted in ``ns:metrics:seq`` (``/metrics``) and stamped for health (``seq_gap``)."""
        if not entries:
            return 0, 0, 0
        args: list[str | int] = [repr(time.time())]
        for kind, device_id, seq in entries:
            args += (f"{kind}:{device_id}", seq)
        gap, late, restart, _first = self._track_seq(
            keys=[self.key("seq"), self.key("metrics", "seq"), self.key("seq_gap")], args=args)
        return int(gap), int(late), int(restart)

    def sequence_gap(self) -> tuple[dict[str, int], float | None, str | None]:
        """Sequence counters (gap, late, restart), when the last gap was seen, and on which device."""
        at, device = self.r.hmget(self.key("seq_gap"), "at", "device")
        return (self.counters("seq"), float(at) if at else None, device.decode() if device else None)

    def report_broker_dropped(self, value: int) -> int:
        """The broker's own count of dropped messages, as received: returns the drops
        it adds (0 for a repeat)."""
        return int(self._broker_dropped(keys=[self.key("broker_dropped")], args=[int(value), repr(time.time())]))

    def broker_dropped(self) -> tuple[int, float | None, int | None]:
        """(drops seen rising, when they last rose, the broker's own count last received)."""
        total, at, value = self.r.hmget(self.key("broker_dropped"), "total", "at", "value")
        return int(total or 0), (float(at) if at else None), (int(value) if value is not None else None)

    def set_availability(self, kind: str, device_id: str, online: bool, ts: float) -> None:
        state = "online" if online else "offline"
        self._availability(keys=[self.ns], args=[kind, device_id, state, repr(ts), repr(time.time()),
                                                 self.gas_events_max_unread])

    def publish_change(self, kind: str, ids: str, *, also_bump: str = "", pipe=None):
        """A change for the screens (``ChangeStream.publish``)."""
        return self.changes.publish(kind, ids, also_bump=also_bump, pipe=pipe)

    # --- lost events (the alert engine's stream) -----------------------------
    def count_lost(self, reason: str, n: int) -> None:
        """``n`` events lost for ``reason``: counted (``/metrics``) and stamped (health)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hincrby(self.key("metrics", "events_lost"), reason, n)
        pipe.hset(self.key("events_lost"), mapping={"at": repr(time.time()), "reason": reason})
        pipe.execute()

    def count_engine_skipped(self, reason: str, n: int = 1) -> None:
        """``n`` stream events the alert engine read and did not apply, for ``reason``
        (``unknown_sensor``: a sensor SQL no longer has): counted (``/metrics``)."""
        self.r.hincrby(self.key("metrics", "engine_skipped"), reason, n)

    def events_lost(self) -> tuple[dict[str, int], float | None]:
        """Lost events by reason, and when the last loss was noticed (None: never)."""
        at = self.r.hget(self.key("events_lost"), "at")
        return self.counters("events_lost"), (float(at) if at else None)

    def watched_assignees(self, inspector_ids) -> dict[str, dict]:
        """Dispatched assignees among ``inspector_ids``: id -> {alert_id, lat, lon}."""
        ids = list(inspector_ids)
        if not ids:
            return {}
        raw = self.r.hmget(self.key("tasks", "active"), ids)
        return {i: orjson.loads(v) for i, v in zip(ids, raw) if v}

    def report_arrival(self, alert_id: int, inspector_id: str, ts: float, distance_m: float) -> None:
        self.r.hdel(self.key("tasks", "active"), inspector_id)
        self.r.xadd(self.key("arrivals"), {"alert_id": alert_id, "inspector_id": inspector_id, "ts": repr(ts),
                                           "distance_m": f"{distance_m:.1f}"}, maxlen=10000, approximate=True)

    # --- reads (API, screens, alert engine) ---------------------------------
    def version(self) -> int:
        return int(self.r.get(self.key("ver")) or 0)

    def _hashes(self, kind: str, ids: Iterable[str], fields: tuple[str, ...]) -> list[list[str]]:
        """[id, *field values ('' when absent)] of each ``ns:kind:id`` hash that exists."""
        ids = list(ids)
        spec = orjson.dumps(fields).decode()
        rows: list[list[str]] = []
        for k in range(0, len(ids), _READ_CHUNK):
            chunk = ids[k:k + _READ_CHUNK]
            if chunk:
                rows += orjson.loads(self._read_hashes(keys=[self.key(kind, "")], args=[spec, *chunk]))
        return rows

    def inspector_fixes(self, ids: Iterable[str]) -> dict[str, InspectorFix]:
        return {
            i: InspectorFix(id=i, ts=float(ts), lat=float(lat), lon=float(lon), acc_m=_f(acc), speed_mps=_f(speed),
                            batt_pct=_f(batt), source=src)
            for i, ts, lat, lon, acc, speed, batt, src in self._hashes("insp", ids, _FIX_FIELDS)
        }

    def sensor_states(self, ids: Iterable[str]) -> dict[str, SensorState]:
        return {
            i: SensorState(id=i, ts=float(ts), level=level, lel_pct=_f(lel), ppm=_f(ppm), alarm=alarm or None,
                           batt_pct=_f(batt), source=src)
            for i, ts, level, lel, ppm, alarm, batt, src in self._hashes("sensor", ids, _SENSOR_FIELDS)
        }

    def inspector_last_heard(self, ids: Iterable[str]) -> dict[str, float]:
        """Inspector id -> time of its newest fix, for those ever heard (one field read per
        inspector): what the engine's offline sweep needs of 20,000 fixes every 15 s."""
        return {i: float(ts) for i, ts in self._hashes("insp", ids, ("ts",))}

    def sensor_last_heard(self, ids: Iterable[str]) -> dict[str, float]:
        """Sensor id -> time of its newest reading, for those ever heard (one field read per sensor)."""
        return {i: float(ts) for i, ts in self._hashes("sensor", ids, ("ts",))}

    def availability(self, kind: str) -> dict[str, tuple[bool, float]]:
        out = {}
        for k, v in self.r.hgetall(self.key("avail", kind)).items():
            state, ts = v.decode().split(" ", 1)
            out[k.decode()] = (state == "online", float(ts))
        return out

    # --- worker heartbeats and shared counters ------------------------------
    def heartbeat(self, worker_id: str, **fields) -> None:
        fields["at"] = time.time()
        self.r.hset(self.key("workers"), worker_id, orjson.dumps(fields))

    def workers(self, max_age_s: float = 15.0) -> dict[str, dict]:
        now = time.time()
        out = {}
        for k, v in self.r.hgetall(self.key("workers")).items():
            d = orjson.loads(v)
            if now - d.get("at", 0) <= max_age_s:
                out[k.decode()] = d
        return out

    def count(self, family: str, label: str, n: int = 1, pipe=None) -> None:
        (pipe or self.r).hincrby(self.key("metrics", family), label, n)

    def counters(self, family: str) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(self.key("metrics", family)).items()}
