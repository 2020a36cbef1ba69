"""``GET /metrics``, served by prometheus_client.

Two sources make up the page:

* ``LiveStateCollector``: the figures every process writes to Redis (the ingest
  workers' accounting of docs/mqtt.md, their latency histogram, queues and lag, the
  alert engine's lost events, the live version).  They are read at scrape time, so
  whichever web worker answers, the page is the same.
* ``WebMetrics.callback_seconds``: the web process's own instrument, the server
  time of each screen callback, recorded where the callback runs.

Under gunicorn (``python app.py web``: several worker processes behind one
address) the callback histogram is kept in prometheus_client's multiprocess mode:
the master sets ``PROMETHEUS_MULTIPROC_DIR`` (``dashboard.wsgi``) before any worker
imports prometheus_client, each worker writes its samples to files there, and a
scrape sums every worker's files (``MultiProcessCollector``), so the count does
not depend on which worker took the scrape.  The one-process demo and the tests
keep the histogram in memory, in a registry of their own ``WebContext``.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from data.live import LATENCY_BUCKETS_S, LiveState

# Where prometheus_client's multiprocess mode keeps each process's samples.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The Prometheus text format the page is written in (docs/api.md).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class LiveStateCollector:
    """The shared figures of Redis (``data.live``), as Prometheus metric families."""

    def __init__(self, live: LiveState):
        self.live = live

    def collect(self):
        live = self.live
        # The accounting of docs/mqtt.md: every message received is applied,
        # dead-lettered or ignored, each with its kind or reason.
        applied, rejected, ignored = live.counters("in"), live.counters("rejected"), live.counters("dropped")
        yield CounterMetricFamily("anjian_messages_received", "Messages the ingest workers received.",
                                  value=live.counters("received").get("total", 0))
        yield _labelled(CounterMetricFamily, "anjian_messages_in", "Messages applied, by kind.", "kind", applied)
        yield _labelled(CounterMetricFamily, "anjian_messages_rejected", "Messages dead-lettered, by reason code.",
                        "reason", rejected)
        yield _labelled(CounterMetricFamily, "anjian_messages_ignored",
                        "Messages ignored on purpose (by design, duplicates, shed), by reason.", "reason", ignored)
        accounted = CounterMetricFamily(
            "anjian_messages_accounted",
            "Messages received, by outcome; the three sum to anjian_messages_received_total once queues drain.",
            labels=["outcome"])
        accounted.add_metric(["applied"], sum(applied.values()))
        accounted.add_metric(["dead_lettered"], sum(rejected.values()))
        accounted.add_metric(["ignored"], sum(ignored.values()))
        yield accounted
        yield _labelled(CounterMetricFamily, "anjian_events_lost",
                        "Alert-engine stream events lost before the engine handled them, by reason.", "reason",
                        live.counters("events_lost"))
        yield _labelled(CounterMetricFamily, "anjian_engine_events_skipped",
                        "Alert-engine stream events read and not applied, by reason (unknown_sensor: a sensor "
                        "deleted between the ingest and the engine).", "reason", live.counters("engine_skipped"))
        yield _labelled(CounterMetricFamily, "anjian_visit_states_discarded",
                        "Inspectors' visit states the geo engine could not read and started afresh, by reason.",
                        "reason", live.counters("visit_states_discarded"))
        seq = live.counters("seq")
        yield _labelled(CounterMetricFamily, "anjian_sequence",
                        "Devices' message counters (seq): messages missing in gaps (lost before the ingest), "
                        "late messages, device restarts.", "kind",
                        {k: seq.get(k, 0) for k in ("gap", "late", "restart")})
        yield CounterMetricFamily(
            "anjian_broker_dropped_messages",
            "Messages the MQTT broker said it dropped (its own count rising, e.g. Mosquitto's "
            "$SYS/broker/publish/messages/dropped) since Anjian watched it: a subscriber's queue was full.",
            value=live.broker_dropped()[0])
        # The workers count cumulative buckets ("<= le") in Redis (ingest/worker.py).
        lat = live.counters("latency")
        total = float(live.r.hget(live.key("metrics", "latency_sum"), "sum") or 0.0)
        seen = {float(k[3:]): v for k, v in lat.items() if k.startswith("le_")}
        buckets = [(floatToGoString(b), seen.get(b, 0)) for b in LATENCY_BUCKETS_S]
        buckets.append(("+Inf", lat.get("count", 0)))
        yield HistogramMetricFamily("anjian_processing_latency_seconds",
                                    "From receipt by a worker to stored, per message.",
                                    buckets=buckets, sum_value=total)
        workers = sorted(live.workers().items())
        yield _per_worker(GaugeMetricFamily, "anjian_ingest_queue_depth", "Messages waiting in a worker's queues.",
                          workers, "queue")
        yield _per_worker(GaugeMetricFamily, "anjian_ingest_lag_seconds",
                          "Age of the oldest message a worker has not stored.", workers, "lag_s")
        yield _per_worker(CounterMetricFamily, "anjian_ingest_shed",
                          "Pings shed because a worker's ping queue was full.", workers, "shed")
        yield GaugeMetricFamily("anjian_live_version", "Live-state version counter.", value=live.version())


def _labelled(family, name: str, help_: str, label: str, values: dict):
    f = family(name, help_, labels=[label])
    for k, v in sorted(values.items()):
        f.add_metric([k], v)
    return f


def _per_worker(family, name: str, help_: str, workers: list, field: str):
    f = family(name, help_, labels=["worker"])
    for w, d in workers:
        f.add_metric([w], d.get(field, 0))
    return f


class WebMetrics:
    """One web process's ``/metrics``: the shared figures and its own instruments."""

    def __init__(self, live: LiveState):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LiveStateCollector(live))
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            # Every worker's samples, from the files of the multiprocess directory
            # (this process's own among them); the instrument itself registers nowhere.
            MultiProcessCollector(self.registry, path)
        self.callback_seconds = Histogram(
            "anjian_web_callback_seconds", "Server time of a screen's Dash callback, by page.callback.",
            ["callback"], buckets=LATENCY_BUCKETS_S, registry=None if path else self.registry)

    def observe_callback(self, name: str, seconds: float) -> None:
        self.callback_seconds.labels(name).observe(seconds)

    def exposition(self) -> bytes:
        """The page, in the Prometheus text format 0.0.4."""
        return generate_latest(self.registry)

