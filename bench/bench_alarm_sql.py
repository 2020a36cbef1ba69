"""An alarm's way through the alert engine when CPU is short (issue 14 §3).

    .venv/bin/python bench/bench_alarm_sql.py [--db postgresql|sqlite] [--burners 8]
        [--alarms 120] [--rate 4] [--heartbeats 800] [--nice-alerts -5]

At ten times a city on 2 cores (docs/benchmarks.md section 14) an alarm spent p95
0.9 s between its entry in the alarm lane and its row in SQL, with the engine at
nice -5 and nine processes and a browser wanting the 2 cores.  That run cannot
separate the engine's own work from its waits: for a core, and for PostgreSQL's
backend (at nice 0) at each of the transaction's round trips.  This bench takes
that way alone, repeatably:

- the alert engine as production runs it (``app.py alerts``, a process of its own,
  at ``--nice-alerts``, -5 as its systemd unit when run as root), on a fresh
  database (a PostgreSQL database of its own, dropped after, or a SQLite file) and
  the local Redis;
- ``--burners`` processes spinning at nice 0, standing for the ingest, the web,
  the simulator and the browser (section 14's load average was 8-10);
- ``--heartbeats`` normal readings a second of ``--sensors`` other sensors, and ``--alarms``
  alarms at ``--rate`` a second, one sensor each, written into the lanes as the
  ingest writes them (``LiveState.apply_sensor_readings``).

Each alarm is timed on Redis's clock, from its lane entry's id (when the ingest
added it) to the change stream's entry that names its alert (the engine tells the
screens after its commit; the event stream pushes that entry): "lane -> notified".
"lane -> inserted" uses the alert's ``created_at`` (the engine's clock, the same
machine).  Every alarm must open its alert.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_escalation import MQTT, REDIS, pct  # noqa: E402 - the same services and percentile
from bench_overload import make_database  # noqa: E402


def burn(stop) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def stream_ms(entry_id: bytes | str) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    ap.add_argument("--burners", type=int, default=8, help="processes spinning at nice 0")
    ap.add_argument("--alarms", type=int, default=120)
    ap.add_argument("--rate", type=float, default=4.0, help="alarms a second")
    ap.add_argument("--heartbeats", type=float, default=830.0, help="normal readings a second of other sensors")
    ap.add_argument("--sensors", type=int, default=50000,
                    help="the other sensors, registered: the city's 50,000 detectors, whose heartbeats the engine "
                         "reads and whose silence it sweeps")
    ap.add_argument("--nice-alerts", type=int, default=-5 if os.geteuid() == 0 else 0, metavar="N")
    args = ap.parse_args()

    import redis
    from sqlalchemy import func, insert, select

    from data.db import make_engine, migrate
    from data.live import GAS_ALARMS, LiveState
    from data.models import Alert, Sensor
    from geo.types import GasReading
    from tests.citykit import write_small_city

    ns = "bals" + uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-alarm-sql-"))
    db_url, drop_db = make_database(args.db, ns, tmp)
    engine = make_engine(db_url)
    r = redis.Redis.from_url(REDIS)
    live = LiveState(r, ns)
    alarm_ids = [f"ALM{i:05d}" for i in range(args.alarms)]
    beat_ids = [f"HB{i:06d}" for i in range(args.sensors)]
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    proc = None
    try:
        migrate(engine)
        write_small_city(engine)
        with engine.begin() as conn:
            conn.execute(insert(Sensor), [{"id": s, "enterprise_id": "E1", "lat": 22.62, "lon": 114.02,
                                           "street_id": "ST1", "grid_id": "G1"} for s in alarm_ids + beat_ids])
        env = dict(os.environ, ANJIAN_DATABASE_URL=db_url, ANJIAN_REDIS_URL=REDIS, ANJIAN_MQTT_URL=MQTT,
                   ANJIAN_MQTT_PREFIX=ns, ANJIAN_REDIS_NAMESPACE=ns, ANJIAN_DATA_DIR=str(tmp),
                   ANJIAN_REPORT_SCHEDULE="false")
        cmd = [sys.executable, str(ROOT / "app.py"), "alerts"]
        if args.nice_alerts:
            cmd = ["nice", "-n", str(args.nice_alerts), *cmd]
        log = open(tmp / "engine.log", "wb")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        t_start = time.time()
        while not r.get(f"{ns}:alert-engine:leader"):
            if time.time() - t_start > 30 or proc.poll() is not None:
                raise SystemExit(f"no engine took the lease; its log: {tmp / 'engine.log'}")
            time.sleep(0.1)
        time.sleep(3.0)  # past the takeover's catch-up
        for b in burners:
            b.start()
        time.sleep(2.0)
        print(f"{args.alarms} alarms at {args.rate}/s, {args.heartbeats:.0f} heartbeats/s, {args.burners} burners, "
              f"engine at nice {args.nice_alerts}, {args.db}; "
              f"uptime: {os.popen('uptime').read().strip()}", flush=True)

        # The heartbeats, in 50 ms steps, from a thread of their own.
        hb_stop = threading.Event()

        def heartbeats() -> None:
            k, step, credit = 0, 0.05, 0.0
            hb_live = LiveState(redis.Redis.from_url(REDIS), ns)
            while not hb_stop.is_set():
                credit += args.heartbeats * step
                n, credit = int(credit), credit - int(credit)
                if n:
                    now = time.time()
                    batch = [GasReading(sensor_id=beat_ids[(k + i) % len(beat_ids)], ts=now, lel_pct=0.0,
                                        ppm=None, alarm=None, batt_pct=None, source="bench",
                                        msg_id=f"hb-{k + i}") for i in range(n)]
                    hb_live.apply_sensor_readings(batch, ["normal"] * n)
                    k += n
                time.sleep(step)

        hb = threading.Thread(target=heartbeats, daemon=True)
        hb.start()
        for i, sid in enumerate(alarm_ids):
            now = time.time()
            live.apply_sensor_readings([GasReading(sensor_id=sid, ts=now, lel_pct=70.0, ppm=None, alarm="high",
                                                   batt_pct=None, source="bench", msg_id=f"alarm-{i}")], ["high"])
            time.sleep(max(0.0, 1.0 / args.rate - (time.time() - now)))
        give_up = time.time() + 60
        while time.time() < give_up:
            with engine.connect() as conn:
                n = conn.execute(select(func.count()).where(Alert.type == "gas_alarm")).scalar_one()
            if n >= args.alarms:
                break
            time.sleep(0.5)
        hb_stop.set()
        stop.set()

        lane = {}
        for entry_id, f in r.xrange(f"{ns}:{GAS_ALARMS}"):
            sid = f[b"sensor"].decode()
            if sid.startswith("ALM"):
                lane.setdefault(sid, stream_ms(entry_id))
        with engine.connect() as conn:
            rows = conn.execute(select(Alert.id, Alert.sensor_id, Alert.created_at)
                                .where(Alert.type == "gas_alarm")).all()
        of_alert = {str(a.id): a.sensor_id for a in rows}
        notified: dict[str, int] = {}
        for entry_id, f in r.xrange(f"{ns}:changes"):
            if f.get(b"kind") == b"alert":
                for a in f[b"ids"].decode().split(","):
                    sid = of_alert.get(a)
                    if sid is not None:
                        notified.setdefault(sid, stream_ms(entry_id))
        inserted = [a.created_at * 1000 - lane[a.sensor_id] for a in rows if a.sensor_id in lane]
        told = [notified[s] - lane[s] for s in notified if s in lane]
        opened = len(rows)
        beats = r.xlen(f"{ns}:gas:events")
        print(f"alerts opened: {opened} of {args.alarms}; heartbeat entries written: {beats}")
        for name, xs in (("lane -> inserted", inserted), ("lane -> notified", told)):
            if xs:
                print(f"{name}: p50 {statistics.median(xs):.0f} ms, p95 {pct(xs, 95):.0f} ms, "
                      f"max {max(xs):.0f} ms (n={len(xs)})")
        return 0 if opened == args.alarms and len(told) == args.alarms else 1
    finally:
        stop.set()
        for b in burners:
            b.join(timeout=5)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
        drop_db()
        for key in r.scan_iter(f"{ns}:*", count=1000):
            r.delete(key)


if __name__ == "__main__":
    sys.exit(main())
