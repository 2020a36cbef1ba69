"""Valid pings during a flood of garbage on the location topics, against the same
pings without the flood, in the same run.

    .venv/bin/python bench/bench_garbage_flood.py [--valid 2000] [--rate 200] [--garbage-rate 20000]
                                                 [--rounds 2] [--profile FILE]

One ingest worker (in this process, its three threads) on the local Mosquitto
and Redis and a SQLite file.  A paced publisher process sends ``--valid``
location fixes at ``--rate`` msg/s (QoS 1, 100 inspectors, msg_id ``v…``).  In
the flood condition a second process at the same time sends garbage at about
``--garbage-rate`` msg/s (QoS 0) on the location topics of 400 other
inspectors: one third not JSON, one third JSON that is not an object, one third
fixes with an impossible latitude.  Conditions alternate (``--rounds`` each),
each with fresh namespaces.

Reported per condition: valid fixes stored in history (loss = sent - stored),
pings shed by the worker, end-to-end latency of the valid fixes (publish time
in the payload to the end of the worker's batch: p50, p95, max), the garbage
received and dead-lettered, and what /api/v1/health says at the end.
``--profile`` writes a yappi profile (all threads, CPU) of one flood run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import BROKER, REDIS, _client, _seed_city  # noqa: E402

N_VALID_INSPECTORS = 100


def valid_publisher(prefix: str, n: int, rate: float, ready, go) -> None:
    c = _client(f"bench-valid-{uuid.uuid4().hex[:6]}")
    c.loop_start()
    ready.set()
    go.wait()
    t0 = time.perf_counter()
    for i in range(n):
        due = t0 + i / rate
        while (d := due - time.perf_counter()) > 0:
            time.sleep(d)
        k = i % N_VALID_INSPECTORS
        body = {"ts": time.time(), "lat": 22.62 + k * 1e-4, "lon": 114.02 + (i // N_VALID_INSPECTORS) * 1e-5,
                "acc": 10, "msg_id": f"v{i}"}
        c.publish(f"{prefix}/v1/inspectors/I{k:04d}/location", json.dumps(body).encode(), qos=1)
    while c.want_write():
        time.sleep(0.01)
    time.sleep(1.0)
    c.disconnect()
    c.loop_stop()


def garbage_publisher(prefix: str, rate: float, duration_s: float, ready, go, sent) -> None:
    import random

    rnd = random.Random(3)
    kinds = [lambda: bytes(rnd.getrandbits(8) for _ in range(40)),
             lambda: b'["not", "an", "object"]',
             lambda: json.dumps({"ts": time.time(), "lat": 123.0, "lon": 114.0}).encode()]
    payloads = [(f"{prefix}/v1/inspectors/I{N_VALID_INSPECTORS + k % 400:04d}/location", kinds[k % 3]())
                for k in range(3000)]
    c = _client(f"bench-garbage-{uuid.uuid4().hex[:6]}")
    c.loop_start()
    ready.set()
    go.wait()
    t0 = time.perf_counter()
    n = 0
    while (now := time.perf_counter()) - t0 < duration_s:
        due = int((now - t0) * rate)
        while n < due:
            topic, body = payloads[n % len(payloads)]
            c.publish(topic, body, qos=0)
            n += 1
        time.sleep(0.002)
    while c.want_write():
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    sent.value = n


def run_once(flood: bool, args, profile: str | None = None) -> dict:
    import logging

    import redis
    from sqlalchemy import func, select

    from config.settings import load_settings
    from dashboard.context import WebContext
    from data.db import make_engine, migrate
    from data.models import DeadLetter, PingRow
    from ingest.worker import IngestWorker

    logging.basicConfig(level=logging.ERROR)
    prefix = f"gf{uuid.uuid4().hex[:8]}"
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/gf.sqlite3")
    migrate(engine)
    _seed_city(engine)
    settings = load_settings(mqtt_url=BROKER, redis_url=REDIS, data_dir=Path(tempfile.mkdtemp()), mqtt_prefix=prefix,
                             redis_namespace=prefix, mqtt_client_id=f"{prefix}-ingest", mqtt_share_group=prefix,
                             mqtt_session_expiry_s=60, owntracks_topic=f"{prefix}-ot", z2m_topic=f"{prefix}-z2m",
                             ingest_queue_max=args.queue)
    r = redis.Redis.from_url(REDIS)
    w = IngestWorker(settings, engine, r, tune_gc=False)
    latencies: list[float] = []
    done = w._done

    def timed_done(batch, items):
        done(batch, items)
        t = time.time()
        for it in items:
            if it.event is not None and getattr(it.event, "msg_id", None) and it.event.msg_id.startswith("v"):
                latencies.append(t - it.event.ts)

    w._done = timed_done
    if profile:
        import yappi

        yappi.set_clock_type("cpu")
        yappi.start()
    w.start()
    assert w.conn.subscribed.wait(10)
    time.sleep(0.5)
    ready_v, ready_g, go = mp.Event(), mp.Event(), mp.Event()
    sent = mp.Value("q", 0)
    duration = args.valid / args.rate
    procs = [mp.Process(target=valid_publisher, args=(prefix, args.valid, args.rate, ready_v, go))]
    if flood:
        procs.append(mp.Process(target=garbage_publisher,
                                args=(prefix, args.garbage_rate, duration + 1.0, ready_g, go, sent)))
    else:
        ready_g.set()
    for p in procs:
        p.start()
    ready_v.wait(30)
    ready_g.wait(30)
    go.set()
    for p in procs:
        p.join()
    # Let the worker finish what it received.
    last, stable = w.processed, time.monotonic()
    while time.monotonic() - stable < 3.0:
        time.sleep(0.2)
        if w.processed != last:
            last, stable = w.processed, time.monotonic()
    w._heartbeat()
    if profile:
        import io

        yappi.stop()
        buf = io.StringIO()
        yappi.get_func_stats().sort("tsub", "desc").print_all(
            out=buf, columns={0: ("name", 70), 1: ("ncall", 10), 2: ("tsub", 8), 3: ("ttot", 8)})
        yappi.get_thread_stats().print_all(out=buf)
        Path(profile).write_text(buf.getvalue())
    with engine.connect() as conn:
        stored = conn.execute(select(func.count(func.distinct(PingRow.msg_id)))
                              .where(PingRow.msg_id.like("v%"))).scalar_one()
        dead = conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one()
    ctx = WebContext(settings, engine, r, BROKER)
    health = ctx.health()
    ctx.feed.stop()
    w.stop()
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    lat = sorted(latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) > 2 else [float("nan")] * 99
    return {"flood": flood, "valid_sent": args.valid, "valid_stored": stored, "lost": args.valid - stored,
            "shed": w.shed, "garbage_sent": sent.value, "dead_letters": dead,
            "pre_rejected": getattr(w, "pre_rejected", 0),
            "p50_ms": q[49] * 1000, "p95_ms": q[94] * 1000, "max_ms": (lat[-1] if lat else float("nan")) * 1000,
            "health": health["status"], "health_shed": health.get("ingest_shed"), "health_dl_dropped": health.get("ingest_dead_letters_dropped")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--valid", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--garbage-rate", type=float, default=20000.0)
    ap.add_argument("--queue", type=int, default=20000, help="ingest_queue_max (the production default)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--profile")
    args = ap.parse_args()
    mp.set_start_method("fork")
    results = []
    for k in range(args.rounds):
        for flood in (False, True):
            res = run_once(flood, args, args.profile if (flood and k == 0) else None)
            results.append(res)
            print(json.dumps(res), flush=True)
    for flood in (False, True):
        rs = [r for r in results if r["flood"] == flood]
        print(f"{'flood' if flood else 'no flood':9s} lost {[r['lost'] for r in rs]} shed {[r['shed'] for r in rs]} "
              f"p50 {[round(r['p50_ms'], 1) for r in rs]} ms p95 {[round(r['p95_ms'], 1) for r in rs]} ms "
              f"max {[round(r['max_ms']) for r in rs]} ms garbage sent {[r['garbage_sent'] for r in rs]} "
              f"dead letters {[r['dead_letters'] for r in rs]} health {[r['health'] for r in rs]}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
