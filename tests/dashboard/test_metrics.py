"""GET /metrics read as Prometheus reads it (prometheus_client's own parser), against
figures written to the test Redis the way the ingest workers and the alert engine
write them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from data.live import LATENCY_BUCKETS_S


def scrape(client) -> dict[str, dict[tuple, float]]:
    """family name -> {(sample name, sorted labels): value}."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain" and "version=0.0.4" in resp.headers["Content-Type"]
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(resp.get_data(as_text=True)):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
    return out


def test_metrics_report_the_shared_figures(web, client_as):
    ctx, _server, _app, _users = web
    live = ctx.live
    live.count("received", "total", 12)
    live.count("in", "ping", 7)
    live.count("in", "gas", 2)
    live.count("rejected", "bad_json", 2)
    live.count("dropped", "duplicate", 1)
    live.count_lost("gas_events_trimmed_unread", 3)
    live.count("visit_states_discarded", "unreadable", 2)  # as data/geo_store.py counts them
    # Three messages stored: 4 ms, 8 ms and 3 s after receipt (cumulative buckets, as ingest/worker.py counts).
    for b in LATENCY_BUCKETS_S:
        n = (b >= 0.005) + (b >= 0.01) + (b >= 5.0)
        if n:
            live.count("latency", f"le_{b}", n)
    live.count("latency", "count", 3)
    live.r.hincrbyfloat(live.key("metrics", "latency_sum"), "sum", 3.012)
    live.heartbeat("w-1", queue=5, lag_s=0.25, shed=4)
    live.r.set(live.key("ver"), 42)

    m = scrape(client_as("wall"))
    assert m["anjian_messages_received"] == {("anjian_messages_received_total", ()): 12}
    assert m["anjian_messages_in"] == {("anjian_messages_in_total", (("kind", "gas"),)): 2,
                                       ("anjian_messages_in_total", (("kind", "ping"),)): 7}
    assert m["anjian_messages_rejected"] == {("anjian_messages_rejected_total", (("reason", "bad_json"),)): 2}
    assert m["anjian_messages_ignored"] == {("anjian_messages_ignored_total", (("reason", "duplicate"),)): 1}
    assert m["anjian_messages_accounted"] == {
        ("anjian_messages_accounted_total", (("outcome", "applied"),)): 9,
        ("anjian_messages_accounted_total", (("outcome", "dead_lettered"),)): 2,
        ("anjian_messages_accounted_total", (("outcome", "ignored"),)): 1,
    }
    assert m["anjian_events_lost"] == {("anjian_events_lost_total", (("reason", "gas_events_trimmed_unread"),)): 3}
    assert m["anjian_visit_states_discarded"] == {
        ("anjian_visit_states_discarded_total", (("reason", "unreadable"),)): 2}
    lat = m["anjian_processing_latency_seconds"]
    bucket = {dict(k[1])["le"]: v for k, v in lat.items() if k[0].endswith("_bucket")}
    assert bucket["0.005"] == 1 and bucket["0.01"] == 2 and bucket["2.5"] == 2 and bucket["5.0"] == 3
    assert bucket["+Inf"] == 3 and len(bucket) == len(LATENCY_BUCKETS_S) + 1
    assert lat[("anjian_processing_latency_seconds_count", ())] == 3
    assert abs(lat[("anjian_processing_latency_seconds_sum", ())] - 3.012) < 1e-9
    assert m["anjian_ingest_queue_depth"] == {("anjian_ingest_queue_depth", (("worker", "w-1"),)): 5}
    assert m["anjian_ingest_lag_seconds"] == {("anjian_ingest_lag_seconds", (("worker", "w-1"),)): 0.25}
    assert m["anjian_ingest_shed"] == {("anjian_ingest_shed_total", (("worker", "w-1"),)): 4}
    assert m["anjian_live_version"] == {("anjian_live_version", ()): 42}


def test_callback_times_are_a_histogram_per_callback(web, client_as):
    ctx, _server, _app, _users = web
    ctx.metrics.observe_callback("wall.wall_alerts", 0.03)
    ctx.metrics.observe_callback("wall.wall_alerts", 0.2)
    ctx.metrics.observe_callback("dispatch.dispatch_tick", 7.0)
    h = scrape(client_as("dispatcher"))["anjian_web_callback_seconds"]

    def sample(suffix: str, callback: str, le: str | None = None) -> float:
        labels = {"callback": callback} | ({"le": le} if le else {})
        return h[(f"anjian_web_callback_seconds{suffix}", tuple(sorted(labels.items())))]

    assert sample("_bucket", "wall.wall_alerts", "0.025") == 0
    assert sample("_bucket", "wall.wall_alerts", "0.05") == 1
    assert sample("_bucket", "wall.wall_alerts", "0.25") == 2
    assert sample("_bucket", "wall.wall_alerts", "+Inf") == 2
    assert sample("_count", "wall.wall_alerts") == 2
    assert abs(sample("_sum", "wall.wall_alerts") - 0.23) < 1e-9
    assert sample("_bucket", "dispatch.dispatch_tick", "5.0") == 0
    assert sample("_bucket", "dispatch.dispatch_tick", "10.0") == 1
    assert sample("_count", "dispatch.dispatch_tick") == 1


def test_metrics_ask_for_credentials(web):
    _ctx, server, _app, _users = web
    assert server.test_client().get("/metrics").status_code == 401
