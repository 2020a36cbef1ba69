"""An ingest worker: paho's thread enqueues, three worker threads drain in batches.

The front thread takes a batch and runs the pipeline up to the geo engine
(decode, validate, resolve, live state, arrivals); the geo thread runs visits
and duplicates; the history thread writes the batch to SQL and acknowledges.
Each waits for Redis or SQL for a good part of its time, and the others
compute meanwhile: while the geo thread waits for the visit states'
compare-and-set, the front thread decodes the next batch and the history
thread commits the previous one (docs/benchmarks.md section 1).  Batches are
handed from each thread to the next in order, so the geo engine still sees
them in arrival order, and an alarm's live state is written as
soon as the front thread gets to it.  (``threads=2`` runs geo and history on
one back thread, ``threads=1`` everything on one, for the benches.)

When the geo thread or the history thread falls behind, batches wait for it
(up to ``ingest_catch_up_max`` messages), and it takes every one waiting in
one step (``run_together``): the geo engine's cost is mostly per inspector
per call, and history's per transaction, so they catch up by working in
larger steps, while the front thread keeps writing live state batch by
batch.  The batches are still acknowledged one by one, in order.

When even that queue is full (overload: the geo engine cannot keep up with
the pings), the front thread does not wait for room.  It holds its batches,
in order, and meanwhile takes batches of the priority queue alone (alarms and
the other sensor messages): their live state and the alert engine's stream
are written at once, and they are handed on after the batches held before
them.  Pings wait in their queue, and are shed when it is full.  Before, the
front thread waited for the geo thread with the next batch untaken, so an
alarm waited for the geo engine's backlog: 2-8 s, p95, at ten times a city's
load (bench/bench_overload.py, docs/benchmarks.md section 14).  The held
sensor messages are at most ``ingest_priority_queue_max``; past that the
front thread waits, and so does paho's (back-pressure on the broker, as
before).

Two bounded queues sit between them.  Alarms and every other sensor message go
to the priority queue, which is drained first and never shed: when it is full,
``on_message`` blocks, which pushes back on the broker (QoS 1 keeps the
messages there).  Pings go to the ping queue; when it is full, the oldest
waiting ping is shed and counted: the newest fix of each inspector is kept for
the map (the next fix supersedes a shed one, but the last before a phone falls
silent has no next), and the pings that wait are the newest received.

A ping is screened in paho's thread before it takes a place in that queue: it
is decoded and validated there (the work the front thread would do anyway,
a few us), and one that is refused goes straight to a bounded list of dead
letters (``garbage``), acknowledged at once, which each next batch writes.
So a flood of garbage on the location topics never crowds valid fixes out of
the queue (bench/bench_garbage_flood.py, docs/benchmarks.md).  At most
``ingest_dead_letter_rate`` of them a second are kept (writing a flood's dead
letters held up the valid fixes behind them in the history thread); the rest,
and any beyond a full list, are counted as dropped ``dead_letter_overflow``.
Shedding and such drops turn health to ``degraded`` for a minute, with the
counts (``shed_recent``, ``dead_letter_overflow_recent``).

QoS 1 messages are acknowledged only after their batch is stored, so a worker
killed mid-stream gets them again from its persistent session.  Several
workers share the stream through ``$share/<group>/...`` subscriptions (on
brokers that support them); availability topics are subscribed plainly because
retained messages are not delivered to shared subscribers.  A single worker
subscribes plainly (``mqtt_shared_subscriptions=auto``): Mosquitto 2.0 does not
keep a shared subscription across its own restart, so every alarm published
between the broker's return and the worker's re-subscription was lost, while a
plain subscription of the persistent session queues them (docs/deploy.md,
"Broker").
"""

from __future__ import annotations

import gc
import logging
import os
import queue
from collections import deque
from bisect import bisect_left
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from config.settings import Settings
from data.errors import INFRA_ERRORS
from data.history import DeadLetterRecord, HistoryWriter
from data.live import LATENCY_BUCKETS_S, LiveState
from data.registry import Registry
from data.streams import StreamStore
from geo.coords import in_gcj02_region
from geo.types import Ping
from ingest.client import MqttConnection
from ingest.decode import Rejected, TopicScheme, decode, partition_skips, subscriptions
from ingest.pipeline import (BACK_FROM, HISTORY_FROM, Batch, Context, Item, join_held, run_pipeline,
                             run_together)
from ingest.validate import Limits, validate

log = logging.getLogger(__name__)

