"""The ingest pipeline without MQTT: bench_ingest.py's messages, fed in batches.

    .venv/bin/python bench/profile_pipeline.py [--messages 40000] [--batch 1000] [--nogeo]
                                               [--cprofile out.prof] [--steps]

Builds the same city, inspectors and messages as ``bench_ingest.py`` and hands
them to ``IngestWorker.process`` in batches (the worker's ``ingest_batch_max``
by default), in one thread, with no broker traffic: what is left is the
worker's own cost per message (decode, validate, live state, geo engine,
history).  Reports CPU and wall microseconds per message, optionally per
pipeline step (``--steps``) and a cProfile of the whole run.  Use it to find
where the worker's time goes; use ``bench_ingest.py`` for the targets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_ingest as bi  # noqa: E402


def _messages(prefix: str, n: int) -> list[tuple[str, bytes]]:
    """The publisher's payloads (same seed, same order), without publishing them."""
    import json
    import random

    rnd = random.Random(7)
    anchors = [(22.60 + rnd.random() * 0.1, 114.00 + rnd.random() * 0.1) for _ in range(bi.N_INSPECTORS)]
    rounds = n // bi.N_INSPECTORS + 1
    base = time.time() - rounds * 30.0
    out = []
    for i in range(n):
        k, j = i % bi.N_INSPECTORS, i // bi.N_INSPECTORS
        lat, lon = anchors[k]
        hop = j // 20
        body = {"ts": base + j * 30.0, "lat": lat + hop * 0.0013 + rnd.gauss(0, 4e-5),
                "lon": lon + rnd.gauss(0, 4e-5), "acc": 10, "msg_id": f"b{i}"}
        out.append((f"{prefix}/v1/inspectors/I{k:04d}/location", json.dumps(body).encode()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--nogeo", action="store_true")
    ap.add_argument("--steps", action="store_true", help="CPU time per pipeline step")
    ap.add_argument("--cprofile", help="write a cProfile of the batches here (pstats file)")
    args = ap.parse_args()

    import numpy as np
    import redis
    from sqlalchemy import func, insert, select

    import ingest.pipeline as pl
    from config.settings import load_settings
    from data.db import make_engine, migrate
    from data.models import Enterprise, Inspector, PingRow, Unit
    from ingest.pipeline import Item
    from ingest.worker import IngestWorker

    prefix = f"prof{uuid.uuid4().hex[:8]}"
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(insert(Unit), [{"id": "U1", "name": "bench", "kind": "district_section"}])
        conn.execute(insert(Inspector), [{"id": f"I{i:04d}", "name": f"i{i}", "unit_id": "U1"}
                                         for i in range(bi.N_INSPECTORS)])
        rng = np.random.default_rng(1)
        lats, lons = rng.uniform(22.60, 22.70, bi.N_ENTERPRISES), rng.uniform(114.00, 114.10, bi.N_ENTERPRISES)
        conn.execute(insert(Enterprise), [{"id": f"E{i:06d}", "name": f"e{i}", "lat": float(la), "lon": float(lo),
                                           "risk": "blue"} for i, (la, lo) in enumerate(zip(lats, lons))])
    settings = load_settings(mqtt_url=bi.BROKER, redis_url=bi.REDIS, data_dir=Path(tempfile.mkdtemp()),
                             mqtt_prefix=prefix, redis_namespace=prefix, mqtt_client_id=f"{prefix}-ingest",
                             mqtt_share_group=prefix, mqtt_session_expiry_s=bi.BENCH_SESSION_EXPIRY_S,
                             owntracks_topic=f"{prefix}-ot", z2m_topic=f"{prefix}-z2m")
    r = redis.Redis.from_url(bi.REDIS)
    w = IngestWorker(settings, engine, r, geo=not args.nogeo, tune_gc=True)
    w._load_registry()
    w._warm_up()  # as IngestWorker.start does: the index, then gc.freeze()
    msgs = _messages(prefix, args.messages)
    if os.environ.get("PROF_GC_OFF"):
        import gc as _gc
        _gc.disable()

    step_cpu: dict[str, float] = defaultdict(float)
    geo_cpu: dict[str, float] = defaultdict(float)
    geo_wall: dict[str, float] = defaultdict(float)
    if args.steps and w.ctx.visits is None:
        import data.geo_store as gs  # noqa: F401
    if args.steps and w.ctx.visits is not None:
        # The geo engine's parts, by the same CPU clock.
        import data.geo_store as gs

        def clocked(owner, attr, label):
            orig = getattr(owner, attr)

            def f(*a, **k):
                t, w0 = time.process_time(), time.perf_counter()
                try:
                    return orig(*a, **k)
                finally:
                    geo_cpu[label] += time.process_time() - t
                    geo_wall[label] += time.perf_counter() - w0

            setattr(owner, attr, f)

        store = w.ctx.visits
        for attr in ("_batch_at", "_load_states", "_count_heat", "_apply_events", "_approaches", "_cas"):
            clocked(store, attr, attr.lstrip("_"))
        clocked(gs, "advance", "advance (visit state machine)")
        clocked(store, "_heat", "heat script")
        clocked(w.ctx.live, "_apply_pings", "apply_pings script")

    if args.steps:
        for step in pl.PIPELINE:
            orig = step.run

            def timed(batch, items, ctx, _orig=orig, _name=step.name):
                t = time.process_time()
                try:
                    return _orig(batch, items, ctx)
                finally:
                    step_cpu[_name] += time.process_time() - t

            step.run = timed

    import gc

    gc_s = [0.0, [0, 0, 0]]
    gc_t0 = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            gc_s[0] += time.perf_counter() - gc_t0[0]
            gc_s[1][info["generation"]] += 1

    gc.callbacks.append(on_gc)
    prof = None
    if args.cprofile:
        import cProfile

        prof = cProfile.Profile()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    for a in range(0, len(msgs), args.batch):
        now = time.time()
        w.process([Item(t, p, 0, 0, now) for t, p in msgs[a:a + args.batch]])
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = len(msgs)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(PingRow)).scalar_one()
    print(f"{'nogeo' if args.nogeo else 'full'}: {n} msgs in batches of {args.batch}: "
          f"{cpu / n * 1e6:.1f} us CPU/msg, {wall / n * 1e6:.1f} us wall/msg, {stored} stored")
    print(f"  cyclic GC: {gc_s[0] / n * 1e6:.1f} us/msg, collections per generation {gc_s[1]}")
    if args.steps:
        for name, s in step_cpu.items():
            print(f"  {name:<18} {s / n * 1e6:7.1f} us CPU/msg")
        for name, s in geo_cpu.items():
            print(f"    geo {name:<28} {s / n * 1e6:7.1f} us CPU/msg  {geo_wall[name] / n * 1e6:7.1f} us wall/msg")
    for k in r.scan_iter(match=f"{prefix}:*", count=1000):
        r.delete(k)


if __name__ == "__main__":
    main()
