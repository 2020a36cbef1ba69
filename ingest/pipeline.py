"""The ingest pipeline: one ordered list of steps, readable top to bottom.

    Decode -> Validate -> ResolveDevice -> ClassifyGas -> ApplyLiveState
           -> DetectArrival -> DetectVisits -> WriteHistory -> StoreStreams

Each step takes the batch's surviving items and returns those that go on.  A
step drops an item with a named reason: a *rejection* (bad input) goes to the
dead-letter store with its reason code; a *drop* (a duplicate msg_id, a
message ignored by design) is only counted, under its reason
(``Batch.dropped``, ``anjian_messages_ignored_total``).  Every message a
worker receives ends in exactly one of three counts: applied (``Batch.kinds``,
counted after the last step), dead-lettered (``Batch.rejected``) or ignored
(``Batch.dropped``); docs/mqtt.md, "Accounting".

Failure handling:
- A step that raises on ordinary data is re-run item by item; the item that
  raises is dead-lettered as ``step_error`` and the rest flow on.
- A step that raises because an outside service is down (Redis, SQL) stops the
  batch where it is.  The worker retries the batch from that step later, so a
  Redis or database restart loses nothing and applies nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace

from alerts.rules import gas_level
from data.errors import INFRA_ERRORS
from data.history import DeadLetterRecord, HistoryWriter
from data.live import APPLIED, DUPLICATE, LiveState
from data.registry import Registry
from geo.coords import haversine_m
from geo.types import Availability, GasReading, Ping, StreamNotice
from ingest.decode import Ignored, Rejected, TopicScheme, decode_or_ignored
from ingest.validate import Limits, validate

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Item:
    topic: str
    payload: bytes
    qos: int
    mid: int
    received_at: float
    event: Ping | GasReading | Availability | None = None
    level: str | None = None  # gas level, set by ClassifyGas
    status: int = APPLIED  # live-state result, set by ApplyLiveState
    applied: bool = False  # live state written (a resumed batch must not apply it twice)
    # Why the topic could not be read (it is then kept with \\x escapes for the
    # dead letter); Decode rejects such an item as ``unknown_topic``.
    topic_error: str | None = None
    # History row committed by WriteHistory's isolation (a batch retried after
    # SQL went away part-way through it must not store the row twice).
    stored: bool = False
    refused: bool = False  # its history row was refused: dead-lettered as history_refused
    seq_tracked: bool = False  # its seq was counted (TrackSequence; a resumed batch must not count it twice)


@dataclass
class Batch:
    items: list[Item]
    next_step: int = 0
    rejected: list[DeadLetterRecord] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    step_errors: int = 0
    # How many of ``rejected`` WriteHistory has committed (see stored above).
    rejected_stored: int = 0
    # run_together's union of several batches (WriteHistory leaves isolating a
    # refused row to each batch alone).
    merged: bool = False
    # The Redis master that took this batch's live state while its replicas have not
    # yet confirmed it (ApplyLiveState with ``Context.replicas_wanted``); '' when none.
    live_primary: str = ""
    # (inspector id, seq) of pings the worker shed since the batch before: they reached
    # the ingest, so TrackSequence counts them as seen, not as a gap.
    shed_seqs: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Context:
    scheme: TopicScheme
    limits: Limits
    live: LiveState
    history: HistoryWriter
    registry: Registry
    gas_low_lel: float
    gas_high_lel: float
    worker_id: str = "ingest"
    arrive_geofence_m: float = 100.0
    visits: object | None = None  # geo-engine hook, see DetectVisits
    streams: object | None = None  # data.streams.StreamStore, see StoreStreams
    # availability topic -> (payload, receive time) of the last message decoded on it (see _echo).
    availability_seen: dict = field(default_factory=dict)
    # Replicas that must hold a batch's live state before it goes on (and is acked):
    # settings.redis_replicas_to_wait, waited for at most replica_timeout_ms.
    replicas_wanted: int = 0
    replica_timeout_ms: int = 2000

    def now(self) -> float:
        return time.time()


class Step:
    name = "step"
    per_item = True  # per-item steps isolate errors themselves

    def run(self, batch: Batch, items: list[Item], ctx: Context) -> list[Item]:
        out = []
        for item in items:
            try:
                kept = self.process(item, ctx)
            except Rejected as r:
                reject(batch, item, r.reason, r.detail, ctx)
                continue
            if kept is not None:
                out.append(kept)
        return out

    def process(self, item: Item, ctx: Context) -> Item | None:
        raise NotImplementedError


def reject(batch: Batch, item: Item, reason: str, detail: str | None, ctx: Context) -> None:
    log.debug("rejected %s (%s): %s; payload %r", item.topic, reason, detail, item.payload[:64])
    batch.rejected.append(DeadLetterRecord(item.topic, reason, detail, item.received_at, item.payload, ctx.worker_id))


class Decode(Step):
    name = "decode"

    def run(self, batch, items, ctx):
        # The loop of Step.run, inlined: this step sees every message, and a
        # method call per item was a visible share of the worker's profile.
        out = []
        scheme = ctx.scheme
        for item in items:
            if item.event is not None:  # decoded already (IngestWorker._screen, paho's thread)
                out.append(item)
                continue
            if item.topic.endswith("/availability") and _echo(ctx, item):
                batch.dropped["duplicate_delivery"] += 1
                continue
            try:
                ev = _decode_item(item, scheme)
            except Rejected as r:
                reject(batch, item, r.reason, r.detail, ctx)
                continue
            if type(ev) is Ignored:
                batch.dropped[ev.reason] += 1
                continue
            item.event = ev
            out.append(item)
        return out


# A live availability message matches a shared and a non-shared subscription
# (ingest.decode.subscriptions), so the broker delivers it to one worker twice,
# a few milliseconds apart.  The second copy is counted as ignored
# (``duplicate_delivery``) rather than applied, or dead-lettered, again.
# Availability is idempotent, so an identical message repeated on purpose
# within this window loses nothing either.
AVAILABILITY_ECHO_S = 10.0


def _echo(ctx: Context, item: Item) -> bool:
    """``item`` repeats the availability message this worker last decoded on its
    topic (same payload, within the window); a message in between (offline,
    online, offline) makes the next one new again."""
    seen = ctx.availability_seen
    now = item.received_at
    last = seen.pop(item.topic, None)
    if last is not None and last[0] == item.payload and now - last[1] <= AVAILABILITY_ECHO_S:
        return True  # and forgotten: one echo per message
    seen[item.topic] = (item.payload, now)  # re-inserted: the dict stays in receive order
    cutoff = now - AVAILABILITY_ECHO_S
    for _ in range(2):  # forget the oldest expired ones, two per call: amortised O(1), and it shrinks
        oldest = next(iter(seen))
        if seen[oldest][1] >= cutoff:
            break
        del seen[oldest]
    return False


def _decode_item(item: Item, scheme: TopicScheme):
    if item.topic_error is not None:
        raise Rejected("unknown_topic", item.topic_error)
    return decode_or_ignored(item.topic, item.payload, scheme, item.received_at)


class Validate(Step):
    name = "validate"

    def run(self, batch, items, ctx):
        # Inlined like Decode's; one clock reading per batch (a batch takes
        # milliseconds, the time limits are seconds to days).  Every event,
        # availability too: its ``ts`` decides against readings and fixes, and
        # one from the far future once kept a sensor offline for ever.
        out = []
        limits = ctx.limits
        now = ctx.now()
        for item in items:
            try:
                item.event = validate(item.event, limits, now)
            except Rejected as r:
                reject(batch, item, r.reason, r.detail, ctx)
                continue
            out.append(item)
        return out

    def process(self, item, ctx):
        item.event = validate(item.event, ctx.limits, ctx.now())
        return item


class ResolveDevice(Step):
    """Map external ids (OwnTracks user/device, Zigbee2MQTT names) to ours; refuse unknown devices."""

    name = "resolve_device"
    per_item = False

    def run(self, batch, items, ctx):
        out, unknown = self._resolve(batch, items, ctx, final=False)
        if unknown:
            reg = ctx.registry
            if not reg.maybe_refresh(unknown_seen=True) and reg.any_registered(**_lookups(unknown)):
                # Reloaded less than MIN_RELOAD_INTERVAL_S ago, and a device was
                # imported since: reload now rather than dead-letter its messages.
                reg.load()
            more, _ = self._resolve(batch, unknown, ctx, final=True)
            out += more
        return out

    def _resolve(self, batch, items, ctx, final: bool):
        reg = ctx.registry
        out, unknown = [], []
        for item in items:
            ev = item.event
            if isinstance(ev, Ping):
                iid = reg.owntracks.get(ev.inspector_id) if ev.source == "owntracks" else ev.inspector_id
                if iid in reg.inspectors:
                    item.event = ev if iid == ev.inspector_id else replace(ev, inspector_id=iid)
                    out.append(item)
                    continue
            elif isinstance(ev, GasReading):
                sid = reg.z2m.get(ev.sensor_id) if ev.source == "zigbee2mqtt" else ev.sensor_id
                if sid in reg.sensors:
                    item.event = ev if sid == ev.sensor_id else replace(ev, sensor_id=sid)
                    out.append(item)
                    continue
            elif isinstance(ev, StreamNotice):
                if ev.inspector_id in reg.inspectors:
                    out.append(item)
                    continue
            elif isinstance(ev, Availability):
                table, names = (reg.inspectors, reg.owntracks) if ev.kind == "inspector" else (reg.sensors, reg.z2m)
                did = names.get(ev.device_id) if ev.source != "anjian" else ev.device_id
                if did in table:
                    item.event = ev if did == ev.device_id else replace(ev, device_id=did)
                    out.append(item)
                    continue
            if final and isinstance(ev, Availability) and ev.source == "zigbee2mqtt":
                # A bridge reports availability for every Zigbee device (switches,
                # lamps); only gas detectors are ours to register.  Not an error.
                batch.dropped["unregistered_z2m_availability"] += 1
            elif final:
                reject(batch, item, "unknown_device", f"no registered device for {_device_ref(ev)}", ctx)
            else:
                unknown.append(item)
        return out, unknown


def _lookups(items) -> dict[str, list[str]]:
    """The external ids of unresolved items, by where the registry keeps them."""
    out: dict[str, list[str]] = {"inspectors": [], "owntracks": [], "sensors": [], "z2m": []}
    for item in items:
        ev = item.event
        if isinstance(ev, Ping):
            out["owntracks" if ev.source == "owntracks" else "inspectors"].append(ev.inspector_id)
        elif isinstance(ev, StreamNotice):
            out["inspectors"].append(ev.inspector_id)
        elif isinstance(ev, GasReading):
            out["z2m" if ev.source == "zigbee2mqtt" else "sensors"].append(ev.sensor_id)
        elif isinstance(ev, Availability):
            if ev.kind == "inspector":
                out["inspectors" if ev.source == "anjian" else "owntracks"].append(ev.device_id)
            else:
                out["sensors" if ev.source == "anjian" else "z2m"].append(ev.device_id)
    return out


def _device_ref(ev) -> str:
    if isinstance(ev, Ping):
        return f"{ev.source} inspector {ev.inspector_id!r}"
    if isinstance(ev, GasReading):
        return f"{ev.source} sensor {ev.sensor_id!r}"
    if isinstance(ev, StreamNotice):
        return f"{ev.source} inspector {ev.inspector_id!r} (stream)"
    return f"{ev.source} {ev.kind} {ev.device_id!r}"


class ClassifyGas(Step):
    """A reading's level from % LEL against the sensor's thresholds and the device's own flag."""

    name = "classify_gas"

    def process(self, item, ctx):
        ev = item.event
        if isinstance(ev, GasReading):
            info = ctx.registry.sensors[ev.sensor_id]
            low = info.low_lel if info.low_lel is not None else ctx.gas_low_lel
            high = info.high_lel if info.high_lel is not None else ctx.gas_high_lel
            item.level = gas_level(ev.lel_pct, ev.alarm, low, high)
        return item


