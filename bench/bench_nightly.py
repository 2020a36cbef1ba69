"""The alarms while the nightly scores run: the alert engine's latency during a city's
day of scoring, and after it (issue 14 §2 and §3; docs/benchmarks.md, section 27).

    .venv/bin/python bench/bench_nightly.py [--n 130000] [--db FILE] [--app DIR]

The scores of one day at a city's scale are 14-23 s of Python (section 11).  The
alert engine's process schedules them; this bench runs what production runs,
``python app.py ingest --no-alerts`` and ``python app.py alerts`` as processes of
their own, on the local Mosquitto and Redis and a SQLite file holding a year of a
city's history (``bench_scoring.fill``) and ``--sensors`` gas detectors, with no
scores for yesterday: the engine starts the day's scoring at once.

Once the engine is active, a gas alarm is published every ``1/--rate`` s, each on a
detector of its own, until ``--after`` s past the end of the scoring (the Redis
lease that the scoring holds, ``NS:scores:lease``).  Two times of each:

- **opened**: its alert's row (``alerts.first_seen`` is the alarm's own ``ts``,
  ``created_at`` the engine's commit), against the publish time;
- **escalated**: its street escalation on MQTT (``PREFIX/v1/alerts/{id}/escalation``,
  T1 = ``--t1`` s), against its deadline (the alarm's ``ts`` plus T1).

Each is reported for the alarms published while the scoring ran and for those after
it, in the same run.  ``--app DIR`` runs another checkout's ``app.py`` (a baseline:
``git worktree add /tmp/base <commit>``), with this bench.  The filled database is
kept in ``--db`` for the next run, which clears its scores and alerts first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import redis
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import delete, func, insert, select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_escalation import pct, stop_processes  # noqa: E402
from bench_scoring import fill  # noqa: E402

from data.db import make_engine, migrate  # noqa: E402
from data.models import Alert, AlertEvent, Enterprise, ScoreRowModel, ScoreRun, Sensor  # noqa: E402

REDIS = os.environ.get("ANJIAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")
MQTT = os.environ.get("ANJIAN_BENCH_MQTT", "mqtt://127.0.0.1:1883")
SENSOR = "BN{:05d}"


PG_SCHEMA = "bench_nightly"


def db_url(args) -> str:
    if args.pg:
        return f"{args.pg}?options=-csearch_path%3D{PG_SCHEMA}"
    return f"sqlite:///{args.db}"


def prepare(url: str, n: int, sensors: int) -> None:
    """The city in the database (filled once), its scores and the bench's alerts cleared."""
    if url.startswith("postgresql"):
        admin = make_engine(url.split("?", 1)[0])
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"'))
        admin.dispose()
    engine = make_engine(url)
    db = url.split("?", 1)[0]
    try:
        migrate(engine)
        with engine.connect() as conn:
            have = conn.execute(select(func.count()).select_from(Enterprise)).scalar_one()
        if not have:
            t0 = time.monotonic()
            counts = fill(engine, n)
            print(f"filled {db}: {n} enterprises, {counts} ({time.monotonic() - t0:.0f} s)", flush=True)
        elif have != n:
            raise SystemExit(f"{db} holds {have} enterprises, not --n {n}: another --db")
        with engine.begin() as conn:
            conn.execute(delete(ScoreRowModel))
            conn.execute(delete(ScoreRun))
            bench_alerts = select(Alert.id).where(Alert.subject.like("sensor:BN%"))
            conn.execute(delete(AlertEvent).where(AlertEvent.alert_id.in_(bench_alerts)))
            conn.execute(delete(Alert).where(Alert.subject.like("sensor:BN%")))
            if conn.execute(select(func.count()).select_from(Sensor)).scalar_one() < sensors:
                conn.execute(delete(Sensor))
                conn.execute(insert(Sensor), [{"id": SENSOR.format(k), "enterprise_id": f"E{k:06d}", "lat": 22.6,
                                               "lon": 114.0, "street_id": f"ST{k % 10:02d}"} for k in range(sensors)])
            conn.execute(update(Enterprise).where(Enterprise.id.in_([f"E{k:06d}" for k in range(sensors)]))
                         .values(lat=22.6, lon=114.0))
        if url.startswith("sqlite"):
            with engine.begin() as conn:
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def revision(app: Path) -> str:
    def git(*a):
        return subprocess.run(["git", "-C", str(app), *a], capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" with changes" if git("status", "--porcelain", "--untracked-files=no")
                                                  else "")