# Backoff while Redis or SQL is away: start small, cap so recovery is noticed quickly.
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0
HEARTBEAT_EVERY_S = 1.0
# A heartbeat this fresh from another process means its worker (and MQTT client
# id) is in use: a second one would take the broker session over, back and forth.
ID_IN_USE_S = 3 * HEARTBEAT_EVERY_S


class WorkerIdInUse(RuntimeError):
    """Another running process is ingest worker N (the same MQTT client id)."""


class WorkerNumberTooHigh(ValueError):
    """A worker number the deployment's ``ingest_workers`` does not admit (under
    ``mqtt_shared_subscriptions=auto`` worker 0 would think it is alone)."""


# Counters of shed pings kept for sequence tracking, per place in the ping queue.
SHED_SEQS_PER_QUEUED = 10

# Shedding (and dead letters not kept) within this window make health "degraded".
SHED_WINDOW_S = 60.0
# Net new container objects per message of ingest_batch_max before the cyclic
# GC's first generation runs (see IngestWorker._warm_up): above what one batch
# keeps alive (about 10 per message), so the collector does not walk a live
# batch over and over.
GC_GEN0_PER_MSG = 20


def _drain(q: queue.Queue, n: int) -> list[Item]:
    """Up to ``n`` items from ``q`` without waiting, under one lock (``get_nowait``
    per item took and released the queue's lock a thousand times per batch)."""
    with q.mutex:
        k = min(n, len(q.queue))
        if k <= 0:
            return []
        items = [q.queue.popleft() for _ in range(k)]
        q.not_full.notify(k)
    return items


# Per number of worker threads, each thread's name and the step it runs a batch
# up to (ingest/pipeline.py; None: to the end, then the acks).
STAGES: dict[int, list[tuple[str, int | None]]] = {
    1: [("front", None)],
    2: [("front", BACK_FROM), ("back", None)],
    3: [("front", BACK_FROM), ("geo", HISTORY_FROM), ("history", None)],
}


