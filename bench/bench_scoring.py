"""Daily scoring at city scale: ``data.scores_store.run_day`` over 130,000 enterprises
with a year of visits, hazards, self-inspections and gas alarms.

The city (SQLite file by default, or ``--url`` for PostgreSQL): ``--n`` enterprises in
10 streets, 2,000 inspectors in 20 units, visits at each enterprise's risk interval
over 365 days (about 4.7 a year each), a hazard on 10% of visits (a third of them
major; most closed, some overdue), monthly self-inspections by 80% of enterprises,
and 5,000 gas alarms.  Timed, each the median of ``--repeats`` runs after one warm-up:

* baseline: one aggregate over the visits (``max(start_ts)`` per enterprise), the
  largest single read the scoring makes;
* facts + scores: ``compute_day`` (the SQL aggregates and the pure scoring);
* the whole day: ``run_day`` (the above, and replacing the day's rows in one transaction).

Memory: the process's peak RSS before and after the runs, and tracemalloc's peak of
one ``compute_day``.  The target (docs/benchmarks.md): the whole day <= 60 s.

Then the enterprise profile with its credit face: 200 random enterprises, with
``--trend-days`` days of scores stored for every enterprise; target <= 100 ms.

    .venv/bin/python bench/bench_scoring.py [--n 130000] [--repeats 3] [--url URL]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.china import DEFAULT_INTERVALS_D  # noqa: E402

from config.settings import load_settings  # noqa: E402
from data.db import make_engine, migrate  # noqa: E402
from data.models import Visit  # noqa: E402
from data.scores_store import compute_day, day_end, run_day  # noqa: E402

DAY = "2026-11-30"
D = 86400.0
INTERVALS = dict(DEFAULT_INTERVALS_D)  # the inspection intervals every deployment starts with


def _insert(conn, table: str, cols: list[str], rows) -> None:
    sql = text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})")
    batch = []
    for r in rows:
        batch.append(dict(zip(cols, r)))
        if len(batch) == 20000:
            conn.execute(sql, batch)
            batch = []
    if batch:
        conn.execute(sql, batch)


def fill(engine, n: int, seed: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    end = day_end(DAY)
    counts = {}
    colours = np.array(list(INTERVALS))
    risk = colours[rng.choice(4, n, p=[0.05, 0.15, 0.3, 0.5])]
    with engine.begin() as conn:
        _insert(conn, "streets", ["id", "name", "geometry"], ((f"ST{k:02d}", f"s{k}", "{}") for k in range(10)))
        _insert(conn, "units", ["id", "name", "kind", "street_id"],
                ((f"U{k:02d}", f"u{k}", "street_office" if k < 10 else "district_section",
                  f"ST{k:02d}" if k < 10 else None) for k in range(20)))
        _insert(conn, "inspectors", ["id", "name", "unit_id"], ((f"I{k:04d}", f"i{k}", f"U{k % 20:02d}")
                                                                 for k in range(2000)))
        _insert(conn, "enterprises", ["id", "name", "lat", "lon", "risk", "street_id"],
                ((f"E{i:06d}", f"e{i}", 22.6, 114.0, str(risk[i]), f"ST{i % 10:02d}") for i in range(n)))
        # Visits: every enterprise at its interval (jittered) over the year.
        visits, hz = [], []
        vid = 0
        for i in range(n):
            every = INTERVALS[risk[i]] * D
            t = end - 365 * D + rng.uniform(0, every)
            while t < end:
                vid += 1
                insp = int(rng.integers(0, 2000))
                dup = vid - 1 if vid > 1 and rng.random() < 0.03 else None
                visits.append((vid, f"E{i:06d}", f"I{insp:04d}", f"U{insp % 20:02d}", t, t + 1200, f"k{vid}", True,
                               dup))
                if rng.random() < 0.10:
                    major = rng.random() < 0.33
                    deadline = t + (30 if major else 7) * D
                    fixed = t + rng.uniform(1, 40) * D
                    closed = fixed + 2 * D if fixed + 2 * D < end and rng.random() < 0.9 else None
                    state = "closed" if closed else ("rectified" if fixed < end else "rectifying")
                    hz.append((f"E{i:06d}", f"ST{i % 10:02d}", "SC01", "major" if major else "general", state,
                               "inspector", f"I{insp:04d}", vid, t, t + 60, deadline,
                               fixed if fixed < end else None, closed, 0, t, 1))
                t += every * rng.uniform(0.7, 1.3)
        _insert(conn, "visits", ["id", "enterprise_id", "inspector_id", "unit_id", "start_ts", "end_ts", "stay_key",
                                 "ended", "duplicate_of"], visits)
        _insert(conn, "hazards", ["enterprise_id", "street_id", "category", "level", "state", "found_by", "finder_id",
                                  "visit_id", "reported_at", "assigned_at", "deadline", "rectified_at", "closed_at",
                                  "send_backs", "updated_at", "version"], hz)
        counts["visits"], counts["hazards"] = len(visits), len(hz)
        reporting = rng.random(n) < 0.8
        si = ((f"E{i:06d}", end - (m * 30 + rng.uniform(0, 30)) * D, "bench", 0)
              for i in range(n) if reporting[i] for m in range(12))
        _insert(conn, "self_inspections", ["enterprise_id", "submitted_at", "submitted_by", "hazards_found"], si)
        counts["self_inspections"] = int(reporting.sum()) * 12
        alarms = []
        for k in range(5000):
            i = int(rng.integers(0, n))
            t = end - rng.uniform(0, 365) * D
            alarms.append(("gas_alarm", f"sensor:S{k}", "critical", "closed", f"E{i:06d}", f"ST{i % 10:02d}",
                           f"I{int(rng.integers(0, 2000)):04d}", 1, 0, t, t, t, t, 1))
        _insert(conn, "alerts", ["type", "subject", "severity", "state", "enterprise_id", "street_id", "assignee_id",
                                 "count", "escalation_level", "first_seen", "last_seen", "created_at", "updated_at",
                                 "version"], alarms)
        _insert(conn, "alert_events", ["alert_id", "from_state", "to_state", "action", "actor", "at"],
                ((k + 1, "dispatched", "on_scene", "arrive", "gps", alarms[k][9] + rng.uniform(120, 1800))
                 for k in range(5000) if k % 4))
        counts["gas_alarms"] = len(alarms)
    return counts


def _median(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=130_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--trend-days", type=int, default=90, help="days of stored scores for the profile's trend")
    ap.add_argument("--url", help="a database URL (default: a SQLite file in a temporary directory)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-scoring-")
    engine = make_engine(args.url or f"sqlite:///{tmp}/anjian.sqlite3")
    migrate(engine)
    settings = load_settings(data_dir=tmp)
    t0 = time.perf_counter()
    counts = fill(engine, args.n)
    print(f"city: {args.n} enterprises, {counts} (filled in {time.perf_counter() - t0:.0f} s)", flush=True)
    end = day_end(DAY)

    def baseline():
        with engine.connect() as conn:
            return len(conn.execute(select(Visit.enterprise_id, func.max(Visit.start_ts))
                                    .where(Visit.start_ts <= end).group_by(Visit.enterprise_id)).all())

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_base, _ = _median(baseline, args.repeats)
    t_compute, rows = _median(lambda: compute_day(engine, settings, DAY), args.repeats)
    t_day, res = _median(lambda: run_day(engine, settings, DAY), args.repeats)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    compute_day(engine, settings, DAY)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"scoring {DAY}: {res['rows']} rows; median of {args.repeats}: baseline (visits aggregate) {t_base:.2f} s, "
          f"facts + scores {t_compute:.2f} s, whole day incl. write {t_day:.2f} s (target <= 60 s)")
    print(f"memory: peak RSS {rss0:.0f} MiB after filling, {rss1:.0f} MiB after scoring; "
          f"tracemalloc peak of one compute_day {peak / 2**20:.0f} MiB")
    profile(engine, settings, args)
    engine.dispose()
    shutil.rmtree(tmp, ignore_errors=True)  # the SQLite file of a city-scale run is some GB


def profile(engine, settings, args) -> None:
    """The enterprise profile's credit face (``HazardStore.credit_face`` and the enterprise
    row, what ``GET /api/v1/enterprises/{id}`` does), with ``--trend-days`` of scores stored
    for every enterprise (copies of the scored day)."""
    from datetime import date, timedelta

    from data.hazards_store import HazardStore

    with engine.begin() as conn:
        for k in range(1, args.trend_days):
            d = (date.fromisoformat(DAY) - timedelta(days=k)).isoformat()
            conn.execute(text("INSERT INTO scores (date, kind, subject_id, score, rank, parts) "
                              "SELECT :d, kind, subject_id, score, rank, parts FROM scores WHERE date = :day"),
                         {"d": d, "day": DAY})
    store = HazardStore(engine, settings)
    rng = np.random.default_rng(3)
    ids = [f"E{int(i):06d}" for i in rng.integers(0, args.n, 200)]
    now = day_end(DAY) + 3600
    times = []
    for eid in ids:
        t0 = time.perf_counter()
        store.enterprises(only_id=eid, limit=1)
        face = store.credit_face(eid, now)
        times.append(time.perf_counter() - t0)
    times.sort()
    print(f"enterprise profile with its credit face ({args.trend_days} days of scores for every enterprise, "
          f"{len(ids)} enterprises): median {1000 * statistics.median(times):.1f} ms, "
          f"p95 {1000 * times[int(0.95 * len(times))]:.1f} ms (target <= 100 ms); last had "
          f"{len(face['score_trend'])} trend points, {len(face['visits'])} visits")


if __name__ == "__main__":
    main()
