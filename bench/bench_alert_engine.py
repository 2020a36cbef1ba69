"""Drain rate of the alert engine's ``gas:events`` stream: batched vs one event at a time;
and how long an alarm waits behind a backlog of heartbeats, in its own lane or in theirs.

    .venv/bin/python bench/bench_alert_engine.py [--events 20000] [--sensors 10000] [--baseline-events 3000]
        [--backlog 20000] [--rounds 3]

At city scale 50,000 detectors heartbeat; every reading reaches the alert engine
through ``ns:gas:events``.  On a fresh PostgreSQL schema and the local Redis,
this pushes normal heartbeats into the stream and times:

- **batched**: ``AlertEngine.read_streams`` (what the engine runs) until the
  consumer group has nothing pending or waiting;
- **per event** (the baseline, same run): ``AlertEngine.on_gas_event`` called
  for each entry, the path every event took before batching (an alert-store
  transaction and two lookups per reading).

Reports events/s for both and their ratio, and checks that no alert was opened.

Then **an alarm behind a backlog** (``--backlog`` heartbeats waiting in
``ns:gas:events``, as when the engine was down or short of CPU): the time from the
engine's next read to the alarm's alert in SQL, with the alarm

- in ``ns:gas:alarms``, its own lane, as the ingest's script now writes it;
- in ``ns:gas:events`` after the heartbeats (the baseline: one stream for every
  gas event, read in order, as before the lane).

``--rounds`` of each, alternating, on detectors of their own; medians and the ratio.

Then **an alarm behind ``--online`` "online" messages** in ``ns:gas:alarms``, as when a
broker restarts and every detector announces itself again: the time from the
engine's next read to the alarm's alert in SQL, against the baseline of the same
messages each taken down the per-event availability path (``_availability``: a
transaction, the applied-once mark, the sensor's offline alert looked up), which is
what every one of them cost before the engine skipped those that change nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG = os.environ.get("ANJIAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("ANJIAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def push(r, stream: str, n: int, n_sensors: int, t0: float) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd(stream, {"sensor": f"B{i % n_sensors:05d}", "ts": repr(t0 + i), "level": "normal",
                           "prev": "normal", "lel": "0.0", "alarm": "none", "late": "0"})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def read_until_open(eng, engine, sid: str) -> float:
    """Seconds of the engine's reads until ``sid`` has an open alert in SQL."""
    from sqlalchemy import text

    q = text("select count(*) from alerts where sensor_id = :s and state = 'open'")
    start = time.perf_counter()
    while True:
        eng.read_streams(False)
        with engine.connect() as c:
            if c.execute(q, {"s": sid}).scalar():
                return time.perf_counter() - start


def alarm_behind(eng, r, engine, ns: str, lane: str, backlog: int, n_sensors: int, t0: float, sid: str) -> float:
    """Seconds from the engine's next read to the open alert of a high alarm on ``sid``
    put into ns:``lane`` after ``backlog`` heartbeats in ns:gas:events; then the rest
    is drained."""
    push(r, f"{ns}:gas:events", backlog, n_sensors, t0)
    r.xadd(f"{ns}:{lane}", {"sensor": sid, "ts": repr(t0 + backlog + 1), "level": "high", "prev": "normal",
                            "lel": "60.0", "alarm": "high", "late": "0"})
    took = read_until_open(eng, engine, sid)
    while any(g["pending"] or g.get("lag") for x in ("gas:events", "gas:alarms") for g in r.xinfo_groups(f"{ns}:{x}")):
        eng.read_streams(False)
    return took


