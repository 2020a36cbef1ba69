"""Sizing figures for docs/deploy.md: Redis memory per device, SQL growth per day.

    .venv/bin/python bench/bench_sizing.py [--inspectors 20000] [--sensors 50000] [--rows 200000]

- **Redis**, on a private ``redis-server`` of its own (so that nothing else moves its
  ``used_memory``): the live state of ``--inspectors`` inspectors (their newest fix,
  the GEO index, the msg_id window of one fix each) and of ``--sensors`` detectors
  (their newest state), written with the ingest's own scripts (``LiveState``).
  Reported per 10,000 devices.
- **SQL**, on a fresh PostgreSQL schema: ``--rows`` location fixes and as many
  detector readings written with the ingest's own writer (``HistoryWriter``, rows
  as the ingest stores them, msg_ids included), then ``pg_total_relation_size`` of
  each table (with its indexes).  Reported per million rows, and per day at a load
  the operator states (``--staff``, ``--fix-s``, ``--hours``, ``--sensors``,
  ``--heartbeat-s``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG = os.environ.get("ANJIAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def redis_memory(inspectors: int, sensors: int) -> tuple[int, int]:
    """used_memory bytes added by the inspectors' and then the sensors' live state."""
    import redis

    from data.embedded import free_port, wait_listening
    from data.live import LiveState
    from geo.types import GasReading, Ping

    port = free_port(26400)
    tmp = tempfile.mkdtemp(prefix="bench-sizing-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", tmp], stdout=subprocess.DEVNULL)
    try:
        wait_listening("127.0.0.1", port, proc=proc)
        r = redis.Redis(port=port)
        live = LiveState(r, "size")
        now = time.time()

        def used() -> int:
            return int(r.info("memory")["used_memory"])

        base = used()
        for k in range(0, inspectors, 1000):
            live.apply_pings([Ping(f"I{i:06d}", now, 22.5 + (i % 1000) * 1e-4, 113.9 + (i // 1000) * 1e-3, acc_m=8.0,
                                   speed_mps=1.2, batt_pct=80.0, msg_id=f"{i:08x}:{int(now)}")
                              for i in range(k, min(k + 1000, inspectors))])
        after_inspectors = used()
        for k in range(0, sensors, 1000):
            batch = [GasReading(f"S{i:06d}", now, lel_pct=0.0, alarm="none", batt_pct=90.0, msg_id=f"s{i}:{int(now)}")
                     for i in range(k, min(k + 1000, sensors))]
            live.apply_sensor_readings(batch, ["normal"] * len(batch))
        after_sensors = used()
        return after_inspectors - base, after_sensors - after_inspectors
    finally:
        proc.terminate()
        proc.wait(10)


def sql_growth(rows: int) -> dict[str, int]:
    """Bytes on disk (table + indexes) of ``rows`` fixes and ``rows`` readings on PostgreSQL."""
    from sqlalchemy import text

    from data.db import make_engine, migrate
    from data.history import HistoryWriter
    from geo.types import GasReading, Ping

    schema = "sizing" + uuid.uuid4().hex[:8]
    admin = make_engine(PG)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{PG}?options=-csearch_path%3D{schema}")
    try:
        migrate(engine)
        w = HistoryWriter(engine)
        now = time.time() - 86400
        for k in range(0, rows, 5000):
            n = min(5000, rows - k)
            pings = [(Ping(f"I{(k + i) % 1400:05d}", now + (k + i) * 0.3, 22.6 + i * 1e-6, 114.0 + i * 1e-6,
                           acc_m=8.0, speed_mps=1.1, msg_id=f"{k + i:08x}:{int(now)}"), now + (k + i) * 0.3)
                     for i in range(n)]
            readings = [(GasReading(f"S{(k + i) % 50000:06d}", now + (k + i) * 0.3, lel_pct=0.0, alarm="none",
                                    batt_pct=90.0, msg_id=f"s{k + i}"), "normal", now + (k + i) * 0.3)
                        for i in range(n)]
            w.write(pings=pings, readings=readings)
        with engine.begin() as c:
            c.execute(text("ANALYZE"))
            return {t: int(c.execute(text(f"SELECT pg_total_relation_size('{schema}.{t}')")).scalar())
                    for t in ("pings", "sensor_readings")}
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inspectors", type=int, default=20000)
    ap.add_argument("--sensors", type=int, default=50000)
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--staff", type=int, default=1400, help="inspectors on duty in a day (the per-day figure)")
    ap.add_argument("--fix-s", type=float, default=30.0, help="seconds between an inspector's fixes")
    ap.add_argument("--hours", type=float, default=8.0, help="working hours a day")
    ap.add_argument("--heartbeat-s", type=float, default=300.0, help="seconds between a detector's heartbeats")
    args = ap.parse_args()

    ins_b, sen_b = redis_memory(args.inspectors, args.sensors)
    print(f"Redis live state: {args.inspectors} inspectors {ins_b / 2**20:.1f} MiB "
          f"({ins_b / args.inspectors * 10000 / 2**20:.1f} MiB per 10,000), "
          f"{args.sensors} detectors {sen_b / 2**20:.1f} MiB ({sen_b / args.sensors * 10000 / 2**20:.1f} MiB per 10,000)")
    sizes = sql_growth(args.rows)
    per_fix, per_reading = sizes["pings"] / args.rows, sizes["sensor_readings"] / args.rows
    fixes_day = args.staff * args.hours * 3600 / args.fix_s
    readings_day = args.sensors * 86400 / args.heartbeat_s
    day = fixes_day * per_fix + readings_day * per_reading
    print(f"PostgreSQL, {args.rows} rows each: pings {per_fix:.0f} B/row ({per_fix * 1e6 / 2**20:.0f} MiB per million), "
          f"sensor_readings {per_reading:.0f} B/row ({per_reading * 1e6 / 2**20:.0f} MiB per million)")
    print(f"a day at {args.staff} inspectors (a fix every {args.fix_s:g} s for {args.hours:g} h: {fixes_day:,.0f} fixes) "
          f"and {args.sensors} detectors (a heartbeat every {args.heartbeat_s:g} s: {readings_day:,.0f} readings): "
          f"{day / 2**30:.2f} GiB of history a day, {day * 365 / 2**40:.2f} TiB a year")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
