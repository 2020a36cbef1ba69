"""The alert engine: turns live events into alerts, fires escalation timers,
confirms arrival by GPS and publishes dispatches over MQTT.

It reads Redis streams with a consumer group, so an event it had read but not
finished before a crash is read again when it comes back (``XREADGROUP`` from
``0`` first: its own pending entries).  Only one engine is active at a time
(a Redis lease), so alerts for one sensor are decided in order.  Timers live in
SQL (``alerts.escalate_at``), so they survive a restart of any process; an
engine that was away catches up, firing each overdue rung once, in order.

Gas events come by the thousand per second at city scale, nearly all of them
normal heartbeats, so they are handled a batch at a time: one HMGET of the
sensors' memories, one SQL query for which of them have an active alert, and
one MULTI of the new memories and the XACK.  A reading whose sensor has no
active alert and that opens nothing changes only the memory; it never touches
SQL.  Everything else (an active alert, an alert to open, an availability
change) takes the per-event path, which re-reads in its own transaction.

Streams read, the first first (each XREADGROUP reads them all, in this order):
    ns:gas:alarms   the priority lane: readings that are not normal or follow one
                    that was not, and availability changes (from ingest)
    ns:gas:events   the other readings: normal after normal, the heartbeats
    ns:arrivals     an assignee's fix inside the alarm's geofence (from ingest)
    ns:outbox       dispatches to publish (from the API)
    ns:geo:events   duplicate / overlap / approach events (from the geo engine)
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import threading
import time
import uuid

import orjson
import paho.mqtt.client as mqtt

from alerts.dispatch import dispatch_payload, dispatch_topic
from alerts.lifecycle import new_alert
from alerts.model import (APPROACH_WARNING, GAS_ALARM, INSPECTOR_OFFLINE, OVERDUE_INSPECTION, SENSOR_FAULT,
                          SENSOR_OFFLINE, AlertState, approach_subject, enterprise_subject, inspector_subject,
                          gps_arrival_note, sensor_subject)
from alerts.overdue import apply_rollup, local_day, overdue_subject
from alerts.rules import (FUTURE_SLACK_S, Decision, SensorMemory, evaluate_gas, evaluate_offline,
                          severity_for)
from data.alert_store import SYSTEM, AlertStore, Conflict
from data.engine_streams import EngineStreams, LeaseLost
from data.errors import INFRA_ERRORS
from data.live import GAS_ALARMS, GAS_EVENTS, GAS_LANES, LOST_PENDING, LOST_UNREAD, reported_offline
from data.registry import Registry
from geo.timefmt import parse_iso_or_epoch
from ingest.client import MqttConnection, publisher_client_id

log = logging.getLogger(__name__)

# "due" is ISO-8601 (geo.timefmt.iso_ms); rows written before it hold epoch seconds.
_DUE = re.compile(r"^level (\d+): (.*) \(unacknowledged; due ([0-9T:.+-]+)\)$")


def log_time(ts: float) -> str:
    """A time as an operator reads it in a log: local ISO date and time, to the millisecond."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts % 1 * 1000):03d}"


def escalation_log_entry(alert_id: int, rec) -> str:
    """One fired escalation in the engine's log: the alert, its new level and audience,
    when it was due and how late it fired; not the history note's epoch seconds."""
    m = _DUE.match(rec.note or "")
    if not m:
        return f"{alert_id} ({rec.note})"
    due = parse_iso_or_epoch(m.group(3))
    if due is None:
        return f"{alert_id} ({rec.note})"
    return f"{alert_id} (level {m.group(1)}: {m.group(2)}; due {log_time(due)}, fired {rec.at - due:+.2f} s)"

# The alarm lane first: a batch of heartbeats (up to READ_COUNT, ~100 ms) is the
# longest an alarm waits for the engine, whatever the backlog of heartbeats.
STREAMS = (*GAS_LANES, "arrivals", "outbox", "geo:events")
# Entries read per stream per XREADGROUP; a gas batch is this many events.
# 500 heartbeats on the fast path take 60-100 ms on two shared cores, so the
# per-batch round trips (read, HMGET, one SQL query, MULTI) are a small share
# (200 drained ~20 % slower).  Not much more: in an alarm storm every event
# takes the per-event path (a few ms each) and the escalation timers wait for
# the whole batch.
READ_COUNT = 500
# While the engine does other work (a batch of heartbeats, escalations, the
# sweeps), the alarm lane is looked at this often (alarms_first): an alarm waits
# for this much of that work and the step under way, not all of it.
ALARM_LOOK_S = 0.025
# The alerts one gas event can change: with none of them active for its
# sensor, a reading that opens nothing needs no SQL (see on_gas_batch).
SENSOR_ALERT_TYPES = (GAS_ALARM, SENSOR_FAULT, SENSOR_OFFLINE)
# Escalation deadlines are checked this often: the ±1 s timer target with margin.
TIMER_TICK_S = 0.25
# Offline sweeps: sensors heartbeat every few minutes, so every 15 s is prompt.
OFFLINE_SWEEP_S = 15.0
# Overdue inspections are rolled up per street per day; counts change slowly.
OVERDUE_EVERY_S = 300.0
# An inspector counts as on duty when heard within this long; on duty and
# silent for INSPECTOR_SILENT_S is inspector_offline (going home is not).
ON_DUTY_WINDOW_S = 2 * 3600.0
INSPECTOR_SILENT_S = 900.0
# check_gas_loss reads at most this many entries to tell how many are left to read.
LOSS_SCAN_MAX = 10_000
# The leadership lease; the leader renews it every third of it, and a standby
# tries to take it every STANDBY_POLL_S.  After a leader dies, a standby leads
# within LEASE_S + STANDBY_POLL_S at most, usually sooner: escalations due
# meanwhile fire that late (p95 <= 5 s after a failover, bench_escalation.py).
LEASE_S = 3.0
STANDBY_POLL_S = 0.5
# While it leads, a thread of its own renews the lease every third of it, as long as
# the loop has moved on within LOOP_STALL_S: a loop slow under load (a batch, a sweep
# at city scale) keeps the lead, a process that died loses it within LEASE_S, and a
# loop stuck this long lets it go.  Renewed only by the loop, the lease ran out under
# a busy engine every few seconds; since its reads are fenced by the lease, each time
# it stopped, took the lease back and reloaded (bench_screens at city scale, load
# average 15 on two cores: 54 times in three minutes, alarms unseen for 15 s).
LOOP_STALL_S = 30.0
# QoS 1 publishes (escalations, dispatches) in flight to the broker at once.
PUBLISH_INFLIGHT = 1000


