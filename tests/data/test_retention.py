"""History retention (data/retention.py): what is older than the operator keeps goes,
alarms stay, visits stay, every run is audited; on SQLite and PostgreSQL, and through
`app.py history prune` as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from data import retention
from data.models import AuditEntry, PingRow, SensorReadingRow, Visit
from tests.appkit import clean_env
from tests.citykit import write_small_city

DAY = 86400.0
ROOT = Path(__file__).resolve().parents[2]


def fill(engine, now: float, days: int = 12, per_day: int = 30) -> None:
    """``per_day`` readings and fixes a day for ``days`` days, oldest first (as the
    ingest appends them); every tenth reading an alarm."""
    readings, pings = [], []
    for d in range(days, 0, -1):
        for k in range(per_day):
            ts = now - d * DAY + k * 60
            readings.append({"sensor_id": "S1", "ts": ts, "lel_pct": 40.0 if k % 10 == 0 else 1.0, "ppm": None,
                             "alarm": None, "level": "high" if k % 10 == 0 else "normal", "batt_pct": 90.0,
                             "source": "anjian", "received_at": ts, "msg_id": f"r{d}-{k}"})
            pings.append({"inspector_id": "I1", "ts": ts, "lat": 22.6, "lon": 114.0, "acc_m": 8.0, "speed_mps": None,
                          "source": "anjian", "received_at": ts, "msg_id": f"p{d}-{k}"})
    with engine.begin() as conn:
        conn.execute(insert(SensorReadingRow), readings)
        conn.execute(insert(PingRow), pings)


def counts(engine, now: float) -> dict:
    with engine.connect() as conn:
        def n(model, *where):
            return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()
        return {
            "normal_old": n(SensorReadingRow, SensorReadingRow.level == "normal", SensorReadingRow.ts < now - 7 * DAY),
            "alarm_old": n(SensorReadingRow, SensorReadingRow.level != "normal", SensorReadingRow.ts < now - 7 * DAY),
            "readings": n(SensorReadingRow),
            "pings_old": n(PingRow, PingRow.ts < now - 10 * DAY),
            "pings": n(PingRow),
            "visits": n(Visit),
        }


def test_old_normal_readings_and_old_fixes_go_alarms_and_visits_stay(engine, settings):
    write_small_city(engine)
    now = time.time()
    fill(engine, now)
    with engine.begin() as conn:
        conn.execute(insert(Visit), [{"enterprise_id": "E1", "inspector_id": "I1", "unit_id": "U1",
                                      "start_ts": now - 11 * DAY, "end_ts": now - 11 * DAY + 900, "stay_key": "I1:E1:old"}])
    before = counts(engine, now)
    assert before["normal_old"] > 0 and before["alarm_old"] > 0 and before["pings_old"] > 0
    s = settings.model_copy(update={"history_readings_keep_days": 7, "history_pings_keep_days": 10})

    dry = retention.prune(engine, s, now, dry_run=True)
    assert dry["sensor_readings"]["would_delete"] == before["normal_old"]
    assert dry["pings"]["would_delete"] == before["pings_old"]
    assert counts(engine, now) == before, "a dry run deletes nothing"

    done = retention.prune(engine, s, now, actor="ops")
    after = counts(engine, now)
    assert done["sensor_readings"]["deleted"] == before["normal_old"]
    assert done["pings"]["deleted"] == before["pings_old"]
    assert after["normal_old"] == 0 and after["pings_old"] == 0
    assert after["alarm_old"] == before["alarm_old"], "alarm readings are evidence: kept"
    assert after["readings"] == before["readings"] - before["normal_old"]
    assert after["pings"] == before["pings"] - before["pings_old"]
    assert after["visits"] == before["visits"] == 1
    with engine.connect() as conn:
        entry = conn.execute(select(AuditEntry.actor, AuditEntry.detail).where(AuditEntry.action == "history.pruned")
                             ).one()
    assert entry.actor == "ops" and json.loads(entry.detail)["sensor_readings"]["deleted"] == before["normal_old"]

    again = retention.prune(engine, s, now)
    assert again["sensor_readings"]["deleted"] == 0 and again["pings"]["deleted"] == 0
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).where(AuditEntry.action == "history.pruned")).scalar_one()
    assert n == 1, "a run that deleted nothing leaves no audit entry"


def test_slices_walk_past_the_gaps_earlier_runs_left(engine, settings):
    """Small slices (``chunk``) over rows with holes: every old row goes, none newer."""
    now = time.time()
    fill(engine, now, days=12, per_day=30)
    with engine.begin() as conn:  # holes: delete every other day's rows by hand
        for d in range(12, 0, -2):
            conn.execute(SensorReadingRow.__table__.delete().where(
                SensorReadingRow.ts >= now - d * DAY, SensorReadingRow.ts < now - d * DAY + 3600))
    before = counts(engine, now)
    n = retention.prune_table(engine, SensorReadingRow, now - 7 * DAY, SensorReadingRow.level == "normal", chunk=7)
    assert n == before["normal_old"] and counts(engine, now)["normal_old"] == 0
    assert counts(engine, now)["readings"] == before["readings"] - n


def test_nothing_set_keeps_everything_and_the_daily_job_runs_once_a_day(engine, settings, redis_client):
    now = time.time()
    fill(engine, now, days=3, per_day=5)
    assert retention.prune(engine, settings, now) == {}
    s = settings.model_copy(update={"history_readings_keep_days": 1})
    job_a = retention.Scheduler(engine, s, redis_client)
    job_b = retention.Scheduler(engine, s, redis_client)
    assert job_a.run_once(now)["sensor_readings"]["deleted"] > 0
    assert job_b.run_once(now) is None, "the other process's job found the day's lease taken"
    # 03:00 China time is 19:00 UTC the day before
    assert retention.seconds_to_next_run(1_796_410_800.0 - 10) == 10.0  # 2026-12-04 19:00 UTC
    assert retention.seconds_to_next_run(1_796_410_800.0) == DAY


def test_the_cli_prunes_as_an_operator_runs_it(tmp_path):
    db = tmp_path / "anjian.sqlite3"
    from data.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    now = time.time()
    fill(engine, now, days=5, per_day=10)
    old = counts(engine, now)
    env = clean_env(ANJIAN_DATABASE_URL=f"sqlite:///{db}", ANJIAN_DATA_DIR=tmp_path / "var")

    def cli(*args, **extra):
        return subprocess.run([sys.executable, str(ROOT / "app.py"), "history", "prune", *args],
                              env={**env, **{k: str(v) for k, v in extra.items()}}, cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    off = cli()
    assert off.returncode == 0 and "no retention is set" in off.stdout
    dry = cli("--dry-run", ANJIAN_HISTORY_READINGS_KEEP_DAYS=2)
    assert dry.returncode == 0, dry.stderr
    with engine.connect() as conn:
        normal_older_than_2 = conn.execute(select(func.count()).where(
            SensorReadingRow.level == "normal", SensorReadingRow.ts < now - 2 * DAY)).scalar_one()
    assert f"sensor_readings: would delete {normal_older_than_2} rows older than 2 days" in dry.stdout
    assert counts(engine, now) == old
    run = cli(ANJIAN_HISTORY_READINGS_KEEP_DAYS=2)
    assert run.returncode == 0 and f"deleted {normal_older_than_2} rows" in run.stdout, run.stdout + run.stderr
    with engine.connect() as conn:
        actor = conn.execute(select(AuditEntry.actor).where(AuditEntry.action == "history.pruned")).scalar_one()
    assert actor  # the operator's user name (or "cli")
    engine.dispose()