class ApplyLiveState(Step):
    """Redis: idempotency by msg_id, newest fix wins, GEO index, change stream."""

    name = "apply_live_state"
    per_item = False

    def run(self, batch, items, ctx):
        before: dict[int, int] = {}
        if batch.live_primary and batch.live_primary != ctx.live.primary():
            # The master that took this batch failed over before its replica confirmed
            # it: the new master may lack it, so apply it again there.  msg_ids make that
            # safe (what did reach the replica comes back DUPLICATE, and keeps the
            # status it was first applied with).
            for i in items:
                if i.applied:
                    i.applied, before[id(i)] = False, i.status
        todo = [i for i in items if not i.applied]
        if todo and ctx.replicas_wanted:
            batch.live_primary = ctx.live.primary()
        pings = [i for i in todo if isinstance(i.event, Ping)]
        gas = [i for i in todo if isinstance(i.event, GasReading)]
        for item, status in zip(pings, ctx.live.apply_pings([i.event for i in pings])):
            item.status, item.applied = status, True
        results = ctx.live.apply_sensor_readings([i.event for i in gas], [i.level for i in gas])
        for item, (status, _prev) in zip(gas, results):
            item.status, item.applied = status, True
        for item in todo:
            if isinstance(item.event, Availability):
                ev = item.event
                ctx.live.set_availability(ev.kind, ev.device_id, ev.online, ev.ts)
                item.applied = True
        for item in todo:
            if id(item) in before and item.status == DUPLICATE:
                item.status = before[id(item)]
        batch.dropped["duplicate_msg_id"] += sum(1 for i in todo if i.status == DUPLICATE and id(i) not in before)
        if ctx.replicas_wanted and batch.live_primary:
            # Not acked until the replicas hold it: a master killed now loses nothing
            # acknowledged.  A timeout raises (INFRA_ERRORS): the step runs again.
            ctx.live.await_replicas(ctx.replicas_wanted, ctx.replica_timeout_ms)
            batch.live_primary = ""
        # Duplicates go on to WriteHistory, which stores each msg_id once: a
        # message redelivered after a crash before its history was written is
        # not lost.  Later live steps skip them.
        return items


