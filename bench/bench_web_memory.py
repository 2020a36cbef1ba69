"""The web worker's memory, part by part (issue 14: "the web tier's 840 MB, unexplained").

    .venv/bin/python bench/bench_web_memory.py [--scale city] [--passes 40] [--trace]

One process does what one gunicorn worker does (``dashboard.wsgi.build_app``), and
the memory is read after each part:

1. **start**: the interpreter with psutil.
2. **imports**: the modules ``build_app`` imports (Flask, Dash, plotly, dash-leaflet,
   numpy, pandas, shapely, geopandas, SQLAlchemy, redis-py, every page).
3. **app**: ``build_app`` (the Flask server, the Dash app and its callbacks) and its
   warm-up: the registry (inspectors, sensors, enterprise names), the city map (areas
   and every enterprise's position, in both datums) and the wall's KPIs.
4. **screens**: ``--passes`` rounds of the screens' callbacks, as the wall, a
   dispatcher and an officer (each page's tick, the slow tick, heat, trails,
   enterprises, hazards, tasks), as their polls call them.

The city is the generated Longhua city at ``--scale`` (``city``: 130,000 enterprises,
2,000 inspectors, 50,000 detectors) in a fresh SQLite file, written by a child
process (``app.py demo-city``), with every inspector's fix and every detector's state
in a private ``redis-server``, also written by a child, so that none of that work is
in this process's memory.

Reported per part: RSS, USS (the pages only this process holds: what a second
worker adds) and, with ``--trace``, the Python heap (tracemalloc) with its largest
allocation sites.  tracemalloc costs memory and time of its own: its RSS is not the
one to quote; run once without ``--trace`` for that.
"""

from __future__ import annotations

import argparse
import contextvars
import gc
import importlib
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-web-memory"


def mem() -> dict:
    p = psutil.Process()
    full = p.memory_full_info()
    return {"rss": full.rss / 2**20, "uss": full.uss / 2**20, "objects": len(gc.get_objects())}


FILL = textwrap.dedent("""
    import sys, time
    import redis
    from sqlalchemy import select
    from data.db import make_engine
    from data.live import LiveState
    from data.models import Inspector, Sensor
    from data.auth import create_user
    from geo.types import GasReading, Ping
    db, port, ns, password = sys.argv[1:5]
    at_least = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # inspectors: more registered up to this many
    engine = make_engine(db)
    with engine.connect() as conn:
        insp = [r.id for r in conn.execute(select(Inspector.id))]
        units = sorted({r.unit_id for r in conn.execute(select(Inspector.unit_id))})
        sens = conn.execute(select(Sensor.id, Sensor.lat, Sensor.lon)).all()
    if at_least > len(insp):
        from sqlalchemy import insert
        more = [f"X{k:05d}" for k in range(at_least - len(insp))]
        with engine.begin() as conn:
            conn.execute(insert(Inspector), [{"id": i, "name": f"巡查员{i}", "unit_id": units[k % len(units)]}
                                             for k, i in enumerate(more)])
        insp += more
    live = LiveState(redis.Redis(port=int(port)), ns)
    now = time.time()
    for k in range(0, len(insp), 1000):
        live.apply_pings([Ping(i, now - j % 60, 22.65 + (j % 97) * 1e-3, 114.02 + (j % 89) * 1e-3, acc_m=8.0,
                               speed_mps=1.0, batt_pct=80.0, msg_id=f"{j:08x}")
                          for j, i in enumerate(insp[k:k + 1000], start=k)])
    for k in range(0, len(sens), 2000):
        part = sens[k:k + 2000]
        live.apply_sensor_readings([GasReading(s.id, now - 30, lel_pct=2.0, msg_id=f"g{s.id}") for s in part],
                                   ["normal"] * len(part))
    create_user(engine, "wall-b", password, "wall")
    create_user(engine, "disp-b", password, "dispatcher")
    create_user(engine, "off-b", password, "officer", streets=["longhua"], inspector_id=insp[0])
    print(len(insp), len(sens))
""")


