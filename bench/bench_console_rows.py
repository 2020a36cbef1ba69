"""The console's inspector refresh at ten times a city (issue 14 §3, "the console's
remaining cost at 20,000 inspectors").

    .venv/bin/python bench/bench_console_rows.py [--inspectors 20000] [--rounds 30] [--profile]

One process does what a web worker does for a dispatcher's console (as
``bench_web_memory.py``: ``dashboard.wsgi.build_app`` on the generated city in SQLite
and a private ``redis-server``), with ``--inspectors`` registered and each with a fix.
Each round, a tenth of them move (their fixes written to Redis as the ingest writes
them), and then, timed:

- **rows**: ``Snapshot.inspectors_json()``, every inspector's row (the API's
  ``/inspectors`` and the screens' layers and lists start from it);
- **refresh**: ``dispatch_inspectors`` when its inspector layer and list are due (every 4-5 s
  on each open console): the rows, the layer (counts per cell at this many) and the
  list's first rows.

Medians and p95 over the rounds.  ``--profile`` runs the rounds under cProfile and
prints the functions with the most time of their own.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_web_memory import build_web, prepare  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["tiny", "demo", "city"], default="city")
    ap.add_argument("--inspectors", type=int, default=20000, help="registered and reporting (the city: 2,000)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--move", type=float, default=0.1, help="share of the inspectors that move between rounds")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-console-rows-"))
    db, redis_proc, port = prepare(tmp, args.scale, args.inspectors)
    try:
        from flask import g, session

        from dashboard.pages import dispatch
        from data.auth import get_user
        from geo.types import Ping

        server, engine = build_web(tmp, db, port)
        ctx = server.extensions["anjian"]
        reg = ctx.registry()
        server.extensions["anjian_city"].get()
        user = get_user(engine, "disp-b")
        ids = sorted(reg.inspectors)
        rng = random.Random(7)
        bounds = [[22.60, 113.98], [22.75, 114.12]]

        def move() -> None:
            now = time.time()
            ctx.live.apply_pings([Ping(i, now, 22.62 + rng.random() * 0.12, 114.0 + rng.random() * 0.1, acc_m=8.0,
                                       speed_mps=1.2, batt_pct=70.0, msg_id=f"m{rng.getrandbits(48):x}")
                                  for i in rng.sample(ids, int(len(ids) * args.move))])

        def one_round(k: int) -> tuple[float, float, int]:
            move()
            t0 = time.perf_counter()
            rows = ctx.snapshot().inspectors_json()
            t1 = time.perf_counter()
            with server.test_request_context("/_dash-update-component", method="POST"):
                session["lang"] = "zh-CN"
                g.principal = user
                dispatch.dispatch_inspectors(k, None, {}, None, 12, bounds)
            return (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000, len(rows)

        for k in range(3):  # warm: the mirror's first full read, memos
            one_round(k)
        prof = cProfile.Profile() if args.profile else None
        rows_ms, tick_ms = [], []
        if prof:
            prof.enable()
        for k in range(args.rounds):
            r, t, n = one_round(k)
            rows_ms.append(r)
            tick_ms.append(t)
        if prof:
            prof.disable()
        ctx.feed.stop()
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)

    print(f"{n} inspectors with a fix, {int(n * args.move)} moved before each of {args.rounds} rounds"
          f"{' (under cProfile)' if prof else ''}")
    print(f"rows (Snapshot.inspectors_json): median {statistics.median(rows_ms):.1f} ms, p95 {pct(rows_ms, .95):.1f} ms")
    print(f"the console's layer and list refresh (dispatch_inspectors, its own rows included): "
          f"median {statistics.median(tick_ms):.1f} ms, p95 {pct(tick_ms, .95):.1f} ms")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
