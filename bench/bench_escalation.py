"""Escalations on time with thousands due at once, and after an engine failover (issue 14 §2).

    .venv/bin/python bench/bench_escalation.py [--alerts 3000] [--db sqlite|postgresql] [--failover]

A street officer's escalation is a safety promise: when nobody acknowledges a gas
alarm within T1, the street must hear of it.  This bench opens ``--alerts``
unacknowledged alerts whose first escalation falls due at the same moment, runs
the alert engine as production does (``python app.py alerts``, a process of its
own, on the local Mosquitto and Redis and on SQLite or PostgreSQL), and listens
on MQTT for the escalation messages (``PREFIX/v1/alerts/{id}/escalation``), the
edge where the street's people get them.  An escalation is late by the time its
message arrives after its deadline (``escalate_at``).

``--failover`` starts two engine processes (one active, one standby behind the
Redis lease) and ``kill -9``s the active one a second before the deadline: the
standby must take the lease and fire everything, lease time included.

Targets: p95 <= 2 s late with 3,000 due at once; p95 <= 5 s late after a failover.
Every alert must escalate exactly once (each message counted).
"""

from __future__ import annotations

import argparse
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

PG = os.environ.get("ANJIAN_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("ANJIAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")
MQTT = os.environ.get("ANJIAN_BENCH_MQTT", "mqtt://127.0.0.1:1883")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def stop_processes(procs: list[subprocess.Popen], timeout_s: float) -> None:
    """SIGTERM to each still running, then SIGKILL to any not gone within ``timeout_s``."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()


def open_alerts(engine, store, n: int, at: float) -> dict[int, float]:
    """``n`` open gas alarms opened at ``at``, each on a sensor of its own: their
    street escalation falls due together, T1 later.  Written as the engine writes
    them (the alert row armed by the ladder, its ``open`` event and audit entry),
    in one transaction.  Returns each alert's deadline."""
    from sqlalchemy import insert, select

    from alerts.audit import alert_audit
    from alerts.lifecycle import new_alert
    from alerts.model import sensor_subject
    from data import audit
    from data.alert_store import _values
    from data.models import Alert, AlertEvent

    rows, opened = [], []
    for i in range(n):
        sid = f"BENCH{i:05d}"
        alert, rec = new_alert("gas_alarm", sensor_subject(sid), severity="critical", at=at,
                               sensor_id=sid, enterprise_id="E1", street_id="ST1", grid_id="G1", peak_lel=40.0)
        alert = store.ladder.arm(alert, at)
        rows.append(_values(alert) | {"created_at": at, "updated_at": at, "version": 1})
        opened.append(rec)
    with engine.begin() as conn:
        conn.execute(insert(Alert), rows)
        ids = conn.execute(select(Alert.id, Alert.escalate_at).where(Alert.subject.like("sensor:BENCH%"))
                           .order_by(Alert.id)).all()
        conn.execute(insert(AlertEvent), [{"alert_id": a.id, "from_state": None, "to_state": "open",
                                           "action": "open", "actor": rec.actor, "at": at, "note": None}
                                          for a, rec in zip(ids, opened)])
        audit.append_many(conn, [(rec.actor, *alert_audit(a.id, rec), rec.at) for a, rec in zip(ids, opened)])
    return {a.id: a.escalate_at for a in ids}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=3000)
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="postgresql")
    ap.add_argument("--failover", action="store_true", help="kill -9 the active engine 1 s before the deadline")
    ap.add_argument("--lead-s", type=float, default=20.0, help="seconds from start to the deadline")
    args = ap.parse_args()

    import orjson
    import paho.mqtt.client as mqtt
    import redis
    from paho.mqtt.enums import CallbackAPIVersion
    from sqlalchemy import text

    from alerts.escalation import Ladder
    from config.settings import load_settings
    from data.alert_store import AlertStore
    from data.db import make_engine, migrate
    from data.live import LiveState
    from tests.citykit import write_small_city

    ns = "besc" + uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="bench-escalation-"))
    if args.db == "postgresql":
        schema = "s" + ns
        admin = make_engine(PG)
        with admin.begin() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        db_url = f"{PG}?options=-csearch_path%3D{schema}"
    else:
        admin, schema = None, None
        db_url = f"sqlite:///{tmp / 'anjian.sqlite3'}"
    engine = make_engine(db_url)
    r = redis.Redis.from_url(REDIS)
    procs: list[subprocess.Popen] = []
    sub = None
    try:
        migrate(engine)
        write_small_city(engine)
        # T1 is long enough for every engine process to start and settle before the deadline.
        t1 = args.lead_s
        s = load_settings(redis_url=REDIS, mqtt_url=MQTT, database_url=None, data_dir=tmp, mqtt_prefix=ns,
                          redis_namespace=ns, escalate_t1_s=int(t1), escalate_t2_s=int(t1) + 3600)
        store = AlertStore(engine, LiveState(r, ns), Ladder.from_settings(s), mqtt_prefix=ns)

        arrived: dict[int, list[float]] = {}
        lock = threading.Lock()

        def on_message(_c, _u, m):
            t = time.time()
            alert_id = int(m.topic.split("/")[-2])
            orjson.loads(m.payload)  # a well-formed escalation message
            with lock:
                arrived.setdefault(alert_id, []).append(t)

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{ns}-listener", protocol=mqtt.MQTTv311)
        sub.on_message = on_message
        sub.connect("127.0.0.1", 1883)
        sub.subscribe(f"{ns}/v1/alerts/+/escalation", qos=1)
        sub.loop_start()

        env = dict(os.environ, ANJIAN_DATABASE_URL=db_url, ANJIAN_REDIS_URL=REDIS, ANJIAN_MQTT_URL=MQTT,
                   ANJIAN_MQTT_PREFIX=ns, ANJIAN_REDIS_NAMESPACE=ns, ANJIAN_DATA_DIR=str(tmp),
                   ANJIAN_ESCALATE_T1_S=str(int(t1)), ANJIAN_ESCALATE_T2_S=str(int(t1) + 3600),
                   ANJIAN_MQTT_CLIENT_ID=f"{ns}-ingest", ANJIAN_REPORT_SCHEDULE="false")
        n_engines = 2 if args.failover else 1
        log_paths = [tmp / f"engine{k}.log" for k in range(n_engines)]
        for k in range(n_engines):
            log = open(log_paths[k], "wb")  # noqa: SIM115 - the child holds it
            procs.append(subprocess.Popen([sys.executable, str(ROOT / "app.py"), "alerts"], cwd=ROOT, env=env,
                                          stdout=log, stderr=subprocess.STDOUT))
        lease_key = f"{ns}:alert-engine:leader"
        t_start = time.time()
        while not r.get(lease_key):
            if time.time() - t_start > 30:
                raise SystemExit(f"no engine took the lease; logs in {tmp}")
            time.sleep(0.1)
        due = open_alerts(engine, store, args.alerts, time.time())
        deadline = min(due.values())
        print(f"{len(due)} alerts due at +{deadline - time.time():.1f} s ({args.db}, {n_engines} engine process(es))")
        if deadline - time.time() < 3.0:
            raise SystemExit("the alerts were written too close to their deadline: raise --lead-s")
        killed = None
        if args.failover:
            time.sleep(max(0.0, deadline - 1.0 - time.time()))
            holder = (r.get(lease_key) or b"").decode()
            # Each engine logs "alert engine ID is active" when it takes the lease.
            for p, path in zip(procs, log_paths):
                if f"alert engine {holder} is active" in path.read_text(errors="replace"):
                    p.kill()
                    killed = p
                    break
            if killed is None:
                raise SystemExit(f"cannot tell which process holds the lease {holder!r}")
            print(f"kill -9 of the active engine (pid {killed.pid}) 1 s before the deadline")
        # Wait for every escalation (or give up 60 s after the deadline).
        give_up = deadline + 60
        while time.time() < give_up:
            with lock:
                if len(arrived) >= len(due):
                    break
            time.sleep(0.2)
        time.sleep(2.0)  # a duplicate would come now
        with lock:
            late = [min(ts) - due[a] for a, ts in arrived.items() if a in due]
            dup = sum(len(ts) - 1 for ts in arrived.values())
        missing = len(due) - len(late)
        target = 5.0 if args.failover else 2.0
        print(f"escalations: {len(late)} of {len(due)} arrived, {missing} missing, {dup} duplicated")
        if late:
            print(f"late by: p50 {statistics.median(late):.2f} s, p95 {pct(late, 95):.2f} s, "
                  f"max {max(late):.2f} s, min {min(late):.2f} s (target p95 <= {target:.0f} s)")
        ok = bool(late) and missing == 0 and dup == 0 and pct(late, 95) <= target
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        stop_processes(procs, 15)
        if sub is not None:
            sub.loop_stop()
            sub.disconnect()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            r.delete(*keys)
        engine.dispose()
        if admin is not None:
            with admin.begin() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