def _received_at(f: dict) -> float | None:
    """When the ingest received a gas event (its ``rx``; None in entries written before it)."""
    return float(f["rx"]) if f.get("rx") else None


def _time_mark(t: float) -> str:
    """A reading time as a mark of ``AlertStore.first_time`` (a stream id: microseconds-0)."""
    return f"{round(t * 1e6)}-0"


def _one_at_a_time(job):
    """The off-the-loop jobs (``AlertEngine._off_the_loop``) take turns with direct
    calls of themselves (a test's, an operator's): each reads "is there an open
    alert?" and then inserts one, which is not serialisable on its own (SQLite reads
    outside the write transaction; PostgreSQL's read committed lets two readers both
    see none).  Between engines the leader lease keeps a second from running them."""

    @functools.wraps(job)
    def run(self, now: float) -> None:
        with self._job_locks[job.__name__]:
            job(self, now)

    return run


class AlertEngine:
    # engine: the SQLAlchemy engine, redis_client: the Redis client; both handed on to
    # data/ (docs/architecture.md: only data/ imports those libraries).
    def __init__(self, settings, engine, redis_client, store: AlertStore, mqtt_url: str):
        self.settings = settings
        self.engine = engine
        self.store = store
        self.live = store.live
        self.registry = Registry(engine, settings.registry_refresh_s)
        self.id = f"engine-{uuid.uuid4().hex[:8]}"
        self.consumer = "engine"  # stable: a restarted engine re-reads its own pending entries
        # Reads and memories are the lease holder's only (data/engine_streams.py).
        self.streams = EngineStreams(redis_client, self.live, STREAMS, self.consumer, holder=self.id)
        self.mqtt_url = mqtt_url
        self.conn: MqttConnection | None = None
        self._hazards = None  # data.hazards_store.HazardStore, made on the first sweep
        self._mark_readings = settings.redis_replicas_to_wait > 0  # see _gas_reading
        self._stop = threading.Event()
        # The renewal thread stops after the loop: a loop finishing its step after stop()
        # still holds the lease (it ran out under a step longer than LEASE_S, and the
        # fenced read then logged "no longer active" at every slow Ctrl-C).
        self._renew_stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewer: threading.Thread | None = None
        self._leading = False  # the loop's word: it leads (the renewer renews only then)
        self._alive_at = time.monotonic()  # when the loop last moved on (see LOOP_STALL_S)
        # sensor id -> newest reading time this engine knows of, for the offline
        # sweep: kept from the gas events it reads anyway, and merged with
        # Redis's (one read of every sensor's ts) at the first sweep and after
        # it becomes the leader again.  Reading 50k sensor hashes every sweep
        # held the engine, and the alarms behind it, for ~0.5 s at city scale.
        self._heard: dict[str, float] = {}
        self._heard_synced = False
        self._deaf_logged: set[str] = set()  # topics whose silence was logged as the ingest's (_deaf)
        self._jobs: dict[str, threading.Thread] = {}  # see _off_the_loop
        self._job_locks = {"roll_up_overdue": threading.Lock(), "sweep_inspectors": threading.Lock()}  # see _one_at_a_time
        self._block_ms: int | None = None
        self._alarms_read_at = 0.0  # time.monotonic() when the alarm lane was last read (alarms_first)
        self._backlog = True  # reading the engine's own pending entries (see run)
        self.handlers = {
            **{lane: self.on_gas_event for lane in GAS_LANES},
            "arrivals": self.on_arrival,
            "outbox": self.on_outbox,
            "geo:events": self.on_geo_event,
        }

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        # Publish only: a client id of its own per process, in a clean session.
        # One shared id (every ingest process runs an engine) made the broker
        # drop each holder for the next, several times a second.
        self.conn = MqttConnection(self.mqtt_url, publisher_client_id(s.mqtt_client_id, "alerts"), lambda p: [],
                                   lambda m: None, protocol=s.mqtt_protocol, manual_ack=False, clean=True,
                                   keepalive_s=s.mqtt_keepalive_s, reconnect_max_s=s.mqtt_reconnect_max_s,
                                   tls_ca=s.mqtt_tls_ca, tls_insecure=s.mqtt_tls_insecure,
                                   fast_path=s.mqtt_fast_path)
        # paho keeps 20 QoS 1 publishes in flight by default: thousands of escalations
        # due at once then wait on PUBACK round trips (bench_escalation.py).
        self.conn.client.max_inflight_messages_set(PUBLISH_INFLIGHT)
        self.conn.start()
        self._thread = threading.Thread(target=self.run, name="alert-engine", daemon=True)
        self._thread.start()
        self._renewer = threading.Thread(target=self._keep_lease, name="alert-engine-lease", daemon=True)
        self._renewer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        self._renew_stop.set()
        if self._renewer:
            self._renewer.join(10)
        for t in list(self._jobs.values()):
            t.join(10)
        if self.conn:
            self.conn.stop()

    def _ensure_groups(self) -> None:
        self.streams.ensure_groups()

    def _lease(self) -> bool:
        return self.streams.lease(self.id, LEASE_S)

    def _keep_lease(self) -> None:
        """The lease renewed while the loop leads and moves on (LOOP_STALL_S)."""
        stalled = False
        while not self._renew_stop.wait(LEASE_S / 3):
            if not self._leading:
                continue
            if time.monotonic() - self._alive_at > LOOP_STALL_S:
                if not stalled:
                    log.error("alert engine %s: its loop has not moved on for %.0f s; the lease is let go",
                              self.id, LOOP_STALL_S)
                stalled = True
                continue
            stalled = False
            try:
                self.streams.renew(self.id, LEASE_S)
            except INFRA_ERRORS:
                pass  # Redis away: the loop sees it too; the lease runs out or is renewed next time

    def run(self) -> None:
        backlog = True  # first our own pending entries, then new ones
        next_timer = next_sweep = next_lease = next_overdue = 0.0
        leader = False
        while not self._stop.is_set():
            try:
                now = self._alive_at = time.monotonic()
                if now >= next_lease:
                    was = leader
                    leader = self._leading = self._lease()
                    if leader and not was:
                        log.info("alert engine %s is active", self.id)
                        self._backlog = True  # no alarms_first before the groups and the backlog
                        # The deadlines first: a takeover happens because a leader died,
                        # and the escalations due meanwhile are the late ones.
                        self.fire_escalations(time.time())
                        next_timer = now + TIMER_TICK_S
                        self.registry.load()
                        self._ensure_groups()
                        self.check_gas_loss()
                        backlog = True
                        self._heard_synced = False  # another engine may have read events meanwhile
                    next_lease = now + (LEASE_S / 3 if leader else STANDBY_POLL_S)
                if not leader:
                    self._stop.wait(STANDBY_POLL_S)
                    continue
                if now >= next_timer:
                    self.fire_escalations(time.time())
                    next_timer = now + TIMER_TICK_S
                if now >= next_sweep:
                    self.registry.maybe_refresh()
                    self.check_gas_loss()
                    self.alarms_first()
                    self.sweep_offline(time.time())
                    self._off_the_loop("inspector-sweep", self.sweep_inspectors)
                    self.alarms_first()
                    self.sweep_hazards(time.time())
                    next_sweep = now + OFFLINE_SWEEP_S
                if now >= next_overdue:
                    self._off_the_loop("overdue-rollup", self.roll_up_overdue)
                    next_overdue = now + OVERDUE_EVERY_S
                backlog = self.read_streams(backlog)
            except LeaseLost as e:
                # Another engine leads (or the lease ran out under this one): stop
                # at once; what was read and not acked is the next leader's first read.
                log.warning("alert engine %s is no longer active: %s", self.id, e)
                leader = self._leading = False
                next_lease = 0.0
            except INFRA_ERRORS as e:
                log.warning("alert engine waits: %s", e)
                leader = self._leading = False
                self._stop.wait(1.0)
            except Exception:  # noqa: BLE001 - the engine must keep running
                log.exception("alert engine loop error")
                self._stop.wait(0.5)

    def read_streams(self, backlog: bool) -> bool:
        if self._block_ms is None:  # under the client's socket timeout (data/redis_wait.py)
            self._block_ms = self.streams.block_ms(int(TIMER_TICK_S * 1000))
        block = None if backlog else self._block_ms
        self._backlog = backlog
        resp = self.streams.read(backlog, READ_COUNT, block)
        self._alarms_read_at = time.monotonic()
        got = 0
        for stream, entries in resp:
            name = self.streams.name(stream)
            got += len(entries)
            if name in GAS_LANES:
                self.on_gas_batch(stream, entries)
                continue
            handler = self.handlers[name]
            for entry_id, fields in entries:
                if not fields:  # deleted entry in the pending list
                    log.warning("alert engine: %s entry %s was deleted before it was handled", name, entry_id)
                    self.streams.ack(stream, entry_id)
                    continue
                self._alive_at = time.monotonic()
                try:
                    handler({k.decode(): v.decode() for k, v in fields.items()})
                except INFRA_ERRORS:
                    raise  # not acked: read again later
                except Exception:  # noqa: BLE001 - one bad event must not stop the engine
                    log.exception("alert engine: %s entry %s failed; skipped", name, entry_id)
                self.streams.ack(stream, entry_id)
        self._backlog = backlog and got > 0
        return self._backlog

    # --- gas ------------------------------------------------------------------------
    def on_gas_batch(self, stream: bytes, entries: list) -> None:
        """Gas events in stream order, with SQL only where an alert may change.

        The fast path: the sensor has no active gas_alarm, sensor_fault or
        sensor_offline (per one query for the whole batch), and the rules, asked
        with no open alert, open nothing.  Then only its memory changes (the
        heard-again check of ``_availability`` needs an active offline alert).
        Anything else goes through ``_gas_reading`` as one event would, fed the
        memory as the earlier events of this batch left it; its subject counts
        as active from then on.  Only this engine opens these alerts; people
        only move them on, so "active" in the prefetch may be stale, which
        merely sends an event down the per-event path.

        Acks: an entry handled (or bad: logged) is acked with the memories, in
        one MULTI; the one that raised an infra error is not, so it is read
        again.  After a per-event-path entry the batch so far is written and
        acked at once, as a lone event would be, so that a crash does not
        count an alarm twice.
        """
        events = [(entry_id, {k.decode(): v.decode() for k, v in fields.items()} if fields else None)
                  for entry_id, fields in entries]
        deleted = sum(1 for _, f in events if f is None)
        if deleted:
            log.error("alert engine: %d gas events were deleted from the stream before they were handled "
                      "(lost: alarms among them open no alert)", deleted)
            self.live.count_lost(LOST_PENDING, deleted)
        batch = self._gas_prefetch(stream, events)
        # Heartbeats look at the alarm lane as they go (alarms_first); when
        # alarms came, the batch's entries of the alarms' sensors go first
        # (catch_up), what the heartbeats did so far is written, and the rest of
        # them are read afresh after the alarms (which may have changed their
        # alerts).  Each sensor's events are applied in stream order, as
        # between two reads.
        look = batch.lane == GAS_EVENTS  # (alarms_first itself does not look during the backlog)
        i = 0

        def catch_up(alarmed: set[str]) -> None:
            # This batch's entries of the alarms' sensors were read before the
            # alarms, so they are older: they go first, and each sensor's events
            # stay in stream order (an older reading after a newer one would
            # count as applied before: the marks of _gas_reading).
            rest = events[i:]
            for entry_id, f in rest:
                if f is not None and f.get("sensor") in alarmed:
                    self._gas_entry(batch, entry_id, f)
            events[i:] = [e for e in rest if e[1] is None or e[1].get("sensor") not in alarmed]
            self._flush_gas(batch)

        try:
            while i < len(events):
                entry_id, f = events[i]
                i += 1
                self._gas_entry(batch, entry_id, f)
                if look and i < len(events) and self.alarms_first(catch_up):
                    batch = self._gas_prefetch(stream, events[i:])
        except (*INFRA_ERRORS, LeaseLost):
            try:
                self._flush_gas(batch)  # what was handled stays handled
            except LeaseLost:
                pass  # acked; the memories are the new leader's
            except INFRA_ERRORS:
                log.warning("alert engine: %d handled gas events not acked; they are read again",
                            len(batch.handled))
            raise
        self._flush_gas(batch)

    def _gas_entry(self, batch: _GasBatch, entry_id: bytes, f: dict | None) -> None:
        """One entry of a gas batch: applied (or bad: logged), then counted as handled."""
        self._alive_at = time.monotonic()
        slow = False
        if f is not None:  # None: a deleted entry in the pending list
            try:
                slow = self._gas_step(f, batch, entry_id.decode())
            except INFRA_ERRORS:
                raise  # not acked: read again later
            except Exception:  # noqa: BLE001 - one bad event must not stop the engine
                log.exception("alert engine: %s entry %s failed; skipped", batch.lane, entry_id)
        batch.handled.append(entry_id)
        if slow:
            self._flush_gas(batch)

    def _gas_prefetch(self, stream: bytes, events: list) -> _GasBatch:
        """A batch for ``events``: their sensors' memories and active alerts, read once."""
        batch = _GasBatch(stream, self.streams.name(stream))
        sids = list(dict.fromkeys(f["sensor"] for _, f in events if f and "sensor" in f))
        if sids:
            batch.raw = self.streams.memories(sids)
            batch.active = self.store.active_subjects(SENSOR_ALERT_TYPES, [sensor_subject(x) for x in sids])
        return batch

    def alarms_first(self, before=None) -> bool:
        """Alarms that came in while the engine does other work, handled now; True if any.

        The engine does one thing at a time, and an alarm waited for whatever it
        was doing: a batch of heartbeats (0.1-0.3 s at ten times a city on two
        cores), an escalation's transaction (0.03-0.4 s), the offline sweep
        opening a street's offline alerts one transaction each (up to 1 s)
        (docs/benchmarks.md section 19).  So that work calls this between its
        steps, and when ALARM_LOOK_S has passed since the alarm lane was last
        read, it is read (one non-blocking XREADGROUP) and what came is handled
        before the next step.  ``before(sensors)`` runs first when alarms came,
        with the alarms' sensors (the heartbeat batch applies its entries of
        those sensors and writes what it did so far).  Not while the engine reads
        its own pending entries (the backlog, after a start or a takeover): new
        alarms would go before older pending ones."""
        if self._backlog or time.monotonic() - self._alarms_read_at < ALARM_LOOK_S:
            return False
        resp = self.streams.read_new(GAS_ALARMS, READ_COUNT)
        self._alarms_read_at = time.monotonic()
        if not resp:
            return False
        if before is not None:
            before({f[b"sensor"].decode() for _, entries in resp for _, f in entries if f and b"sensor" in f})
        for stream, entries in resp:
            self.on_gas_batch(stream, entries)
        return True

    def _gas_step(self, f: dict, batch: _GasBatch, entry_id: str | None = None) -> bool:
        """One event of a batch; True when it took the per-event path."""
        sid = f["sensor"]
        info = self._sensor_info(sid)
        if info is None:
            return False
        ts = float(f["ts"])
        level = f["level"]
        subject = sensor_subject(sid)
        if level in ("online", "offline"):
            online = level == "online"
            if subject not in batch.active and not _changes(self._offline_decision(info, ts, online, None)):
                # No offline alert to mark back, none to open: nothing for SQL.  When a
                # broker restarts, every detector says "online" at once in the alarm lane,
                # and a transaction each (10-20 ms) held the alarms behind them for minutes.
                return False
            self._availability(info, ts, online=online, entry_id=entry_id, lane=batch.lane)
            batch.active.add(subject)
            return True
        self._heard_at(sid, ts)
        lel = float(f["lel"]) if f.get("lel") else None
        rx = _received_at(f)
        memory = batch.memory(sid)
        if subject not in batch.active:
            d = self._evaluate_gas(info, memory, level, lel, ts, None, None, rx)
            if not _changes(d):
                if d.memory is not None:
                    batch.remember(sid, d.memory)
                return False
        self._gas_reading(info, memory, level, lel, ts, lambda m: batch.remember(sid, m), entry_id,
                          late=f.get("late") != "0", lane=batch.lane, received_at=rx)
        batch.active.add(subject)
        return True

    def _flush_gas(self, batch: _GasBatch) -> None:
        """The batch's new memories and its acks so far, together or not at all."""
        if not batch.dirty and not batch.handled:
            return
        self.streams.remember_and_ack({sid: batch.known[sid].to_json() for sid in batch.dirty}, batch.stream,
                                      batch.handled)
        batch.dirty.clear()
        batch.handled.clear()

    def on_gas_event(self, f: dict, entry_id: str | None = None, lane: str = GAS_EVENTS) -> None:
        """One gas event on its own: everything read, decided and written for it alone
        (``entry_id``: its entry in the stream ``lane``)."""
        sid = f["sensor"]
        info = self._sensor_info(sid)
        if info is None:
            return
        ts = float(f["ts"])
        level = f["level"]
        if level in ("online", "offline"):
            self._availability(info, ts, online=level == "online", entry_id=entry_id, lane=lane)
            return
        self._heard_at(sid, ts)
        lel = float(f["lel"]) if f.get("lel") else None
        raw = self.streams.memory(sid)
        memory = SensorMemory.from_json(raw) if raw else None
        self._gas_reading(info, memory, level, lel, ts, lambda m: self.streams.set_memory(sid, m.to_json()),
                          entry_id, late=f.get("late") != "0", lane=lane,
                          received_at=_received_at(f))

    def _sensor_info(self, sid: str):
        """The sensor's registry entry; None (logged and counted) for one SQL does not know.

        The ingest let the event in because its registry had the sensor, so a miss
        here is most often a sensor imported a moment ago: reload at once, even within
        MIN_RELOAD_INTERVAL_S of the last load when SQL has it (that load may have
        read SQL just before the import committed), as the ingest does."""
        reg = self.registry
        info = reg.sensors.get(sid)
        if info is None:
            if not reg.maybe_refresh(unknown_seen=True) and reg.any_registered(sensors=[sid]):
                reg.load()
            info = reg.sensors.get(sid)
            if info is None:
                log.warning("alert engine: gas event for sensor %r, which is not registered (deleted since the "
                            "ingest took it?); not applied", sid)
                self.live.count_engine_skipped("unknown_sensor")
        return info

    def _evaluate_gas(self, info, memory: SensorMemory | None, level: str, lel: float | None, ts: float,
                      gas: AlertState | None, fault: AlertState | None, received_at: float | None) -> Decision:
        return evaluate_gas(memory, level, lel, ts, gas, self.settings.flap_window_s, sensor_id=info.id,
                            open_fault=fault, enterprise_id=info.enterprise_id, street_id=info.street_id,
                            grid_id=info.grid_id, received_at=received_at)

    def _gas_reading(self, info, memory: SensorMemory | None, level: str, lel: float | None, ts: float,
                     remember, entry_id: str | None = None, late: bool = True, lane: str = GAS_EVENTS,
                     received_at: float | None = None) -> None:
        """A reading against the sensor's alerts as they are now, in one transaction.

        ``memory`` is the sensor's memory before this reading; ``remember`` stores
        the next one.  ``entry_id``: its entry in ns:``lane``, marked applied in the
        same transaction; an entry already applied (read again after a crash
        between the commit and the XACK) changes no alert, only the memory.

        With Redis replicas (``redis_replicas_to_wait``), a reading that is not
        ``late`` is also marked by its own time: after a failover the ingest adds
        again what the old master may not have passed on (ApplyLiveState), as a new
        entry, and a reading the engine had already applied from the old master is
        then known by its time (a sensor's readings that are not late come in
        strictly increasing time) and not counted twice.  The one exception is a
        reading of the present after a fast clock's (``received_at``,
        alerts.rules.stale_future): its time moves the mark back.
        """
        sid = info.id
        subject = sensor_subject(sid)
        changed: list[int] = []
        replayed = offline = False

        def tx(conn):
            nonlocal replayed, offline
            changed.clear()
            replayed = entry_id is not None and not self.store.first_time(conn, lane, sid, entry_id)
            if self._mark_readings and not late and not replayed:
                edge = None if received_at is None else _time_mark(received_at + FUTURE_SLACK_S)
                replayed = not self.store.first_time(conn, "gas:reading", sid, _time_mark(ts), rewind_above=edge)
            found = self.store.active_of(conn, SENSOR_ALERT_TYPES, subject)
            gas, fault, offline = found.get(GAS_ALARM), found.get(SENSOR_FAULT), SENSOR_OFFLINE in found
            versions = {x[0].id: x[1] for x in (gas, fault) if x is not None}
            d = self._evaluate_gas(info, memory, level, lel, ts, gas[0] if gas else None,
                                   fault[0] if fault else None, received_at)
            if replayed:
                return d
            now = time.time()
            if d.new_alert is not None:
                changed.append(self.store.insert(conn, d.new_alert, d.new_record, now).id)
            for upd in d.updated:
                self.store.update(conn, self.store.ladder.arm(upd, now), versions[upd.id], [], now)
                changed.append(upd.id)
            return d

        d = self.store.run_tx(tx)
        if changed:
            # The screens first: the memory and the heard-again check below can wait.
            self.store.notify(changed)
        if replayed:
            log.info("alert engine: gas event %s for %s was applied before; not counted again", entry_id, sid)
        if d.memory is not None:
            remember(d.memory)
        if offline:  # a still-open offline alert learns the sensor is heard again (only this engine opens one)
            self._availability(info, ts, online=True, heard=True)
        if changed and d.new_alert is not None:
            log.info("alert opened: %s for %s (%s)", d.new_alert.type, sid, d.reason)

    def _availability(self, info, ts: float, online: bool, heard: bool = False, entry_id: str | None = None,
                      lane: str = GAS_EVENTS) -> None:
        """``entry_id``: the entry in ns:``lane`` (an availability message), applied
        once as in ``_gas_reading``."""
        subject = sensor_subject(info.id)

        def tx(conn):
            if entry_id is not None and not self.store.first_time(conn, lane, info.id, entry_id):
                return None  # applied before the crash that kept it from being acked
            cur = self.store.active(conn, SENSOR_OFFLINE, subject)
            if heard and (cur is None or ts <= float((cur[0].details or {}).get("last_seen") or 0.0)):
                # Not heard *again*: a reading no newer than what the offline alert
                # saw last (a heartbeat read after the last will, from the other lane
                # or delivered late) says nothing about now.
                return None
            d = self._offline_decision(info, ts, online, cur[0] if cur else None)
            ids = []
            if d.new_alert is not None:
                ids.append(self.store.insert(conn, d.new_alert, d.new_record, time.time()).id)
            for upd in d.updated:
                self.store.update(conn, upd, cur[1], [], time.time())
                ids.append(upd.id)
            return ids

        ids = self.store.run_tx(tx)
        if ids:
            self.store.notify(ids)

    def _offline_decision(self, info, ts: float, online: bool, cur):
        """What the sensor's availability message at ``ts`` does to its sensor_offline
        alert ``cur`` (None: it has none)."""
        heartbeat = info.heartbeat_s or self.settings.sensor_heartbeat_s
        return evaluate_offline(SENSOR_OFFLINE, info.id, ts, time.time(), heartbeat, self.settings.sensor_offline_after,
                                cur, online=online,
                                enterprise_id=info.enterprise_id, street_id=info.street_id, grid_id=info.grid_id)

    def check_gas_loss(self) -> None:
        """Entries of the gas streams deleted before this engine's group read them
        (the writer's memory ceiling, an operator's XTRIM, a Redis that came back
        without them): logged, counted and stamped (``/metrics``, health).

        Redis counts every entry ever added and the group every entry it read;
        the difference less the entries still there after the group's last
        delivered one is what it will never read.  That stays in the counters
        for good, so the count noticed so far is kept (``ns:events_lost``) and
        only a rise is new loss, also across restarts.
        """
        for missing, seen, key, last in self.streams.gas_events_deleted_unread(LOSS_SCAN_MAX):
            log.error("alert engine: %d gas events were deleted from %s before the engine read them (it had "
                      "read up to %s): alarms among them open no alert", missing - seen, key, last)
            self.live.count_lost(LOST_UNREAD, missing - seen)

    def _heard_at(self, sid: str, ts: float) -> None:
        if ts > self._heard.get(sid, 0.0):
            self._heard[sid] = ts

    def sweep_offline(self, now: float) -> None:
        """Sensors silent for N heartbeats are offline, never "safe".

        Sensors never heard from are left alone, as are those whose offline alert
        is open and not yet marked back (nothing would change; one query tells
        which).  A sensor marked back and silent again goes through
        ``_availability`` ("offline again").
        """
        if not self._heard_synced:
            for sid, ts in self.live.sensor_last_heard(self.registry.sensors).items():
                self._heard_at(sid, ts)
            self._heard_synced = True
        since = self._listening_since("sensors")
        if since is None:
            self._deaf("sensors")
            return
        sensors = self.registry.sensors
        default_hb = self.settings.sensor_heartbeat_s
        after = self.settings.sensor_offline_after

        def is_silent(info, ts: float) -> bool:
            # Silent since it was last heard, or since the ingest could hear it again.
            return now - max(ts, since) > (info.heartbeat_s or default_hb) * after

        silent = []
        for sid, ts in self._heard.items():
            info = sensors.get(sid)
            if info is not None and is_silent(info, ts):
                silent.append((info, ts))
        if not silent:
            return
        away = self.store.active_subjects([SENSOR_OFFLINE], [sensor_subject(i.id) for i, _ in silent],
                                          still_away=True)
        for info, ts in silent:
            if sensor_subject(info.id) in away:
                continue
            self.alarms_first()  # each is a transaction: alarms that came meanwhile go first
            ts = self._heard.get(info.id, ts)
            if not is_silent(info, ts):
                continue  # heard meanwhile (an alarm of its own, handled by alarms_first)
            self._availability(info, ts, online=False)

    def _listening_since(self, topics: str) -> float | None:
        """Since when the devices of ``topics`` ("sensors", "locations") have been heard
        without a break: the earliest moment from which an ingest worker that takes
        them (a live heartbeat) has been subscribed at the broker.  None when none is:
        the broker is away, or the ingest.  A device's silence is then the system's,
        not the device's, and it counts only from when the ingest listens again: a
        broker away for longer than the detectors' offline time would otherwise have
        opened an offline alert for every detector of the city at once."""
        # An older worker's heartbeat has no listening_since: listening for long, as before.
        since = [w.get("listening_since", 0.0) for w in self.live.workers().values()
                 if w.get("topics", "all") in ("all", topics) and w.get("connected")
                 and w.get("listening_since", 0.0) is not None]
        if not since:
            return None
        self._deaf_logged.discard(topics)
        return min(since)

    def _deaf(self, topics: str) -> None:
        if topics not in self._deaf_logged:
            self._deaf_logged.add(topics)
            log.warning("alert engine: no ingest worker is listening to the %s' topics at the broker; their "
                        "silence counts only from when one does again (no offline alerts meanwhile)", topics)

    def sweep_hazards(self, now: float) -> None:
        """Overdue hazards escalate (docs/alerts.md, hazard_overdue): one alert per
        overdue hazard, for the street, then the district; resolved when rectified."""
        if self._hazards is None:
            from data.hazards_store import HazardStore

            self._hazards = HazardStore(self.engine, self.settings)
        changed = self.store.sync_hazard_overdue(self._hazards.overdue(now), now,
                                                 self.settings.hazard_escalate_after_d * 86400.0)
        if changed:
            self.store.notify(changed)
            log.info("hazard_overdue alerts changed: %s", ", ".join(map(str, changed[:10])))

    @_one_at_a_time
    def sweep_inspectors(self, now: float) -> None:
        """inspector_offline: an inspector on duty whose phone has gone quiet (or sent its last will)."""
        # Each inspector's last fix time only, and one query for every inspector_offline
        # alert still active (there are few), not one naming each inspector: at ten
        # times a city, reading 20,000 whole fixes and naming 20,000 subjects were a
        # fifth of the engine's CPU, on a thread that held the interpreter while the
        # alarms waited (docs/benchmarks.md section 25).
        since = self._listening_since("locations")
        if since is None:
            self._deaf("locations")
            return
        heard = self.live.inspector_last_heard(list(self.registry.inspectors))
        avail = self.live.availability("inspector")
        # An inspector on duty, heard lately and with no alert needs no transaction (at
        # city scale 2,000 of them every sweep held the engine, and so the gas alarms
        # behind it, for seconds).
        flagged = self.store.active_subjects([INSPECTOR_OFFLINE], None)
        for iid, ts in heard.items():
            if now - ts > ON_DUTY_WINDOW_S:
                continue  # off duty: silence is expected
            lwt_offline = reported_offline(avail.get(iid), ts)
            subject = inspector_subject(iid)
            quiet = now - max(ts, since) > INSPECTOR_SILENT_S  # since the ingest could hear the phone
            if subject not in flagged and not (quiet or lwt_offline):
                continue  # the transaction below would find nothing to do

            def tx(conn, iid=iid, ts=ts, lwt_offline=lwt_offline, subject=subject, quiet=quiet):
                cur = self.store.active(conn, INSPECTOR_OFFLINE, subject)
                silent = quiet or lwt_offline
                if not silent and (cur is None or now - ts > INSPECTOR_SILENT_S):
                    return None  # nothing to open; not heard again either (or quiet only while the ingest was away)
                d = evaluate_offline(INSPECTOR_OFFLINE, iid, ts, now, INSPECTOR_SILENT_S, 1,
                                     cur[0] if cur else None, online=False if lwt_offline else None)
                ids = []
                if d.new_alert is not None:
                    ids.append(self.store.insert(conn, dataclasses.replace(d.new_alert, inspector_id=iid),
                                                 d.new_record, now).id)
                for upd in d.updated:
                    self.store.update(conn, upd, cur[1], [], now)
                    ids.append(upd.id)
                return ids

            ids = self.store.run_tx(tx)
            if ids:
                self.store.notify(ids)

    def _off_the_loop(self, name: str, job) -> None:
        """``job(now)`` in a thread of its own, unless its previous run is still going.

        Two jobs run so, as they would hold the loop and the gas alarms behind it:
        the overdue roll-up reads every enterprise's last visit (~0.2 s at city
        scale), and the inspector sweep reads every inspector's last fix and asks
        SQL which have an inspector_offline alert (about half a second every sweep
        at ten times a city's 2,000 inspectors, bench/bench_overload.py).  Each
        touches only its own alert type, which nothing else in the engine writes
        (people's actions on them are versioned, as everywhere)."""
        running = self._jobs.get(name)
        if running is not None and running.is_alive():
            return

        def run():
            try:
                job(time.time())
            except Exception:  # noqa: BLE001 - tried again at the next interval
                log.exception("%s failed", name)

        self._jobs[name] = threading.Thread(target=run, name=name, daemon=True)
        self._jobs[name].start()

    @_one_at_a_time
    def roll_up_overdue(self, now: float) -> None:
        """One overdue_inspection alert per street per day, updated as counts change; the
        day's first resolves the street's open ones of earlier days (``superseded``)."""
        from data.geo_queries import overdue_counts

        day = local_day(now)
        counts = overdue_counts(self.engine, self.settings.interval_days(), now)
        changed = []
        for street_id, by_colour in counts.items():
            if not street_id:
                continue
            subject = overdue_subject(street_id, day)

            def tx(conn, street_id=street_id, by_colour=by_colour, subject=subject):
                cur = self.store.active(conn, OVERDUE_INSPECTION, subject)
                res = apply_rollup(street_id, day, by_colour, now, cur[0] if cur else None)
                if res is None:
                    return None
                alert, rec = res
                if rec is not None:  # the day's first: it supersedes the street's earlier days' ones
                    ids = self.store.supersede_overdue(conn, street_id, subject, day, now)
                    return [self.store.insert(conn, alert, rec, now).id, *ids]
                self.store.update(conn, alert, cur[1], [], now)
                return [alert.id]

            changed += self.store.run_tx(tx) or []
        if changed:
            self.store.notify(changed)

    # --- timers -------------------------------------------------------------------
    def fire_escalations(self, now: float) -> None:
        """Every escalation due at ``now``, in batches of one transaction each
        (AlertStore.escalate_due), until none is left; then the screens and MQTT."""
        prefix = self.settings.mqtt_prefix
        more = True
        while more and not self._stop.is_set():
            self.alarms_first()
            try:
                fired, more = self.store.escalate_due(now)
            except Conflict as e:  # someone acted on one of them meanwhile: all again at the next tick
                log.info("escalations deferred: %s", e)
                return
            if not fired:
                return
            self.store.notify([alert_id for alert_id, _ in fired])
            for alert_id, records in fired:
                for rec in records:
                    self.publish(f"{prefix}/v1/alerts/{alert_id}/escalation",
                                 {"alert_id": alert_id, "note": rec.note, "at": rec.at}, retain=False)
            log.warning("%d alert(s) escalated: %s", len(fired),
                        ", ".join(escalation_log_entry(a, rs[-1]) for a, rs in fired[:5])
                        + (" ..." if len(fired) > 5 else ""))

    # --- arrivals, outbox, geo ------------------------------------------------------------
    def on_arrival(self, f: dict) -> None:
        alert_id = int(f["alert_id"])
        note = gps_arrival_note(f["distance_m"], f["ts"])
        try:
            self.store.act(alert_id, "arrive", SYSTEM, note=note, at=float(f["ts"]))
        except (Conflict, LookupError) as e:
            log.info("arrival for alert %s not applied: %s", alert_id, e)
        except Exception as e:  # noqa: BLE001 - TransitionNotAllowed: already on scene or resolved
            log.info("arrival for alert %s not applied: %s", alert_id, e)

    def on_outbox(self, f: dict) -> None:
        task = orjson.loads(f["task"])
        payload = dispatch_payload(task["task_id"], task["kind"], task["enterprise_id"], task["name"], task["lat"],
                                   task["lon"], task["reason"], task["issued_at"], task["issued_by"])
        # paho keeps QoS 1 publishes made while disconnected and sends them on reconnect.
        self.publish(dispatch_topic(self.settings.mqtt_prefix, task["inspector_id"]), payload, qos=1)

    def on_geo_event(self, f: dict) -> None:
        """duplicate_visit / overlap_now / approach_warning from the geo engine: one open alert each."""
        e = orjson.loads(f["e"])
        kind, eid = e["type"], e["enterprise_id"]
        if kind == APPROACH_WARNING:
            subject, inspector = approach_subject(e["inspector_id"], eid), e["inspector_id"]
        else:
            subject, inspector = enterprise_subject(eid), e.get("inspector_id")
        ent = self.store.enterprise_area(eid)
        at = float(e.get("at") or time.time())

        def tx(conn):
            cur = self.store.active(conn, kind, subject)
            if cur is not None:
                return None  # one open alert per (type, subject); the dispatcher already sees it
            alert, rec = new_alert(kind, subject, severity=severity_for(kind), at=at, enterprise_id=eid,
                                   inspector_id=inspector, street_id=ent[0] if ent else None,
                                   grid_id=ent[1] if ent else None,
                                   details={k: v for k, v in e.items() if k not in ("type", "at")})
            return self.store.insert(conn, alert, rec, time.time()).id

        alert_id = self.store.run_tx(tx)
        if alert_id:
            self.store.notify([alert_id])
            log.info("alert opened: %s at %s", kind, eid)

    def publish(self, topic: str, payload: dict, qos: int = 1, retain: bool = False) -> None:
        if self.conn is None:
            return
        info = self.conn.client.publish(topic, orjson.dumps(payload), qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS and info.rc != mqtt.MQTT_ERR_NO_CONN:
            log.warning("publish to %s failed: %s", topic, info.rc)


def _changes(d) -> bool:
    """The decision opens or changes an alert."""
    return d.new_alert is not None or bool(d.updated)


@dataclasses.dataclass(slots=True)
class _GasBatch:
    """What one gas batch knows and has yet to write."""

    stream: bytes
    lane: str  # the stream's name: gas:alarms or gas:events
    raw: dict[str, bytes | None] = dataclasses.field(default_factory=dict)  # memories as read (HMGET)
    active: set[str] = dataclasses.field(default_factory=set)  # subjects that may have an active alert
    known: dict[str, SensorMemory | None] = dataclasses.field(default_factory=dict)  # memories now
    dirty: set[str] = dataclasses.field(default_factory=set)  # sensors whose memory is not yet written
    handled: list = dataclasses.field(default_factory=list)  # entry ids not yet acked

    def memory(self, sid: str) -> SensorMemory | None:
        if sid not in self.known:
            raw = self.raw.get(sid)
            self.known[sid] = SensorMemory.from_json(raw) if raw else None
        return self.known[sid]

    def remember(self, sid: str, memory: SensorMemory) -> None:
        self.known[sid] = memory
        self.dirty.add(sid)
