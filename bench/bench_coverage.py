"""Coverage by risk colour at city scale: ``data.geo_queries.coverage`` against the
pandas way (``read_sql`` of the enterprises, a due date per row, a group-by).

130,000 enterprises in a SQLite file (the city of the README), 10 streets.  Each
timing is the median of ``--repeats`` runs after one warm-up; the two alternate,
so machine noise hits both alike.  The target (docs/benchmarks.md): ours under
1 s, and not slower than the pandas way.

    .venv/bin/python bench/bench_coverage.py [--n 130000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.china import DEFAULT_INTERVALS_D  # noqa: E402

from data import geo_queries as gq  # noqa: E402
from data.db import make_engine, migrate  # noqa: E402
from data.models import Enterprise, Street  # noqa: E402

INTERVALS = dict(DEFAULT_INTERVALS_D)  # the inspection intervals every deployment starts with
DAY = 86400.0
NOW = 1_780_000_000.0


def fill(engine, n: int) -> None:
    rng = np.random.default_rng(7)
    risk = np.array(list(INTERVALS))[rng.integers(0, 4, n)]
    days = np.array([INTERVALS[c] for c in risk], dtype=float)
    last = NOW - rng.uniform(0, 1.5, n) * days * DAY
    never = rng.random(n) < 0.05
    with engine.begin() as conn:
        conn.execute(insert(Street), [{"id": f"ST{k:02d}", "name": f"s{k}", "geometry": "{}"} for k in range(10)])
        conn.execute(insert(Enterprise), [
            {"id": f"E{i:06d}", "name": f"e{i}", "lat": 22.6, "lon": 114.0, "risk": str(risk[i]),
             "street_id": f"ST{i % 10:02d}", "last_inspected_at": None if never[i] else float(last[i])}
            for i in range(n)])


def pandas_way(engine) -> dict:
    df = pd.read_sql("SELECT risk, street_id, last_inspected_at, next_due_at FROM enterprises", engine)
    due = df.next_due_at.fillna(df.last_inspected_at + df.risk.map(INTERVALS) * DAY)
    df["within"] = ~(NOW > due.fillna(-np.inf))
    return {"overall": 100 * df.within.mean(), "by_colour": (100 * df.groupby("risk").within.mean()).to_dict(),
            "by_street": (100 * df.groupby("street_id").within.mean()).to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=130_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/anjian.sqlite3")
        migrate(engine)
        fill(engine, args.n)
        ours, theirs = [], []
        a, b = gq.coverage(engine, INTERVALS, NOW), pandas_way(engine)  # warm-up, and the same answer
        assert abs(a["overall"] - b["overall"]) < 1e-9, (a["overall"], b["overall"])
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            gq.coverage(engine, INTERVALS, NOW)
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pandas_way(engine)
            theirs.append(time.perf_counter() - t0)
        engine.dispose()
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"coverage of {args.n} enterprises, median of {args.repeats}: ours {mo:.3f} s, "
          f"pandas read_sql + groupby {mt:.3f} s, ratio pandas/ours {mt / mo:.2f}x")


if __name__ == "__main__":
    main()