class TrackSequence(Step):
    """Messages lost before they reached us, where the device numbers them (our scheme's
    ``seq``): per device, a jump in the counter is a gap (docs/mqtt.md, "Sequence gaps"),
    counted in ``/metrics`` and shown in health.  Duplicates (same msg_id) do not count."""

    name = "track_sequence"
    per_item = False

    def run(self, batch, items, ctx):
        todo = [i for i in items if not i.seq_tracked and i.status != DUPLICATE
                and isinstance(i.event, (Ping, GasReading)) and i.event.seq is not None]
        # Only registered inspectors' (what is shed was not resolved: an unknown id stays out).
        shed = [(d, seq) for d, seq in batch.shed_seqs if d in ctx.registry.inspectors]
        if not todo and not shed:
            batch.shed_seqs = []
            return items
        # One device's messages in counter order (a batch may hold a few out of order).  The
        # pings shed meanwhile count as seen: each was older than every ping still queued
        # (the oldest gives way) and newer than every ping taken before.
        entries = sorted([((("i", i.event.inspector_id) if isinstance(i.event, Ping) else ("s", i.event.sensor_id)),
                           i.event.seq) for i in todo] + [(("i", d), seq) for d, seq in shed])
        gap, late, restart = ctx.live.track_sequences([(k, d, s) for (k, d), s in entries])
        for i in todo:
            i.seq_tracked = True
        batch.shed_seqs = []  # counted (a batch retried after Redis went away counts them then)
        if gap:
            log.warning("sequence gap: %d message(s) missing before they reached the ingest (batch of %d)",
                        gap, len(items))
        return items


