"""The nightly jobs run in a child process of the alert engine's, at a lower priority
(data/jobs.py), as production runs them: ``python app.py alerts`` as a process of
its own, on the test Mosquitto and Redis and a SQLite file holding the tiny demo
city, whose yesterday has no scores yet.  The engine starts the scores' catch-up at
once; each test catches the job while it holds its Redis lease (it takes it in the
child), and looks at the process that holds it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, select

from data.models import ScoreRun
from data.scores_store import LEASE_KEY, china_day
from tests.appkit import clean_env
from tests.conftest import TEST_MQTT_URL, TEST_REDIS_URL
from tests.mqttkit import wait_until

ROOT = Path(__file__).resolve().parents[1]
APP = [sys.executable, str(ROOT / "app.py")]


def env_of(tmp: Path, db: Path, ns: str) -> dict:
    return clean_env(ANJIAN_DATA_DIR=tmp / "var", ANJIAN_DATABASE_URL=f"sqlite:///{db}",
                     ANJIAN_MQTT_URL=TEST_MQTT_URL, ANJIAN_REDIS_URL=TEST_REDIS_URL, ANJIAN_REDIS_NAMESPACE=ns,
                     ANJIAN_MQTT_PREFIX=ns, ANJIAN_MQTT_CLIENT_ID=f"{ns}-ingest", ANJIAN_MQTT_SHARE_GROUP=ns,
                     ANJIAN_MQTT_SESSION_EXPIRY_S=60)


@pytest.fixture(scope="module")
def tiny_city(tmp_path_factory) -> Path:
    """The tiny demo city in a SQLite file, written once; each test scores a copy."""
    tmp = tmp_path_factory.mktemp("city")
    db = tmp / "city.sqlite3"
    out = subprocess.run([*APP, "demo-city", "--scale", "tiny"], env=env_of(tmp, db, "unused"), cwd=tmp,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return db


@pytest.fixture
def alerts(tmp_path, tiny_city, namespace):
    """``python app.py alerts`` on a copy of the city; yields (process, database file, log file)."""
    db = tmp_path / "anjian.sqlite3"
    shutil.copy(tiny_city, db)
    log = tmp_path / "alerts.log"
    with log.open("w") as out:
        p = subprocess.Popen([*APP, "alerts"], env=env_of(tmp_path, db, namespace), cwd=tmp_path, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    yield p, db, log
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)


def yesterday() -> str:
    return (date.fromisoformat(china_day(time.time())) - timedelta(days=1)).isoformat()


def scored_days(db: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(ScoreRun.date)).scalars())
    finally:
        engine.dispose()


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if ppid_nice(int(d.name))[0] == pid:
                    out.append(int(d.name))
            except (OSError, IndexError):
                continue  # gone meanwhile
    return out


def ppid_nice(pid: int) -> tuple[int, int]:
    """The process's parent and nice value, from /proc/PID/stat (proc(5): fields 4 and 19)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[16])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; its parent has not read its status yet


def job_while_it_holds_the_lease(r: redis.Redis, ns: str, engine_pid: int, log: Path) -> int:
    """The scores job's process, caught while it holds the lease: the engine's child."""
    key = f"{ns}:{LEASE_KEY}"
    wait_until(lambda: r.exists(key), timeout_s=60, interval_s=0.002)
    kids = children(engine_pid)
    assert len(kids) == 1, (kids, log.read_text()[-3000:])
    return kids[0]


def test_the_days_scores_are_worked_out_in_a_child_of_the_alert_engine_at_a_lower_priority(alerts, redis_client,
                                                                                          namespace):
    """A city's day of scores is 14-23 s of Python; the engine's alarms must not wait on
    the GIL behind it.  The job is the engine's child, at nice 10, and the day is scored."""
    p, db, log = alerts
    job = job_while_it_holds_the_lease(redis_client, namespace, p.pid, log)
    parent, nice = ppid_nice(job)
    assert (parent, nice) == (p.pid, 10)
    assert b"jobs" in Path(f"/proc/{job}/cmdline").read_bytes()
    wait_until(lambda: scored_days(db) == [yesterday()], timeout_s=60)
    wait_until(lambda: not alive(job), timeout_s=10)  # the job ends; the engine says so, and runs on
    wait_until(lambda: f"nightly job scores done in its process {job}" in log.read_text(), timeout_s=10)
    assert p.poll() is None
    assert not redis_client.exists(f"{namespace}:{LEASE_KEY}")
    text = log.read_text()
    assert " ERROR " not in text and "Traceback" not in text, text[-3000:]


def test_a_kill_9_of_the_alert_engine_leaves_its_running_job_to_finish(alerts, redis_client, namespace):
    """The job holds the night's lease: killed with the engine, the night would wait for
    the lease to lapse.  It finishes, releases the lease and ends by itself."""
    p, db, log = alerts
    job = job_while_it_holds_the_lease(redis_client, namespace, p.pid, log)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    wait_until(lambda: scored_days(db) == [yesterday()], timeout_s=60)
    wait_until(lambda: not alive(job), timeout_s=10)
    assert not redis_client.exists(f"{namespace}:{LEASE_KEY}")