def online_behind(eng, r, engine, ns: str, args, t1: float) -> None:
    """An alarm behind ``args.online`` availability messages in its lane, ``args.rounds``
    times, alternating with the per-event baseline over the same number of messages."""
    n = min(args.online, args.sensors - 100)
    fast, slow = [], []
    for k in range(args.rounds):
        sid = f"B{args.sensors - 1 - k:05d}"
        pipe = r.pipeline(transaction=False)
        for i in range(n):
            pipe.xadd(f"{ns}:gas:alarms", {"sensor": f"B{100 + i:05d}", "ts": repr(time.time()), "level": "online",
                                           "prev": "", "lel": "", "alarm": ""})
        pipe.xadd(f"{ns}:gas:alarms", {"sensor": sid, "ts": repr(time.time()), "level": "high", "prev": "normal",
                                       "lel": "60.0", "alarm": "high", "late": "0"})
        pipe.execute()
        fast.append(read_until_open(eng, engine, sid))
        infos = {f"B{100 + i:05d}": eng.registry.sensors[f"B{100 + i:05d}"] for i in range(n)}
        start = time.perf_counter()
        for i, info in enumerate(infos.values()):  # before: each one its own transaction
            eng._availability(info, time.time(), online=True, entry_id=f"{int(t1) + k}-{i}", lane="gas:alarms")
        slow.append(time.perf_counter() - start)
    f_med, s_med = statistics.median(fast), statistics.median(slow)
    print(f'an alarm behind {n} "online" messages in its lane, to its alert in SQL, median of {args.rounds}: '
          f"{f_med * 1000:.0f} ms ({', '.join(f'{x * 1000:.0f}' for x in fast)}); the same messages one "
          f"transaction each (before) {s_med * 1000:.0f} ms ({', '.join(f'{x * 1000:.0f}' for x in slow)}); "
          f"ratio {s_med / f_med:.0f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--sensors", type=int, default=10_000)
    ap.add_argument("--baseline-events", type=int, default=3_000,
                    help="events for the per-event baseline (it is slow)")
    ap.add_argument("--backlog", type=int, default=20_000, help="heartbeats ahead of the alarm")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--online", type=int, default=5_000, help='"online" messages ahead of the alarm')
    args = ap.parse_args()

    import redis
    from sqlalchemy import insert, text

    from alerts.escalation import Ladder
    from config.settings import load_settings
    from data.alert_store import AlertStore
    from data.db import make_engine, migrate
    from data.live import LiveState
    from data.models import Sensor
    from ingest.alert_engine import AlertEngine
    from tests.citykit import write_small_city

    ns = "bae" + uuid.uuid4().hex[:8]
    schema = "s" + ns
    admin = make_engine(PG)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{PG}?options=-csearch_path%3D{schema}")
    r = redis.Redis.from_url(REDIS)
    try:
        migrate(engine)
        write_small_city(engine)
        with engine.begin() as c:
            c.execute(insert(Sensor), [{"id": f"B{i:05d}", "enterprise_id": "E1", "lat": 22.62, "lon": 114.02,
                                        "street_id": "ST1", "grid_id": "G1"} for i in range(args.sensors)])
        s = load_settings(redis_url=REDIS, database_url=None, data_dir=Path("/tmp"), mqtt_prefix=ns,
                          redis_namespace=ns)
        store = AlertStore(engine, LiveState(r, ns), Ladder.from_settings(s), mqtt_prefix=ns)
        eng = AlertEngine(s, engine, r, store, s.mqtt_url)
        eng.registry.load()
        eng._ensure_groups()
        assert eng.streams.lease(eng.id, 3600.0)  # it reads only while it holds the lease; driven by hand here
        stream = f"{ns}:gas:events"

        # Baseline: the per-event path over entries read straight from the stream.
        t0 = time.time() - args.events - args.baseline_events - 10
        push(r, f"{ns}:baseline", args.baseline_events, args.sensors, t0)
        entries = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(f"{ns}:baseline")]
        start = time.perf_counter()
        for f in entries:
            eng.on_gas_event(f)
        per_event = len(entries) / (time.perf_counter() - start)

        push(r, stream, args.events, args.sensors, t0 + args.baseline_events)
        start = time.perf_counter()
        while True:
            eng.read_streams(False)
            info = r.xinfo_groups(stream)[0]
            if info["pending"] == 0 and info.get("lag", 0) == 0:
                break
        batched = args.events / (time.perf_counter() - start)
        with engine.connect() as c:
            alerts = c.execute(text("select count(*) from alerts")).scalar()
        print(f"per event: {len(entries)} heartbeats, {per_event:,.0f} events/s")
        print(f"batched:   {args.events} heartbeats from {args.sensors} sensors, {batched:,.0f} events/s")
        print(f"batched / per event = {batched / per_event:.0f}x; alerts opened: {alerts} (expected 0)")

        waits: dict[str, list[float]] = {"gas:alarms": [], "gas:events": []}
        t1 = t0 + args.baseline_events + args.events + 1
        for k in range(args.rounds):
            for j, lane in enumerate(waits):
                sid = f"B{2 * k + j:05d}"  # a detector of its own each time: one open alert per detector
                waits[lane].append(alarm_behind(eng, r, engine, ns, lane, args.backlog, args.sensors, t1, sid))
                t1 += args.backlog + 2
        own, behind = (statistics.median(waits[x]) for x in ("gas:alarms", "gas:events"))
        print(f"an alarm behind {args.backlog} heartbeats, to its alert in SQL, median of {args.rounds}: "
              f"own lane {own * 1000:.0f} ms ({', '.join(f'{x * 1000:.0f}' for x in waits['gas:alarms'])}); "
              f"after them in gas:events {behind * 1000:.0f} ms "
              f"({', '.join(f'{x * 1000:.0f}' for x in waits['gas:events'])}); ratio {behind / own:.0f}x")
        online_behind(eng, r, engine, ns, args, t1)
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        for k in r.scan_iter(match=f"{ns}:*", count=1000):
            r.delete(k)


if __name__ == "__main__":
    main()