class DetectArrival(Step):
    """An assignee's fix inside the alarm's geofence confirms arrival (to the alert engine)."""

    name = "detect_arrival"
    per_item = False
    # Accuracy widens the fence, but a fix worse than this says little.
    MAX_ACC_BONUS_M = 50.0

    def run(self, batch, items, ctx):
        pings = [i.event for i in items if isinstance(i.event, Ping) and i.status != DUPLICATE]
        if not pings:
            return items
        watched = ctx.live.watched_assignees({p.inspector_id for p in pings})
        for p in pings:
            task = watched.get(p.inspector_id)
            if task is None:
                continue
            d = haversine_m(p.lon, p.lat, task["lon"], task["lat"])
            if d <= ctx.arrive_geofence_m + min(p.acc_m or 0.0, self.MAX_ACC_BONUS_M):
                ctx.live.report_arrival(task["alert_id"], p.inspector_id, p.ts, d)
                del watched[p.inspector_id]
        return items


class DetectVisits(Step):
    """Geo engine: visits, duplicates and overlaps (a no-op until a detector is wired in)."""

    name = "detect_visits"
    per_item = False

    def run(self, batch, items, ctx):
        if ctx.visits is not None:
            ctx.visits.process([i.event for i in items if isinstance(i.event, Ping) and i.status != DUPLICATE])
        return items