def test_stopping_the_alert_engine_stops_its_running_job_and_frees_its_lease(alerts, redis_client, namespace):
    """SIGTERM to the engine mid-job: the engine ends its child, which unwinds and
    releases the lease (a lease left behind would hold the next start's catch-up for
    its whole hour); nothing of the engine's is left running."""
    p, db, log = alerts
    job = job_while_it_holds_the_lease(redis_client, namespace, p.pid, log)
    os.kill(p.pid, signal.SIGTERM)
    assert p.wait(20) == 0, log.read_text()[-3000:]
    assert not alive(job)
    assert not redis_client.exists(f"{namespace}:{LEASE_KEY}")
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_a_job_by_hand_runs_as_its_schedule_does(tmp_path, tiny_city, namespace, redis_client):
    """`python app.py jobs scores` (README): the days missed, under the lease; again, nothing."""
    db = tmp_path / "anjian.sqlite3"
    shutil.copy(tiny_city, db)
    env = env_of(tmp_path, db, namespace)
    for expected in ("1 day(s) scored", "0 day(s) scored"):
        out = subprocess.run([*APP, "jobs", "scores"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"nightly job scores: {expected}" in out.stderr, out.stderr
    assert scored_days(db) == [yesterday()]
    assert not redis_client.exists(f"{namespace}:{LEASE_KEY}")


def test_a_failing_job_is_logged_and_the_alert_engine_runs_on(tmp_path, tiny_city, namespace, redis_client):
    """The scores' table gone (an operator's mistake): the job's process fails, the engine
    says so, frees the lease and goes on answering."""
    db = tmp_path / "anjian.sqlite3"
    shutil.copy(tiny_city, db)
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE scores")
    engine.dispose()
    log = tmp_path / "alerts.log"
    with log.open("w") as out:
        p = subprocess.Popen([*APP, "alerts"], env=env_of(tmp_path, db, namespace), cwd=tmp_path, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: "nightly job scores failed in its process" in log.read_text(), timeout_s=60)
        time.sleep(1.0)
        assert p.poll() is None, log.read_text()[-3000:]
        assert "no such table: scores" in log.read_text()  # the child's own traceback says why
        assert not redis_client.exists(f"{namespace}:{LEASE_KEY}")
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(20) == 0, log.read_text()[-3000:]
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def test_a_job_killed_holding_the_lease_is_tried_again_soon(tmp_path, tiny_city, namespace, redis_client):
    """The day's scores' process killed (the kernel's OOM killer takes the largest: at a
    city's scale, it): its lease would hold the night for an hour and the day would wait
    for the next midnight.  The engine frees the lease of its dead child and tries again
    after jobs_retry_s."""
    db = tmp_path / "anjian.sqlite3"
    shutil.copy(tiny_city, db)
    log = tmp_path / "alerts.log"
    with log.open("w") as out:
        p = subprocess.Popen([*APP, "alerts"], env={**env_of(tmp_path, db, namespace), "ANJIAN_JOBS_RETRY_S": "1"},
                             cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        job = job_while_it_holds_the_lease(redis_client, namespace, p.pid, log)
        os.kill(job, signal.SIGKILL)
        wait_until(lambda: scored_days(db) == [yesterday()], timeout_s=60)
        killed = f"nightly job scores failed in its process {job} (exit code -9"
        wait_until(lambda: "nightly job scores done" in log.read_text().partition(killed)[2], timeout_s=10)
        assert "daily scoring is tried again in 1 s (1 of 3)" in log.read_text()
        assert p.poll() is None
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(20)


def test_the_weekly_bulletin_job_writes_the_last_weeks_bulletin_once(tmp_path, tiny_city, namespace):
    """`python app.py jobs weekly` (README), as the schedule starts it on Monday morning:
    the district's bulletin of the last complete week, by the schedule, with its files;
    run again, nothing more."""
    from dashboard.bulletins import SCHEDULE_ACTOR
    from data.models import ReportRow

    db = tmp_path / "anjian.sqlite3"
    shutil.copy(tiny_city, db)
    env = {**env_of(tmp_path, db, namespace), "ANJIAN_REPORT_PER_STREET": "false"}
    for expected in ("1 written", "0 written"):
        out = subprocess.run([*APP, "jobs", "weekly"], env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"nightly job weekly bulletins: {expected}" in out.stderr, out.stderr[-3000:]
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(ReportRow.kind, ReportRow.street_id, ReportRow.generated_by,
                                       ReportRow.files)).all()
    finally:
        engine.dispose()
    assert [(r.kind, r.street_id, r.generated_by) for r in rows] == [("weekly", None, SCHEDULE_ACTOR)]
    assert rows[0].files