def build_web(tmp: Path, db: str, port: int):
    """(the Flask server of one web worker, its engine) on the city ``prepare`` wrote."""
    import redis

    from config.settings import load_settings
    from dashboard.wsgi import build_app
    from data.db import make_engine

    settings = load_settings(database_url=db, redis_url=f"redis://127.0.0.1:{port}/0", redis_namespace="bwm",
                             data_dir=tmp, secret_key="bench", tiles="none")
    engine = make_engine(db)
    # No broker: the health probe (in the slow tick) finds the port closed at once.
    return build_app(settings, engine, redis.Redis(port=port), "mqtt://127.0.0.1:9"), engine


def prepare(tmp: Path, scale: str, inspectors: int = 0) -> tuple[str, subprocess.Popen, int]:
    """The city at ``scale`` in SQLite under ``tmp`` (with more inspectors registered up
    to ``inspectors``), every fix and detector state in a private redis-server:
    (the database URL, the Redis process, its port)."""
    from data.embedded import free_port, wait_listening

    db = f"sqlite:///{tmp / 'city.sqlite3'}"
    env = dict(os.environ, ANJIAN_DATABASE_URL=db, ANJIAN_DATA_DIR=str(tmp))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "app.py", "demo-city", "--scale", scale], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port(26500)
    redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    wait_listening("127.0.0.1", port, proc=redis_proc)
    out = subprocess.run([sys.executable, "-c", FILL, db, str(port), "bwm", PASSWORD, str(inspectors)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True)
    n_insp, n_sens = out.stdout.split()
    print(f"city ({scale}) written and {n_insp} inspectors' fixes, {n_sens} detectors' states in Redis "
          f"in {time.perf_counter() - t0:.0f} s")
    return db, redis_proc, port


def top_sites(snapshot, base=None, n: int = 12) -> list[str]:
    import tracemalloc

    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    stats = snapshot.compare_to(base, "filename") if base is not None else snapshot.statistics("filename")
    out = []
    for st in stats[:n]:
        frame = st.traceback[0]
        name = frame.filename.replace(str(ROOT) + "/", "")
        name = name.split("site-packages/", 1)[-1]
        size = getattr(st, "size_diff", None) if base is not None else st.size
        out.append(f"{size / 2**20:8.1f} MB  {name}")
    return out


def callbacks(server, users: dict, passes: int, threads: int = 1) -> None:
    """``passes`` rounds of each screen's polls, as its user, spread over ``threads``
    threads (a gunicorn gthread worker serves its requests from ``web_threads`` threads)."""
    if threads <= 1:
        for k in range(passes):
            one_round(server, users, k)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        # Each task in a copy of this thread's context (Dash's callback context is a ContextVar).
        for f in [pool.submit(contextvars.copy_context().run, one_round, server, users, k) for k in range(passes)]:
            f.result()


def one_round(server, users: dict, k: int) -> None:
    from flask import g, session

    from dashboard.pages import dispatch, officer, wall

    bounds = [[22.60, 113.98], [22.75, 114.12]]
    with server.test_request_context("/_dash-update-component", method="POST"):
        session["lang"] = "zh-CN"
        g.principal = users["wall"]
        out = wall.wall_inspectors(k, {}, None)
        wall.wall_alerts(k, {})
        wall.wall_slow_tick(k)
        wall.wall_hazards(k)
        wall.wall_trails(k)
        wall.wall_heat(k, "activity", "today", 12, bounds)
        wall.wall_enterprises(12 + (k % 3), bounds, None)
    with server.test_request_context("/_dash-update-component", method="POST"):
        session["lang"] = "zh-CN"
        g.principal = users["dispatcher"]
        out = dispatch.dispatch_tick(k, 0, None, {})
        dispatch.dispatch_inspectors(k, None, {}, None)
        dispatch.dispatch_hazards(k)
        dispatch.dispatch_plan_today(k)
        dispatch.dispatch_enterprises(13, bounds, None)
    with server.test_request_context("/_dash-update-component", method="POST"):
        session["lang"] = "zh-CN"
        g.principal = users["officer"]
        try:
            officer.officer_tick(k, 0, None, {})
        except Exception:  # noqa: BLE001 - PreventUpdate when nothing changed
            pass
        officer.officer_tasks(k)
    del out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["tiny", "demo", "city"], default="city")
    ap.add_argument("--passes", type=int, default=40, help="rounds of every screen's callbacks")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads the rounds are spread over (gunicorn's web_threads: 32 by default)")
    ap.add_argument("--workdir", help="keep the city's SQLite file here and use it again in the next run")
    ap.add_argument("--trace", action="store_true", help="the Python heap and its largest sites (tracemalloc)")
    args = ap.parse_args()

    rows = [("start", mem(), None)]
    tmp = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-web-memory-"))
    tmp.mkdir(parents=True, exist_ok=True)
    db, redis_proc, port = prepare(tmp, args.scale)
    try:
        if args.trace:
            import tracemalloc

            tracemalloc.start(1)
        # what build_web and build_app import, counted here and not in the app's part
        for name in ("redis", "config.settings", "dashboard.wsgi", "data.db", "dashboard.context", "dashboard.server",
                     "dashboard.pages.screens"):
            importlib.import_module(name)
        from data.auth import get_user

        snap_imports = tracemalloc.take_snapshot() if args.trace else None
        rows.append(("imports", mem(), snap_imports))

        server, engine = build_web(tmp, db, port)
        ctx = server.extensions["anjian"]
        t0 = time.perf_counter()
        ctx.registry()
        server.extensions["anjian_city"].get()
        with server.app_context():
            from dashboard.pages import wall

            wall.kpis(ctx)
        gc.collect()
        snap_app = tracemalloc.take_snapshot() if args.trace else None
        rows.append(("app", mem(), snap_app))
        print(f"app built and warmed in {time.perf_counter() - t0:.1f} s")

        users = {"wall": get_user(engine, "wall-b"), "dispatcher": get_user(engine, "disp-b"),
                 "officer": get_user(engine, "off-b")}
        t0 = time.perf_counter()
        half = max(1, args.passes // 2)
        callbacks(server, users, half, args.threads)
        gc.collect()
        rows.append((f"screens x{half}", mem(), tracemalloc.take_snapshot() if args.trace else None))
        callbacks(server, users, args.passes - half, args.threads)
        gc.collect()
        rows.append((f"screens x{args.passes}", mem(), tracemalloc.take_snapshot() if args.trace else None))
        print(f"{args.passes} rounds of the screens' callbacks over {args.threads} threads in "
              f"{time.perf_counter() - t0:.1f} s (MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')})")
        ctx.feed.stop()
    finally:
        redis_proc.terminate()
        redis_proc.wait(10)

    print("\n| part | RSS MB | USS MB | +RSS MB | Python objects |" + (" heap MB |" if args.trace else ""))
    print("|---|---|---|---|---|" + ("---|" if args.trace else ""))
    prev = None
    for name, m, snap in rows:
        heap = ""
        if args.trace and snap is not None:
            heap = f" {sum(st.size for st in snap.statistics('filename')) / 2**20:.1f} |"
        elif args.trace:
            heap = " - |"
        plus = "" if prev is None else f"{m['rss'] - prev['rss']:+.0f}"
        print(f"| {name} | {m['rss']:.0f} | {m['uss']:.0f} | {plus} | {m['objects']:,} |{heap}")
        prev = m
    if args.trace:
        snaps = [(n, s) for n, _m, s in rows if s is not None]
        print("\nthe largest sites after the imports (by file):")
        print("\n".join(top_sites(snaps[0][1])))
        print("\nadded by building and warming the app:")
        print("\n".join(top_sites(snaps[1][1], snaps[0][1])))
        print(f"\nadded by the screens' callbacks ({snaps[2][0]} -> {snaps[-1][0]}):")
        print("\n".join(top_sites(snaps[-1][1], snaps[2][1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