class WriteHistory(Step):
    """SQL, one transaction: pings, sensor readings and the batch's dead letters.

    If the database refuses that transaction for another reason than being away
    (a row it cannot hold), the step isolates the row itself rather than leave
    it to ``run_pipeline``'s item-by-item re-run, which wrote the batch's dead
    letters once per item: the rows are written in halves, each half its own
    transaction, down to the single row that fails; that message is
    dead-lettered as ``history_refused``, the others are stored, and then the
    batch's dead letters are written, once each.  A batch retried after SQL
    went away part-way through writes only what it has not committed yet.
    """

    name = "write_history"
    per_item = False

    def run(self, batch, items, ctx):
        todo = [i for i in items if not (i.stored or i.refused)]
        try:
            ctx.history.write(*_rows(todo), batch.rejected[batch.rejected_stored:])
        except INFRA_ERRORS:
            raise
        except Exception as e:  # noqa: BLE001 - a row the database refuses; isolated below
            if batch.merged:
                raise  # run_together's caller runs each batch alone, which isolates
            log.warning("history write of a batch of %d failed (%s: %s); isolating the row", len(todo),
                        type(e).__name__, _first_line(e))
            self._bisect(batch, todo, ctx)
            self._write_dead_letters(batch, ctx)
            return [i for i in items if not i.refused]
        for i in todo:
            i.stored = True
        batch.rejected_stored = len(batch.rejected)
        return items

    def _bisect(self, batch: Batch, part: list[Item], ctx: Context) -> None:
        rows = [i for i in part if isinstance(i.event, (Ping, GasReading))]
        if not rows:
            return
        try:
            ctx.history.write(*_rows(rows))
        except INFRA_ERRORS:
            raise
        except Exception as e:  # noqa: BLE001
            if len(rows) == 1:
                item = rows[0]
                log.error("the database refused the history row of %s (%s: %s); payload %r", item.topic,
                          type(e).__name__, _first_line(e), item.payload[:64])
                reject(batch, item, "history_refused",
                       f"the database refused the row: {type(e).__name__}: {_first_line(e)[:300]}", ctx)
                item.refused = True
                return
            mid = len(rows) // 2
            self._bisect(batch, rows[:mid], ctx)
            self._bisect(batch, rows[mid:], ctx)
            return
        for i in rows:
            i.stored = True

    def _write_dead_letters(self, batch: Batch, ctx: Context) -> None:
        """The batch's dead letters not yet stored, in one transaction; if even that
        is refused, one by one, and one that cannot be stored is left out of
        ``rejected`` (logged, counted as dropped ``dead_letter_unstorable``), so
        that the metrics never count a dead letter the table does not have."""
        todo = batch.rejected[batch.rejected_stored:]
        try:
            ctx.history.write(dead_letters=todo)
        except INFRA_ERRORS:
            raise
        except Exception:  # noqa: BLE001
            # One by one; ``rejected`` stays "stored ones, then the rest" throughout,
            # so a retry after SQL went away resumes where this stopped.
            k = batch.rejected_stored
            while k < len(batch.rejected):
                rec = batch.rejected[k]
                try:
                    ctx.history.write(dead_letters=[rec])
                except INFRA_ERRORS:
                    raise
                except Exception:  # noqa: BLE001
                    log.exception("dead letter of %r (%s) could not be stored", rec.topic[:120], rec.reason)
                    batch.dropped["dead_letter_unstorable"] += 1
                    del batch.rejected[k]
                    continue
                k += 1
                batch.rejected_stored = k
            return
        batch.rejected_stored = len(batch.rejected)