def wait_for(path: Path, needle: str, timeout_s: float, procs) -> None:
    t0 = time.monotonic()
    while needle not in path.read_text(errors="replace"):
        dead = [p.args for p in procs if p.poll() is not None]
        if dead or time.monotonic() - t0 > timeout_s:
            raise SystemExit(f"no {needle!r} in {path} (dead: {dead}):\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=130_000, help="enterprises (the city: 130,000)")
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--db", type=Path, default=Path("/tmp/bench-nightly.sqlite3"),
                    help="the city's SQLite file, filled on the first run and kept")
    ap.add_argument("--pg", nargs="?", const="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL instead of SQLite (the city kept in schema bench_nightly)")
    ap.add_argument("--app", type=Path, default=ROOT, help="the checkout whose app.py runs (a baseline)")
    ap.add_argument("--rate", type=float, default=5.0, help="gas alarms a second")
    ap.add_argument("--after", type=float, default=20.0, help="seconds of alarms after the scoring ended")
    ap.add_argument("--verbose", action="store_true", help="each alarm: when published (s into the scoring), opened after")
    ap.add_argument("--t1", type=int, default=5, help="escalation to the street after this many seconds")
    args = ap.parse_args()

    url = db_url(args)
    prepare(url, args.n, args.sensors)
    ns = "bngt" + uuid.uuid4().hex[:8]
    tmp = Path(f"/tmp/bench-nightly-{ns}")
    tmp.mkdir()
    env = dict(os.environ, ANJIAN_DATABASE_URL=url, ANJIAN_REDIS_URL=REDIS, ANJIAN_MQTT_URL=MQTT,
               ANJIAN_MQTT_PREFIX=ns, ANJIAN_REDIS_NAMESPACE=ns, ANJIAN_DATA_DIR=str(tmp),
               ANJIAN_MQTT_CLIENT_ID=f"{ns}-ingest", ANJIAN_MQTT_SHARE_GROUP=ns, ANJIAN_REPORT_SCHEDULE="false",
               ANJIAN_ESCALATE_T1_S=str(args.t1), ANJIAN_ESCALATE_T2_S="3600", ANJIAN_MQTT_SESSION_EXPIRY_S="60")
    r = redis.Redis.from_url(REDIS)
    lease = f"{ns}:scores:lease"
    procs: list[subprocess.Popen] = []
    published: dict[str, float] = {}
    escalated: dict[int, float] = {}
    lock = threading.Lock()

    def on_message(_c, _u, m):
        t = time.time()
        orjson.loads(m.payload)
        with lock:
            escalated.setdefault(int(m.topic.split("/")[-2]), t)

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{ns}-listener", protocol=mqtt.MQTTv311)
    sub.on_message = on_message
    sub.connect("127.0.0.1", 1883)
    sub.subscribe(f"{ns}/v1/alerts/+/escalation", qos=1)
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{ns}-pub", protocol=mqtt.MQTTv311)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    try:
        app = [sys.executable, str(args.app / "app.py")]
        for name, argv in (("ingest", ["ingest", "--no-alerts"]), ("alerts", ["alerts"])):
            with (tmp / f"{name}.log").open("wb") as out:
                procs.append(subprocess.Popen([*app, *argv], cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT))
            wait_for(tmp / f"{name}.log", "subscribing to", 120, procs)
        wait_for(tmp / "alerts.log", "is active", 120, procs)
        scoring_from = scoring_to = None
        k = 0
        next_at = time.monotonic()
        while True:
            held = bool(r.exists(lease))
            now = time.time()
            if held and scoring_from is None:
                scoring_from = now
            if scoring_from is not None and not held and scoring_to is None:
                scoring_to = now
            if scoring_to is not None and now > scoring_to + args.after:
                break
            if scoring_from is None and k > 10 * args.rate:
                raise SystemExit("no scoring began: the day had scores already?")
            if k >= args.sensors:
                raise SystemExit(f"more alarms than --sensors {args.sensors}: the scoring is longer than that")
            sid = SENSOR.format(k)
            published[sid] = time.time()
            pub.publish(f"{ns}/v1/sensors/{sid}/state", orjson.dumps({"ts": published[sid], "alarm": "high",
                                                                       "lel": 60, "msg_id": f"{ns}-{k}"}), qos=1)
            k += 1
            next_at += 1 / args.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        time.sleep(args.t1 + 5)  # the last escalations
        engine = make_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(select(Alert.id, Alert.subject, Alert.created_at)
                                .where(Alert.subject.like("sensor:BN%"))).all()
        engine.dispose()
        print(f"app {args.app} ({revision(args.app)}): "
              f"{args.n} enterprises on {url.split(':', 1)[0]}; scoring held its lease {scoring_to - scoring_from:.1f} s; "
              f"{len(published)} alarms at {args.rate}/s, {len(rows)} alerts opened")
        if args.verbose:
            for a in sorted(rows, key=lambda a: published[a.subject.split(":", 1)[1]]):
                t = published[a.subject.split(":", 1)[1]]
                print(f"    {t - scoring_from:+7.2f} s  opened after {(a.created_at - t) * 1000:6.0f} ms")
        phases = {"during scoring": [], "after": []}
        for a in rows:
            sid = a.subject.split(":", 1)[1]
            t = published[sid]
            phase = "during scoring" if scoring_from <= t < scoring_to else ("after" if t >= scoring_to else None)
            if phase:
                esc = escalated.get(a.id)
                # Its deadline is the alarm's own time plus T1 (alerts.escalation.Ladder.arm).
                phases[phase].append((a.created_at - t, None if esc is None else esc - (t + args.t1)))
        for phase, xs in phases.items():
            opened = [o for o, _ in xs]
            late = [e for _, e in xs if e is not None]
            if not xs:
                print(f"  {phase}: no alarms")
                continue
            esc = (f"late p50 {statistics.median(late) * 1000:.0f} ms, p95 {pct(late, 95) * 1000:.0f} ms, "
                   f"max {max(late) * 1000:.0f} ms" if late else "none arrived")
            print(f"  {phase}: {len(xs)} alarms; publish -> opened p50 {statistics.median(opened) * 1000:.0f} ms, "
                  f"p95 {pct(opened, 95) * 1000:.0f} ms, max {max(opened) * 1000:.0f} ms; escalations "
                  f"{len(late)} of {len(xs)}, {esc}")
        return 0
    finally:
        stop_processes(procs, 20)
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            r.delete(*keys)


if __name__ == "__main__":
    raise SystemExit(main())
