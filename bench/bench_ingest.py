"""Ingest throughput against a real Mosquitto: the full ingest vs a bare counter.

    .venv/bin/python bench/bench_ingest.py [--messages 100000] [--repeats 3] [--db sqlite|postgresql] [--inspectors 500]

Each consumer runs in its own process; the same publisher process publishes the
same pre-encoded own-scheme location messages (QoS 0) for each.  Runs
alternate bare / full, so machine noise hits both alike; the report gives
medians and the ratio full/bare measured in the same run.

- bare: a paho subscriber whose on_message only counts.
- full: one IngestWorker (decode, validate, resolve, live state in Redis, visits
  and heat, history in SQL) with its queue large enough that nothing is shed.
- nogeo: the same without the geo engine (visits, duplicates, heat), to measure
  what the geo engine costs.
- full1, full2 (optional, ``--kinds bare,nogeo,full,full2,full1``): full with
  the whole pipeline on one worker thread, or on two (front; geo and history
  on one back thread), as before the worker had three (ingest/worker.py), for
  a before/after in the same run.
- any kind but bare with ``@N`` (e.g. ``full@1000``): the worker's
  ingest_batch_max set to N instead of the default; with ``/G`` (e.g.
  ``full/3000``, ``full@1000/1000``), its ingest_catch_up_max set to G
  (G no larger than the batch: no thread takes batches together).
- fullx2, nogeox2 (optional): two worker processes in one shared subscription
  ($share), one database and one Redis namespace, reported as one consumer.

``--inspectors`` sets how many inspectors the fixes come from (500 by default; the
geo engine's cost is paid per inspector, so the city's 2,000 and ten times that,
20,000, run slower: docs/benchmarks.md section 14).

Reported per consumer: msg/s (first message in to last message done),
CPU-seconds per 1,000 messages (user+system of the consumer process) and peak
RSS.  ``--profile`` writes a yappi (all threads, CPU clock) profile of the full worker.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BROKER = os.environ.get("ANJIAN_BENCH_MQTT", "mqtt://127.0.0.1:1883")
REDIS = os.environ.get("ANJIAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")
# Each run subscribes under fresh client ids; a session (and what the broker
# queues for it) need not outlive the run by the production default of an hour.
BENCH_SESSION_EXPIRY_S = 60
PG = os.environ.get("ANJIAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
N_INSPECTORS = 500
N_ENTERPRISES = 20_000
# A consumer stops this long after its last message (QoS 0 may lose some).
IDLE_STOP_S = 3.0


def _client(client_id: str):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", 1883)
    return c


def publisher(prefix: str, n: int, ready: mp.Event, go: mp.Event, inspectors: int = N_INSPECTORS) -> None:
    """Realistic fixes: each inspector reports every 30 s (a phone's usual
    interval), walking slowly around its own anchor; the replay covers the last
    n / 500 * 30 s so every timestamp is in the past and in order per inspector."""
    import random

    rnd = random.Random(7)
    anchors = [(22.60 + rnd.random() * 0.1, 114.00 + rnd.random() * 0.1) for _ in range(inspectors)]
    rounds = n // inspectors + 1
    base = time.time() - rounds * 30.0
    payloads = []
    for i in range(n):
        k, j = i % inspectors, i // inspectors
        lat, lon = anchors[k]
        # Ten minutes at a spot, then ~150 m on to the next (metres as degrees / 111 km).
        hop = j // 20
        body = {"ts": base + j * 30.0, "lat": lat + hop * 0.0013 + rnd.gauss(0, 4e-5),
                "lon": lon + rnd.gauss(0, 4e-5), "acc": 10, "msg_id": f"b{i}"}
        payloads.append((f"{prefix}/v1/inspectors/I{k:04d}/location", json.dumps(body).encode()))
    c = _client(f"bench-pub-{uuid.uuid4().hex[:6]}")
    c.loop_start()
    ready.set()
    go.wait()
    for topic, body in payloads:
        c.publish(topic, body, qos=0)
    # paho's queue drains in its thread; wait until it has.
    while c.want_write():
        time.sleep(0.01)
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()


def _thread_cpu_s(native_id: int | None) -> float:
    """CPU seconds (user + system) of one thread of this process (Linux /proc; 0 elsewhere)."""
    if native_id is None:
        return 0.0
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _usage() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024.0}


def bare_consumer(prefix: str, n: int, ready: mp.Event, out: mp.Queue) -> None:
    state = {"count": 0, "first": None, "last": None}

    def on_message(c, u, m):
        if state["first"] is None:
            state["first"] = time.perf_counter()
        state["count"] += 1
        state["last"] = time.perf_counter()

    c = _client(f"bench-bare-{uuid.uuid4().hex[:6]}")
    c.on_message = on_message
    c.subscribe(f"{prefix}/v1/inspectors/+/location", qos=0)
    c.loop_start()
    time.sleep(0.5)
    cpu0 = _usage()["cpu_s"]
    ready.set()
    deadline = time.monotonic() + 300
    while state["count"] < n and time.monotonic() < deadline:
        # QoS 0: the broker may drop for a slow subscriber; stop when the stream has dried up.
        if state["last"] is not None and time.perf_counter() - state["last"] > IDLE_STOP_S:
            break
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    u = _usage()
    out.put({"count": state["count"], "elapsed_s": (state["last"] or 0) - (state["first"] or 0),
             "cpu_s": u["cpu_s"] - cpu0, "peak_rss_mb": u["peak_rss_mb"]})


def _seed_city(engine, inspectors: int = N_INSPECTORS) -> None:
    """The units, inspectors and a demo-sized city for the geo engine to look pings up against."""
    import numpy as np
    from sqlalchemy import insert

    from data.models import Enterprise, Inspector, Unit

    with engine.begin() as conn:
        conn.execute(insert(Unit), [{"id": "U1", "name": "bench", "kind": "district_section"}])
        conn.execute(insert(Inspector), [{"id": f"I{i:04d}", "name": f"i{i}", "unit_id": "U1"}
                                         for i in range(inspectors)])
        rng = np.random.default_rng(1)
        lats, lons = rng.uniform(22.60, 22.70, N_ENTERPRISES), rng.uniform(114.00, 114.10, N_ENTERPRISES)
        conn.execute(insert(Enterprise), [{"id": f"E{i:06d}", "name": f"e{i}", "lat": float(la), "lon": float(lo),
                                           "risk": "blue"} for i, (la, lo) in enumerate(zip(lats, lons))])


def full_consumer(prefix: str, n: int, db_url: str, ready: mp.Event, out: mp.Queue, profile: str | None,
                  geo: bool = True, threads: int = 3, worker_no: int = 0, seed: bool = True,
                  overrides: dict | None = None, inspectors: int = N_INSPECTORS) -> None:
    """One ingest worker process.  ``seed``: create the schema and the city (the
    second of two processes sharing a database and the stream does not)."""
    import logging

    import redis
    from sqlalchemy import func, select

    from config.settings import load_settings
    from data.db import make_engine, migrate
    from data.models import PingRow
    from ingest.worker import IngestWorker

    logging.basicConfig(level=logging.WARNING)
    engine = make_engine(db_url)
    if seed:
        migrate(engine)
        _seed_city(engine, inspectors)
    settings = load_settings(mqtt_url=BROKER, redis_url=REDIS, data_dir=Path(tempfile.mkdtemp()), mqtt_prefix=prefix,
                             redis_namespace=prefix, mqtt_client_id=f"{prefix}-ingest", mqtt_share_group=prefix,
                             mqtt_session_expiry_s=BENCH_SESSION_EXPIRY_S, owntracks_topic=f"{prefix}-ot",
                             z2m_topic=f"{prefix}-z2m", ingest_queue_max=n + 10,
                             **(overrides or {}))
    r = redis.Redis.from_url(REDIS)
    w = IngestWorker(settings, engine, r, worker_no=worker_no, geo=geo, tune_gc=True, threads=threads)
    if profile:
        import yappi  # profiles every thread: paho's network thread and the worker

        yappi.set_clock_type("cpu")
        yappi.start()
    w.start()
    w.conn.subscribed.wait(10)
    time.sleep(0.5)
    cpu0 = _usage()["cpu_s"]
    # Where the CPU goes: paho's network thread and the worker thread.
    tids = {"paho": w.conn.client._thread.native_id, "worker": w._thread.native_id}
    tids.update({name: t.native_id for name, t in w.stage_threads.items()})
    tcpu0 = {k: _thread_cpu_s(t) for k, t in tids.items()}
    ready.set()
    first = None
    deadline = time.monotonic() + 600
    done = 0
    last = time.perf_counter()
    while time.monotonic() < deadline:
        if first is None and (w.processed or w.ping_q.qsize()):
            first = time.perf_counter()
        if w.processed != done:
            done = w.processed
            last = time.perf_counter()
        if done >= n or (first is not None and time.perf_counter() - last > IDLE_STOP_S):
            break
        time.sleep(0.005)
    if profile:
        import io

        yappi.stop()
        buf = io.StringIO()
        stats = yappi.get_func_stats()
        stats.sort("tsub", "desc").print_all(out=buf, columns={0: ("name", 60), 1: ("ncall", 10),
                                                                 2: ("tsub", 8), 3: ("ttot", 8)})
        yappi.get_thread_stats().print_all(out=buf)
        Path(profile).write_text(buf.getvalue())
    u = _usage()
    tcpu = {k: _thread_cpu_s(t) - tcpu0[k] for k, t in tids.items()}
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(PingRow)).scalar_one()
    w.stop()
    out.put({"count": done, "stored": stored, "shed": w.shed, "elapsed_s": last - (first or last),
             # perf_counter is CLOCK_MONOTONIC here: comparable across processes.
             "first_t": first or last, "last_t": last,
             "cpu_s": u["cpu_s"] - cpu0, "peak_rss_mb": u["peak_rss_mb"], "thread_cpu_s": tcpu,
             "batches": w.batches, "geo_calls": w.geo_calls})


def run_once(kind: str, n: int, db: str, profile: str | None = None, inspectors: int = N_INSPECTORS) -> dict:
    """One consumer kind against one publisher.  A kind ending in ``x2`` (fullx2,
    nogeox2) is two worker processes in one shared subscription, one database and
    one Redis namespace: the way a city scales ingest out (issue 3: one
    inspector's pings may land on either)."""
    ctx = mp.get_context("spawn")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    out = ctx.Queue()
    schema_url = None
    base, _, catch_up = kind.partition("/")
    base, _, batch_max = base.partition("@")
    overrides = {**({"ingest_batch_max": int(batch_max)} if batch_max else {}),
                 **({"ingest_catch_up_max": int(catch_up)} if catch_up else {})}
    base, procs = (base[:-2], 2) if base.endswith("x2") else (base, 1)
    consumers = []
    if base == "bare":
        ready = ctx.Event()
        consumers.append((ctx.Process(target=bare_consumer, args=(prefix, n, ready, out)), ready))
    else:
        if db == "postgresql":
            from sqlalchemy import create_engine, text

            schema_url = f"{PG}?options=-csearch_path%3D{prefix}"
            with create_engine(PG).begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{prefix}"'))
            url = schema_url
        else:
            url = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
        for no in range(procs):
            ready = ctx.Event()
            consumers.append((ctx.Process(target=full_consumer, args=(
                prefix, n, url, ready, out, profile, base != "nogeo", {"full1": 1, "full2": 2}.get(base, 3),
                no, no == 0, overrides, inspectors)), ready))
    for cons, ready in consumers:  # one after the other: the first seeds the database
        cons.start()
        ready.wait(120)
    go = ctx.Event()
    pub_ready = ctx.Event()
    pub = ctx.Process(target=publisher, args=(prefix, n, pub_ready, go, inspectors))
    pub.start()
    pub_ready.wait(120)
    go.set()
    parts = [out.get(timeout=900) for _ in consumers]
    pub.join(60)
    for cons, _ in consumers:
        cons.join(60)
    import redis

    r = redis.Redis.from_url(REDIS)
    for k in r.scan_iter(match=f"{prefix}:*", count=1000):
        r.delete(k)
    if schema_url:
        from sqlalchemy import create_engine, text

        with create_engine(PG).begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{prefix}" CASCADE'))
    res = _combine(parts)
    res["msg_per_s"] = res["count"] / res["elapsed_s"] if res["elapsed_s"] else 0.0
    res["cpu_s_per_1000"] = res["cpu_s"] / max(res["count"], 1) * 1000
    return res


def _combine(parts: list[dict]) -> dict:
    """Two processes' results as one consumer's: messages summed over the span from
    the first message in (either) to the last done (either); CPU summed; RSS the
    larger (each process's own peak)."""
    if len(parts) == 1:
        return parts[0]
    res = {"count": sum(p["count"] for p in parts), "cpu_s": sum(p["cpu_s"] for p in parts),
           "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
           "stored": max(p["stored"] for p in parts),  # both count the one shared table
           "shed": sum(p["shed"] for p in parts), "batches": sum(p["batches"] for p in parts),
           "geo_calls": sum(p["geo_calls"] for p in parts),
           "elapsed_s": max(p["last_t"] for p in parts) - min(p["first_t"] for p in parts),
           "split": [p["count"] for p in parts]}
    tcpu: dict[str, float] = {}
    for p in parts:
        for t, c in p.get("thread_cpu_s", {}).items():
            tcpu[t] = tcpu.get(t, 0.0) + c
    res["thread_cpu_s"] = tcpu
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--inspectors", type=int, default=N_INSPECTORS,
                    help=f"inspectors the fixes come from ({N_INSPECTORS}; the city has 2,000, ten times it 20,000)")
    ap.add_argument("--profile", help="write a yappi CPU profile (all threads) of one extra full run here")
    ap.add_argument("--kinds", default="bare,nogeo,full",
                    help="consumers to run (comma-separated; the ratios need bare, nogeo and full), e.g. full "
                         "alone to attach py-spy to its process; full1 and full2 are full on one and two "
                         "worker threads (the default is three); fullx2 and nogeox2 are two worker processes")
    args = ap.parse_args()
    kinds = tuple(args.kinds.split(","))
    results = {k: [] for k in kinds}
    for i in range(args.repeats):
        for kind in kinds:
            r = run_once(kind, args.messages, args.db, inspectors=args.inspectors)
            results[kind].append(r)
            print(f"run {i + 1} {kind:>4}: {r['msg_per_s']:>8.0f} msg/s  {r['cpu_s_per_1000']:.3f} CPU-s/1k  "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB  ({r['count']} msgs"
                  + (f", {r['stored']} stored, {r['shed']} shed" if kind != "bare" else "") + ")"
                  + "".join(f"  {t} {c / max(r['count'], 1) * 1000:.3f}" for t, c in r.get("thread_cpu_s", {}).items())
                  + (f"  {r['count'] / r['batches']:.0f} msgs/batch" if r.get("batches") else "")
                  + (f"  {r['count'] / r['geo_calls']:.0f} msgs/geo call" if r.get("geo_calls") else "")
                  + (f"  split {'/'.join(map(str, r['split']))}" if "split" in r else ""),
                  flush=True)
    if not args.repeats:
        if args.profile:
            run_once("full", args.messages, args.db, profile=args.profile, inspectors=args.inspectors)
            print(f"profile written to {args.profile}")
        return
    if not {"bare", "nogeo", "full"} <= set(kinds):
        return
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("msg_per_s", "cpu_s_per_1000", "peak_rss_mb")}
           for k, v in results.items()}
    ratio = med["full"]["msg_per_s"] / med["bare"]["msg_per_s"]
    print(f"\nmedians over {args.repeats} runs of {args.messages} messages from {args.inspectors} inspectors "
          f"(db={args.db}):")
    print("| consumer | msg/s | CPU-s per 1,000 msgs | peak RSS (MB) |")
    print("|---|---|---|---|")
    for k in kinds:
        m = med[k]
        print(f"| {k} | {m['msg_per_s']:.0f} | {m['cpu_s_per_1000']:.3f} | {m['peak_rss_mb']:.0f} |")
    geo_cost = 1 - med["full"]["msg_per_s"] / med["nogeo"]["msg_per_s"]
    print(f"\nfull / bare = {ratio:.2f} (target >= 0.60)")
    print(f"geo engine (visits, duplicates, heat) costs {geo_cost:.0%} of ingest throughput (target < 20%)")
    # nogeo's rate varies most from run to run; each run's full and nogeo ran
    # seconds apart, so the cost per run is the steadier figure.
    for full_k, nogeo_k in (("full", "nogeo"), ("fullx2", "nogeox2")):
        if {full_k, nogeo_k} <= set(results):
            per_run = [1 - f["msg_per_s"] / g["msg_per_s"] for f, g in zip(results[full_k], results[nogeo_k])]
            print(f"  {full_k} against {nogeo_k}, run by run: " + ", ".join(f"{c:.0%}" for c in per_run)
                  + f" (median {statistics.median(per_run):.0%})")
    for k, n in (("full2", "two worker threads"), ("full1", "one worker thread")):
        if k in med:
            print(f"full on {n}: {k} / bare = {med[k]['msg_per_s'] / med['bare']['msg_per_s']:.2f}, "
                  f"geo cost {1 - med[k]['msg_per_s'] / med['nogeo']['msg_per_s']:.0%}")
    if {"fullx2", "nogeox2"} <= set(med):
        print(f"two worker processes: fullx2 / bare = {med['fullx2']['msg_per_s'] / med['bare']['msg_per_s']:.2f}, "
              f"geo cost {1 - med['fullx2']['msg_per_s'] / med['nogeox2']['msg_per_s']:.0%} "
              f"(fullx2 / full = {med['fullx2']['msg_per_s'] / med['full']['msg_per_s']:.2f})")
    if args.profile:
        run_once("full", args.messages, args.db, profile=args.profile, inspectors=args.inspectors)
        print(f"profile written to {args.profile}")


if __name__ == "__main__":
    main()