class StoreStreams(Step):
    """SQL: a body camera's stream announced or ended, linked to the inspector's
    visit (``data.streams.StreamStore.apply``, idempotent: a redelivered notice
    changes nothing twice).  A no-op until a store is wired in."""

    name = "store_streams"
    per_item = False

    def run(self, batch, items, ctx):
        notices = [i.event for i in items if isinstance(i.event, StreamNotice)]
        if notices and ctx.streams is not None:
            ctx.streams.apply(notices)
        return items


def _rows(items: list[Item]) -> tuple[list, list]:
    """WriteHistory's rows of ``items``: (pings, readings) as HistoryWriter.write takes them."""
    pings = [(i.event, i.received_at) for i in items if isinstance(i.event, Ping)]
    readings = [(i.event, i.level, i.received_at) for i in items if isinstance(i.event, GasReading)]
    return pings, readings


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e)
    return text.splitlines()[0] if text else ""


PIPELINE: list[Step] = [
    Decode(),
    Validate(),
    ResolveDevice(),
    ClassifyGas(),
    ApplyLiveState(),
    TrackSequence(),
    DetectArrival(),
    DetectVisits(),
    WriteHistory(),
    StoreStreams(),
]


def kind_of(item: Item) -> str:
    ev = item.event
    if isinstance(ev, Ping):
        return "location"
    if isinstance(ev, GasReading):
        return "gas_state"
    if isinstance(ev, Availability):
        return "availability"
    if isinstance(ev, StreamNotice):
        return "stream"
    return "other"


# Where a worker splits the pipeline between its threads (IngestWorker): the
# steps before BACK_FROM run on the front thread; DetectVisits on the next; and,
# with three threads, WriteHistory on a third.
BACK_FROM = next(k for k, step in enumerate(PIPELINE) if isinstance(step, DetectVisits))
HISTORY_FROM = next(k for k, step in enumerate(PIPELINE) if isinstance(step, WriteHistory))