class IngestWorker:
    # engine: the SQLAlchemy engine, redis_client: the Redis client; both handed on
    # to data/ (docs/architecture.md: only data/ imports those libraries).
    def __init__(self, settings: Settings, engine: Any, redis_client: Any, *,
                 worker_no: int = 0, mqtt_url: str | None = None, visits=None, geo: bool = True,
                 tune_gc: bool = False, threads: int = 3):
        self.settings = settings
        # gc.freeze() and a higher GC threshold act on the whole process: only a
        # process that is an ingest worker and nothing else (``app.py ingest``)
        # asks for them, not the all-in-one demo, whose web app shares it.
        self.tune_gc = tune_gc
        # 3: front, geo and history threads (see the module docstring); 2: front
        # and back (geo and history on one); 1: one thread runs the whole
        # pipeline per batch (the benches compare them).
        if threads not in STAGES:
            raise ValueError(f"threads must be one of {sorted(STAGES)}, not {threads!r}")
        self._names = [name for name, _ in STAGES[threads]]
        # Each thread runs a batch up to its bound (None: to the end, then acks).
        self._bounds = [bound for _, bound in STAGES[threads]]
        self.batches = 0
        self.geo_calls = 0  # calls of the geo engine (fewer than batches when it takes several at once)
        # A partition by topic (settings.ingest_topics) has client ids, leases and
        # heartbeats of its own: sensors-0 and locations-0 are two workers.
        self.partition = settings.ingest_topics
        part = "" if self.partition == "all" else f"-{self.partition}"
        self.worker_id = f"{settings.mqtt_client_id}{part}-{worker_no}"
        self.owner = f"{socket.gethostname()}:{os.getpid()}"  # in the heartbeat: who is worker_id
        if settings.mqtt_shared_subscriptions == "auto" and worker_no >= settings.ingest_workers:
            # Worker 0 of the same deployment would subscribe plainly (it thinks
            # it is alone) while this one shares: every message twice.
            raise WorkerNumberTooHigh(
                f"ingest worker number {worker_no} but ingest_workers={settings.ingest_workers}: set "
                f"ANJIAN_INGEST_WORKERS to the number of ingest workers of the deployment, the same on every "
                f"`app.py ingest` process (with mqtt_shared_subscriptions=auto it decides whether they share "
                f"the stream)")
        self.scheme = TopicScheme.from_settings(settings)
        self._skip = partition_skips(self.scheme, self.partition)
        self.skipped = 0  # messages left to another partition (ignored as "other_partition")
        self.live = LiveState(redis_client, settings.redis_prefix, settings.ingest_msg_id_ttl_s)
        self.registry = Registry(engine, settings.registry_refresh_s)
        if visits is None and geo:
            from data.geo_store import GeoStore

            visits = GeoStore(settings, engine, redis_client, self.registry)
        self.ctx = Context(
            scheme=self.scheme,
            limits=Limits.from_settings(settings),
            live=self.live,
            history=HistoryWriter(engine),
            registry=self.registry,
            gas_low_lel=settings.gas_low_lel,
            gas_high_lel=settings.gas_high_lel,
            worker_id=self.worker_id,
            arrive_geofence_m=settings.arrive_geofence_m,
            visits=visits,
            streams=StreamStore(engine),
            replicas_wanted=settings.redis_replicas_to_wait,
            replica_timeout_ms=settings.redis_ack_timeout_ms,
        )
        self.ping_q: queue.Queue[Item] = queue.Queue(maxsize=settings.ingest_queue_max)
        self.prio_q: queue.Queue[Item] = queue.Queue(maxsize=settings.ingest_priority_queue_max)
        self.shed = 0
        # The counters (seq) of pings shed, for the next batch's sequence tracking: a shed
        # ping reached the ingest, and is counted as shed, not again as a gap (docs/mqtt.md).
        # The front thread takes them with every batch, alarms-only ones too; only while it
        # is stalled (Redis away) do they pile up, and past this bound the oldest would
        # count as a gap after all.
        self.shed_seqs: deque[tuple[str, int]] = deque(maxlen=SHED_SEQS_PER_QUEUED * max(settings.ingest_queue_max, 1))
        # Pings refused in paho's thread (see _screen), waiting for a batch to
        # write their dead letters; and those not kept because it was full.
        self.garbage: deque[DeadLetterRecord] = deque()
        self.garbage_max = settings.ingest_queue_max
        self.pre_rejected = 0
        self.dead_letter_overflow = 0  # not yet counted in a batch's metrics
        self._dl_tokens, self._dl_at = float(settings.ingest_dead_letter_rate), time.time()
        self._overflowed = 0  # in all
        # (monotonic, shed, not kept) per heartbeat, from the start (nothing lost yet).
        self._loss_marks: deque[tuple[float, int, int]] = deque([(time.monotonic(), 0, 0)])
        self.processed = 0
        # Every message paho hands over, counted on its thread as it arrives;
        # flushed to Redis with the heartbeat (``_flush_counts``), with ``shed``.
        self.received = 0
        self._flushed_received = 0
        self._flushed_shed = 0
        self._flushed_skipped = 0
        self.last_lag_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # The threads after the front one, in pipeline order.
        self._stages: list[threading.Thread] = []
        # Batches a thread has run up to its bound, for the next thread: (batch,
        # every item of it, for the acks), in arrival order.  They wait in each
        # while the next thread works on others, as many as it takes in one
        # step when it falls behind (see _waiting_batches).
        waiting = -(-max(settings.ingest_catch_up_max, 1) // max(settings.ingest_batch_max, 1))
        self._handoffs: list[queue.Queue[tuple[Batch, list[Item]]]] = [
            queue.Queue(maxsize=waiting) for _ in self._bounds[1:]]
        # Batches the front thread has run while the next thread's queue was full,
        # in order, for it (see the module docstring), and how many messages they hold.
        self._held: deque[tuple[Batch, list[Item]]] = deque()
        self._held_items = 0
        self._owntracks_prefix = settings.owntracks_topic + "/"
        # The broker's own count of the messages it dropped (settings.mqtt_broker_dropped_topic),
        # newest value not yet reported to Redis (with the heartbeat).
        dropped_topic = settings.mqtt_broker_dropped_topic
        self._dropped_topic = dropped_topic.encode() if dropped_topic else None
        self._broker_dropped: int | None = None
        self.conn = MqttConnection(
            mqtt_url or settings.mqtt_url,
            self.worker_id,
            self._subscriptions,
            self._on_message,
            protocol=settings.mqtt_protocol,
            session_expiry_s=settings.mqtt_session_expiry_s,
            keepalive_s=settings.mqtt_keepalive_s,
            reconnect_min_s=settings.mqtt_reconnect_min_s,
            reconnect_max_s=settings.mqtt_reconnect_max_s,
            tls_ca=settings.mqtt_tls_ca,
            tls_insecure=settings.mqtt_tls_insecure,
            on_raw_publish=self._on_raw_publish,
            fast_path=settings.mqtt_fast_path,
            unsubscriptions=self._stale_subscriptions,
            optional_subscriptions=[(dropped_topic, 0)] if dropped_topic else None,
        )

    # --- paho's thread: enqueue only -----------------------------------------
    def shares(self, protocol: int) -> bool:
        """Whether this worker subscribes to the sensor topics in the shared form:
        the ``mqtt_shared_subscriptions`` setting, and MQTT 5 (amqtt speaks 3.1.1
        only and has no shared subscriptions: a 3.1.1 worker subscribes plainly,
        run one of them)."""
        mode = self.settings.mqtt_shared_subscriptions
        if protocol != mqtt.MQTTv5 or mode == "never":
            return False
        return mode == "always" or self.settings.ingest_workers > 1

    def _subscriptions(self, protocol: int) -> list[tuple[str, int]]:
        shared = self.shares(protocol)
        group = self.settings.mqtt_share_group
        return [
            (f"$share/{group}/{flt}" if shared and shareable else flt, qos)
            for flt, qos, shareable in subscriptions(self.scheme, self.partition)
        ]

    def _stale_subscriptions(self, protocol: int) -> list[str]:
        """The other form of each shareable filter, dropped from a resumed session
        on connect: a worker that subscribed shared before (or plainly) and now
        subscribes the other way would otherwise get each message twice."""
        shared = self.shares(protocol)
        if protocol != mqtt.MQTTv5:
            return []  # never shared: nothing of the other form to drop
        group = self.settings.mqtt_share_group
        return [flt if shared else f"$share/{group}/{flt}"
                for flt, _qos, shareable in subscriptions(self.scheme, self.partition) if shareable]

    def _is_ping(self, topic: str, payload: bytes) -> bool:
        """Sheddable: a location fix.  OwnTracks sends its last will on the same
        topic as its fixes, so its payload decides (a cheap byte search)."""
        if topic.startswith(self._owntracks_prefix):
            return b'"lwt"' not in payload
        return topic.endswith("/location")

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        # msg.topic decodes the topic's bytes, and raises on invalid UTF-8: the
        # bytes, where this paho keeps them.
        topic = getattr(msg, "_topic", None)
        if not isinstance(topic, bytes):
            topic = msg.topic.encode()
        self._on_raw_publish(topic, bytes(msg.payload), msg.qos, msg.mid)

    def _on_raw_publish(self, topic: bytes, payload: bytes, qos: int, mid: int) -> None:
        """``_on_message`` for the client's fast path (no MQTTMessage built)."""
        if topic == self._dropped_topic:
            # The broker's statistics, not a device's message: not counted as received.
            self._take_broker_dropped(payload)
            return
        self.received += 1
        if self._skip is not None and topic.startswith(self._skip):
            # The catch-all of the locations partition: the sensors partition has it.
            self.skipped += 1
            self.conn.ack(mid, qos)
            return
        try:
            try:
                item = Item(topic.decode(), payload, qos, mid, time.time())
            except UnicodeDecodeError as e:
                # MQTT requires UTF-8 topics and Mosquitto refuses others, but a
                # bridge or a lax broker may pass one on: dead-letter it, with
                # the bytes shown as \x escapes.
                item = Item(topic.decode("utf-8", "backslashreplace"), payload, qos, mid, time.time(),
                            topic_error=f"topic is not valid UTF-8 (byte {e.start}: {topic[e.start:e.start + 1]!r})")
            self._enqueue(item)
        except Exception:  # noqa: BLE001 - never raise in paho's thread
            log.exception("on_message failed for %r", topic[:120])

    def _take_broker_dropped(self, payload: bytes) -> None:
        try:
            self._broker_dropped = int(payload.strip())
        except ValueError:
            log.warning("broker's dropped-messages count is not a number: %r", payload[:40])

    def _report_broker_dropped(self) -> None:
        """Hand the broker's count received since the last heartbeat to Redis (health,
        /metrics).  A failed write is retried with the next heartbeat."""
        value = self._broker_dropped
        if value is None:
            return
        rise = self.live.report_broker_dropped(value)
        if self._broker_dropped == value:
            self._broker_dropped = None
        if rise:
            log.warning("the MQTT broker dropped %d more message(s) (its count: %d): a subscriber's queue was "
                        "full, ours or another client's; the broker's log names it (docs/mqtt.md, \"Messages "
                        "the broker dropped\")", rise, value)

    def _enqueue(self, item: Item) -> None:
        if item.topic_error is None and self._is_ping(item.topic, item.payload):
            if not self._screen(item):
                return
            try:
                self.ping_q.put_nowait(item)
            except queue.Full:
                # The oldest waiting ping gives way, not this one: the map then shows each
                # inspector's newest fix (the last before a phone falls silent was lost
                # with the newest shed), and what waits is the last ingest_queue_max pings
                # received, not those from before the queue filled.  Only this thread puts,
                # so there is room after the get.
                try:
                    old = self.ping_q.get_nowait()
                except queue.Empty:  # the front thread took them meanwhile
                    old = None
                self.ping_q.put_nowait(item)
                if old is not None:
                    self.shed += 1
                    if isinstance(old.event, Ping) and old.event.seq is not None:
                        self.shed_seqs.append((old.event.inspector_id, old.event.seq))
                    self.conn.ack(old.mid, old.qos)
        else:
            # Never shed: block (back-pressure to the broker) until there is room.
            while not self._stop.is_set():
                try:
                    self.prio_q.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue

    def _screen(self, item: Item) -> bool:
        """Decode and validate a ping here, in paho's thread; False if it was refused
        (then it is acknowledged and its dead letter waits in ``garbage``).

        The front thread's Decode and Validate keep the decoded event (and validate
        it again, ~1 us, against their own clock).  Only a refusal is acted on
        here: a message decode ignores by design goes on as before."""
        try:
            ev = decode(item.topic, item.payload, self.scheme, item.received_at)
            item.event = validate(ev, self.ctx.limits, item.received_at) if isinstance(ev, Ping) else ev
        except Rejected as r:
            # A token bucket: at most ingest_dead_letter_rate dead letters a second
            # from here, so that writing a flood's dead letters cannot hold up the
            # valid messages behind them in the history thread.
            now = item.received_at
            rate = self.settings.ingest_dead_letter_rate
            self._dl_tokens = min(rate, self._dl_tokens + (now - self._dl_at) * rate)
            self._dl_at = now
            if self._dl_tokens >= 1.0 and len(self.garbage) < self.garbage_max:
                self._dl_tokens -= 1.0
                self.garbage.append(DeadLetterRecord(item.topic, r.reason, r.detail, item.received_at,
                                                     item.payload, self.worker_id))
            else:
                self.dead_letter_overflow += 1
            self.pre_rejected += 1
            self.conn.ack(item.mid, item.qos)
            return False
        return True

    def _take_garbage(self, batch: Batch) -> Batch:
        """The dead letters refused in paho's thread so far, into ``batch`` (written with it);
        and the counters of the pings shed so far (tracked with it)."""
        while self.shed_seqs:
            batch.shed_seqs.append(self.shed_seqs.popleft())
        g = self.garbage
        n = min(len(g), max(self.settings.ingest_batch_max, 1))
        if n:
            batch.rejected.extend(g.popleft() for _ in range(n))
        if self.dead_letter_overflow:
            n, self.dead_letter_overflow = self.dead_letter_overflow, 0
            batch.dropped["dead_letter_overflow"] += n
            self._overflowed += n
        return batch

    # --- the worker thread ---------------------------------------------------
    def check_id_free(self) -> None:
        """Refuse to start as a worker number another running process is: the same
        client id would make the broker drop one of them for the other, again and again.
        The other is known from its heartbeat (fresher than ID_IN_USE_S), and on this
        host also by its pid being alive (a restart right after a crash is not refused)."""
        try:
            beat = self.live.workers(max_age_s=ID_IN_USE_S).get(self.worker_id)
        except INFRA_ERRORS:
            return  # Redis away: the worker waits for it anyway
        owner = (beat or {}).get("owner")
        if not owner or owner == self.owner:
            return
        host, _, pid = owner.rpartition(":")
        if host == socket.gethostname():
            try:
                os.kill(int(pid), 0)
            except (ProcessLookupError, ValueError):
                return
            except PermissionError:
                pass
        raise WorkerIdInUse(
            f"ingest worker {self.worker_id} (its MQTT client id) is already running as pid {pid} on {host}: "
            "give each ingest process its own --worker-no (a process with --workers N takes N numbers)")

    def start(self) -> None:
        self.check_id_free()
        self._load_registry()
        self._warm_up()
        self.conn.start()
        self._thread = threading.Thread(target=self.run, name=self.worker_id, daemon=True)
        self._thread.start()
        for k in range(1, len(self._bounds)):
            t = threading.Thread(target=self._run_stage, args=(k,), name=f"{self.worker_id}-{self._names[k]}",
                                 daemon=True)
            self._stages.append(t)
            t.start()

    @property
    def stage_threads(self) -> dict[str, threading.Thread]:
        """The threads after the front one, by name (geo, history; or back)."""
        return dict(zip(self._names[1:], self._stages))

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.conn.stop()
        deadline = time.monotonic() + timeout_s
        for t in (self._thread, *self._stages):
            if t:
                t.join(max(0.0, deadline - time.monotonic()))
        try:
            self._flush_counts()
        except INFRA_ERRORS:
            log.debug("last counts not recorded (Redis away)")

    def _load_registry(self) -> None:
        delay = RETRY_MIN_S
        while not self._stop.is_set():
            try:
                self.registry.load()
                return
            except INFRA_ERRORS as e:
                log.warning("device registry not loadable yet (%s); retrying", e)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _warm_up(self) -> None:
        """Build the geo engine's enterprise index before messages arrive, not
        inside the first batch (a city of 20,000 enterprises took ~0.2 s,
        which the first messages waited for: 8% of the worker's profile in
        bench_ingest).  The first batch builds it if the database is away now.

        Then everything built so far (modules, SQLAlchemy's tables, the
        registry, the index) is moved out of the cyclic garbage collector's
        sight (``gc.freeze``): it lives as long as the process, and every full
        collection walked all of it again.  The collector's share of the
        worker's CPU went from about 5 to under 2 us per message in
        bench/profile_pipeline.py.  Reference counting still frees these
        objects; only cycles among them would stay.

        And the collector's first generation runs after ``GC_GEN0_PER_MSG``
        times ``ingest_batch_max`` net new container objects instead of
        Python's 700: a batch of 1000 messages keeps some ten thousand of them
        alive while it runs (items, pings, visit
        states), so with 700 the collector walked them about six times per
        batch, for no garbage (reference counting frees a batch's objects).
        0 of 6 collections per batch and ~1.7 us per message less in
        bench/profile_pipeline.py.  Both only with ``tune_gc`` (a process of its own)."""
        # The GCJ-02 region's lookup grid (geo.coords), ~0.3 s to build: not
        # inside the batch of the first gcj02/bd09 message.
        in_gcj02_region(114.0, 22.6)
        warm = getattr(self.ctx.visits, "ensure_index", None)
        if warm is not None:
            try:
                warm()
            except INFRA_ERRORS as e:
                log.warning("enterprise index not built yet (%s); the first batch builds it", e)
        if not self.tune_gc:
            return
        gc.freeze()
        _gen0, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(GC_GEN0_PER_MSG * max(self.settings.ingest_batch_max, 1000), gen1, gen2)

    def next_batch(self, priority_only: bool = False) -> list[Item]:
        """Up to ``ingest_batch_max`` messages, the priority queue's first, waiting at
        most ``ingest_batch_wait_ms`` for the first; ``priority_only``: none of the pings."""
        limit = self.settings.ingest_batch_max
        wait_s = self.settings.ingest_batch_wait_ms / 1000.0
        items: list[Item] = []
        deadline = time.monotonic() + wait_s
        while len(items) < limit:
            # Alarms first, always.
            items += _drain(self.prio_q, limit - len(items))
            if not priority_only:
                items += _drain(self.ping_q, limit - len(items))
            remaining = deadline - time.monotonic()
            if items or remaining <= 0:
                break
            try:
                items.append(self.prio_q.get(timeout=min(remaining, 0.01)))
            except queue.Empty:
                continue
        return items

    def run(self) -> None:
        """The front thread: each batch up to its bound, then on to the next thread
        (or, with ``threads=1``, the whole pipeline here, then the acks)."""
        last_beat = 0.0
        while not self._stop.is_set():
            if self.conn.fatal:
                log.error("ingest worker %s stops: %s", self.worker_id, self.conn.fatal)
                self._stop.set()
                break
            if self._release_held():
                items = self.next_batch()
            elif self._held_items < self.settings.ingest_priority_queue_max:
                # The next thread is behind: alarms do not wait for it (module docstring).
                items = self.next_batch(priority_only=True)
            else:
                self._stop.wait(self.settings.ingest_batch_wait_ms / 1000.0)
                items = []
            if items or self.garbage or self.dead_letter_overflow or self.shed_seqs:
                batch = self._run_steps(self._take_garbage(Batch(items=list(items))), self._bounds[0])
                if batch is not None:
                    if self._bounds[0] is None:
                        self._done(batch, items)
                    else:
                        self._hold(batch, items)
                        self._release_held()
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_EVERY_S:
                last_beat = now
                self._heartbeat()

    def _hold(self, batch: Batch, items: list[Item]) -> None:
        """Keep a batch the front thread has run for the next thread, after those
        held before it; joined to the last of them while both fit in one batch, so
        that the many small batches of alarms run while the next thread is behind
        take one place in its queue, not one each (it takes
        ``ingest_catch_up_max`` / ``ingest_batch_max`` places at a time)."""
        if self._held:
            last_batch, last_items = self._held[-1]
            if len(last_items) + len(items) <= self.settings.ingest_batch_max:
                join_held(last_batch, batch)
                last_items.extend(items)
                self._held_items += len(items)
                return
        self._held.append((batch, items))
        self._held_items += len(items)

    def _release_held(self) -> bool:
        """Hand the front thread's held batches to the next thread, in order, as far as
        its queue has room; True when none is left held.  (Stopping: what is still
        held is not acked, and the broker redelivers it to our session.)"""
        while self._held:
            try:
                self._handoffs[0].put_nowait(self._held[0])
            except queue.Full:
                return False
            self._held_items -= len(self._held.popleft()[1])
        return True

    def _pass_on(self, k: int, batch: Batch, items: list[Item]) -> None:
        """Thread ``k`` is done with ``batch``: the acks if it was the last thread,
        else the next thread's turn."""
        if self._bounds[k] is None:
            self._done(batch, items)
        else:
            self._hand_over(k, batch, items)

    def _hand_over(self, k: int, batch: Batch, items: list[Item]) -> None:
        """Hand ``batch`` from thread ``k`` to thread ``k + 1``, waiting while it is busy."""
        while not self._stop.is_set():
            try:
                self._handoffs[k].put((batch, items), timeout=0.1)
                return
            except queue.Full:
                continue
        # Stopping: the batch is not acked; the broker redelivers it to our session.

    def _run_stage(self, k: int) -> None:
        """Thread ``k`` (1, 2): its part of each batch, in the order handed over; the
        last thread then acknowledges."""
        geo = self._bounds[k - 1] == BACK_FROM and self.ctx.visits is not None  # this thread calls the geo engine
        while True:
            try:
                first = self._handoffs[k - 1].get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            work = self._waiting_batches(k, first)
            self.geo_calls += geo
            if len(work) > 1 and not self._retrying(lambda: self._together(work, self._bounds[k]),
                                                    sum(len(b.items) for b, _ in work)):
                continue  # stopping: not acked, redelivered to our session
            for batch, items in work:
                if self._run_steps(batch, self._bounds[k]) is None:
                    break  # stopping, as above
                self._pass_on(k, batch, items)

    def _together(self, work: list[tuple[Batch, list[Item]]], until: int | None) -> None:
        """All of ``work`` up to step ``until`` at once.  If a step fails for another
        reason than Redis or SQL being away, each batch runs it on its own next
        (run_pipeline then isolates the message it fails on)."""
        try:
            run_together([b for b, _ in work], self.ctx, until)
        except INFRA_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception("%d batches failed together; running them one by one", len(work))

    def _waiting_batches(self, k: int, first: tuple[Batch, list[Item]]) -> list[tuple[Batch, list[Item]]]:
        """``first`` and the batches waiting behind it for thread ``k``, in order,
        up to ``ingest_catch_up_max`` messages in all."""
        work = [first]
        room = self.settings.ingest_catch_up_max - len(first[0].items)
        q = self._handoffs[k - 1]
        with q.mutex:
            while q.queue and len(q.queue[0][0].items) <= room:
                work.append(q.queue.popleft())
                room -= len(work[-1][0].items)
            if len(work) > 1:
                q.not_full.notify(len(work) - 1)
        return work

    def process(self, items: list[Item]) -> None:
        """The whole pipeline for one batch on the calling thread, then the acks."""
        batch = self._run_steps(self._take_garbage(Batch(items=list(items))), None)
        if batch is not None:
            self._done(batch, items)

    def _run_steps(self, batch: Batch, until: int | None) -> Batch | None:
        """Run ``batch`` up to step ``until``, retrying while Redis or SQL is away;
        None if the worker stops first (then nothing is acked: redelivered later)."""

        def run() -> None:
            if batch.next_step == 0:
                self.registry.maybe_refresh()
            run_pipeline(batch, self.ctx, until=until)

        return batch if self._retrying(run, len(batch.items)) else None

    def _retrying(self, fn, n_items: int) -> bool:
        """Call ``fn`` until it gets through, waiting while Redis or SQL is away;
        False if the worker stops first."""
        delay = RETRY_MIN_S
        while True:
            try:
                fn()
                return True
            except INFRA_ERRORS as e:
                log.warning("batch of %d waits: %s unavailable (%s); retrying in %.1fs",
                            n_items, type(e).__module__.split(".")[0], e, delay)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, RETRY_MAX_S)

    def _done(self, batch: Batch, items: list[Item]) -> None:
        done = time.time()
        for item in items:
            self.conn.ack(item.mid, item.qos)
        self.processed += len(items)
        self.batches += 1
        self.last_lag_s = max((done - i.received_at for i in items), default=0.0)
        self._record_metrics(batch, items, done)

    def _record_metrics(self, batch: Batch, items: list[Item], done: float) -> None:
        try:
            pipe = self.live.r.pipeline(transaction=False)
            for kind, n in batch.kinds.items():
                self.live.count("in", kind, n, pipe)
            for rec in batch.rejected:
                self.live.count("rejected", rec.reason, 1, pipe)
            for reason, n in batch.dropped.items():
                self.live.count("dropped", reason, n, pipe)
            # Per-bucket counts, then cumulative (Prometheus buckets are "<= le").
            per = [0] * (len(LATENCY_BUCKETS_S) + 1)
            total = 0.0
            for item in items:
                lat = done - item.received_at
                total += lat
                per[bisect_left(LATENCY_BUCKETS_S, lat)] += 1
            running = 0
            for b, n in zip(LATENCY_BUCKETS_S, per):
                running += n
                if running:
                    self.live.count("latency", f"le_{b}", running, pipe)
            self.live.count("latency", "count", len(items), pipe)
            pipe.hincrbyfloat(self.live.key("metrics", "latency_sum"), "sum", total)
            pipe.execute()
        except INFRA_ERRORS:
            log.debug("metrics not recorded (Redis away)")

    def _heartbeat(self) -> None:
        try:
            oldest = 0.0
            for q in (self.prio_q, self.ping_q):
                with q.mutex:
                    if q.queue:
                        oldest = max(oldest, time.time() - q.queue[0].received_at)
            # In the last SHED_WINDOW_S: pings shed, and refused pings whose dead letter was not kept.
            now = time.monotonic()
            not_kept = self._overflowed + self.dead_letter_overflow
            marks = self._loss_marks
            marks.append((now, self.shed, not_kept))
            while len(marks) > 1 and now - marks[1][0] >= SHED_WINDOW_S:
                marks.popleft()
            self.live.heartbeat(
                self.worker_id,
                lag_s=max(self.last_lag_s, oldest),
                queue=self.prio_q.qsize() + self.ping_q.qsize() + self._held_items,
                shed=self.shed,
                shed_recent=self.shed - marks[0][1],
                pre_rejected=self.pre_rejected,
                dead_letter_overflow=not_kept,
                dead_letter_overflow_recent=not_kept - marks[0][2],
                processed=self.processed,
                connected=self.conn.connected.is_set(),
                listening_since=self.conn.listening_since,
                mqtt="5" if self.conn.is_v5 else "3.1.1",
                owner=self.owner,
                topics=self.partition,
            )
            self.last_lag_s = 0.0
            self._flush_counts()
            self._report_broker_dropped()
        except INFRA_ERRORS:
            log.debug("heartbeat not written (Redis away)")

    def _flush_counts(self) -> None:
        """Messages received, and pings shed (ignored as ``shed``), since the last
        flush: the left side of the accounting in docs/mqtt.md, and the one
        ignore reason that never reaches the pipeline.  A failed flush is
        retried with the next heartbeat (nothing is lost or counted twice)."""
        received, shed, skipped = self.received, self.shed, self.skipped
        d_received, d_shed = received - self._flushed_received, shed - self._flushed_shed
        d_skipped = skipped - self._flushed_skipped
        if not (d_received or d_shed or d_skipped):
            return
        pipe = self.live.r.pipeline(transaction=True)
        if d_received:
            self.live.count("received", "total", d_received, pipe)
        if d_shed:
            self.live.count("dropped", "shed", d_shed, pipe)
        if d_skipped:
            self.live.count("dropped", "other_partition", d_skipped, pipe)
        pipe.execute()
        self._flushed_received, self._flushed_shed, self._flushed_skipped = received, shed, skipped