def run_pipeline(batch: Batch, ctx: Context, steps: list[Step] = PIPELINE, until: int | None = None) -> list[Item]:
    """Run the batch from ``batch.next_step`` up to ``until`` (default: to the end).
    Raises INFRA_ERRORS (batch resumable)."""
    items = batch.items
    end = len(steps) if until is None else until
    while batch.next_step < end:
        step = steps[batch.next_step]
        try:
            items = step.run(batch, items, ctx)
        except INFRA_ERRORS:
            batch.items = items
            raise
        except Exception:
            if len(items) <= 1 and not step.per_item:
                log.exception("step %s failed on %s", step.name, items[0].topic if items else "-")
                for item in items:
                    reject(batch, item, "step_error", f"{step.name} raised; see the worker log", ctx)
                    batch.step_errors += 1
                items = []
            else:
                items = _isolate(step, batch, items, ctx)
        _step_done(batch, items, len(steps))
    return items


def run_together(batches: list[Batch], ctx: Context, until: int | None = None) -> None:
    """Run several batches, all at the same step after the front thread's part,
    up to step ``until`` (default: to the end), each step once for all of them.

    The geo engine's cost is mostly per inspector per call (advance(), the
    state's JSON and compare-and-set, the lookups' and heat counters' fixed
    parts), and history's per transaction and statement: a worker thread that
    fell behind takes every batch waiting for it at once and catches up in
    larger steps.  Those steps (DetectVisits, WriteHistory) work on the whole
    batch and keep every item, so the result is that of one batch holding all
    the items; the geo engine does not care about the order of fixes inside
    a call, only about the watermark before it.

    Raises INFRA_ERRORS (the batches stay at the step that failed, together:
    the caller retries) and anything else a step raises; then every batch is
    still at that step, and running each on its own (run_pipeline) isolates
    the message it fails on, as usual.
    """
    at = batches[0].next_step
    if at < BACK_FROM or any(b.next_step != at for b in batches):
        raise ValueError("the batches must all be at the same step, at or after DetectVisits")
    end = len(PIPELINE) if until is None else until
    merged = Batch(items=[i for b in batches for i in b.items], rejected=[r for b in batches for r in b.rejected],
                   merged=True)
    for k in range(at, end):
        PIPELINE[k].run(merged, merged.items, ctx)
        for b in batches:
            _step_done(b, b.items, len(PIPELINE))


def join_held(into: Batch, later: Batch) -> None:
    """Append ``later`` to ``into``, both run by the front thread and not yet handed
    on (at the same step, nothing stored yet): the result is the batch that would
    have held both (ingest/worker.py joins the small batches of alarms it runs while
    the next thread is behind, so that they take one place in its queue)."""
    if (into.next_step != later.next_step or into.merged or later.merged
            or into.rejected_stored or later.rejected_stored):
        raise ValueError("only batches at the same step, with nothing stored yet, can be joined")
    into.items.extend(later.items)
    into.shed_seqs.extend(later.shed_seqs)
    into.rejected.extend(later.rejected)
    into.dropped.update(later.dropped)
    into.kinds.update(later.kinds)
    into.step_errors += later.step_errors


def _step_done(batch: Batch, items: list[Item], n_steps: int) -> None:
    """``batch`` has run its next step, keeping ``items``; after the last step,
    count its messages by kind (once: a resumed batch does not count again)."""
    batch.items = items
    batch.next_step += 1
    if batch.next_step == n_steps:
        for item in items:
            # A duplicate msg_id went through to WriteHistory (stored once) but
            # is counted as ignored (ApplyLiveState), not as applied.
            if item.status != DUPLICATE:
                batch.kinds[kind_of(item)] += 1


def _isolate(step: Step, batch: Batch, items: list[Item], ctx: Context) -> list[Item]:
    """Re-run a failing step item by item, so one bad item cannot stop the rest."""
    out = []
    for item in items:
        try:
            out += step.run(batch, [item], ctx)
        except INFRA_ERRORS:
            raise
        except Exception:
            log.exception("step %s failed on %s; payload %r", step.name, item.topic, item.payload[:64])
            reject(batch, item, "step_error", f"{step.name} raised; see the worker log", ctx)
            batch.step_errors += 1
    return out
