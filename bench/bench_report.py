"""A district monthly bulletin at city scale, to PDF (issue 17; target <= 30 s).

The city: 130,000 enterprises in 10 street squares, 60 units with 1,500
inspectors, and a month (2026-11) of history: 60,000 visits (3 % duplicates,
2 % same-unit repeats), 600 gas alarms with their acknowledgement and arrival
events, 300 live duplicate alerts.  SQLite file in a temporary directory.

Each run is ``dashboard.bulletins.generate`` end to end (gather, build, the
charts of both languages drawn by Kaleido in Debian's chromium, PDF and HTML
in zh-CN and en, archive); the phases are timed separately too.  Baseline in
the same run: the same bulletin of the small two-street city of the tests
(what the fixed costs are: Chromium's start, fonts, the PDF library).
Median of ``--repeats`` runs after one warm-up.

    .venv/bin/python bench/bench_report.py [--repeats 3] [--enterprises 130000] [--visits 60000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from config.settings import load_settings  # noqa: E402
from dashboard import bulletin_render as render  # noqa: E402
from dashboard.bulletins import generate, period_weeks  # noqa: E402
from data import report_queries  # noqa: E402
from data.db import make_engine, migrate  # noqa: E402
from data.models import Alert, AlertEvent, Enterprise, Inspector, Street, Unit, Visit  # noqa: E402
from reports import period as P  # noqa: E402
from reports.model import Anchor  # noqa: E402
from reports.sections import build  # noqa: E402

MONTH = "2026-11"
DAY = 86400.0
CHUNK = 20_000


def square(k: int) -> str:
    x0, y0 = 113.95 + 0.04 * (k % 5), 22.55 + 0.05 * (k // 5)
    ring = [[x0, y0], [x0 + 0.04, y0], [x0 + 0.04, y0 + 0.05], [x0, y0 + 0.05], [x0, y0]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


def fill_city(engine, n_ent: int, n_visits: int, now: float) -> None:
    rng = np.random.default_rng(17)
    p = P.parse("monthly", MONTH)
    colours = np.array(["red", "orange", "yellow", "blue"])
    intervals = {"red": 30, "orange": 60, "yellow": 90, "blue": 180}
    with engine.begin() as conn:
        conn.execute(insert(Street), [{"id": f"ST{k:02d}", "name": f"第{k}街道", "name_en": f"Street {k}",
                                       "geometry": square(k)} for k in range(10)])
        conn.execute(insert(Unit), [{"id": f"U{u:02d}", "name": f"第{u}执法队", "kind": "street_office",
                                     "street_id": f"ST{u % 10:02d}"} for u in range(60)])
        conn.execute(insert(Inspector), [{"id": f"I{i:04d}", "name": f"检查员{i}", "unit_id": f"U{i % 60:02d}"}
                                         for i in range(1500)])
        risk = colours[rng.integers(0, 4, n_ent)]
        street = rng.integers(0, 10, n_ent)
        lon = 113.95 + 0.04 * (street % 5) + rng.uniform(0, 0.04, n_ent)
        lat = 22.55 + 0.05 * (street // 5) + rng.uniform(0, 0.05, n_ent)
        last = now - rng.uniform(0, 1.5, n_ent) * np.array([intervals[c] for c in risk]) * DAY
        rows = [{"id": f"E{i:06d}", "name": f"企业{i}", "lat": float(lat[i]), "lon": float(lon[i]),
                 "risk": str(risk[i]), "street_id": f"ST{street[i]:02d}", "last_inspected_at": float(last[i])}
                for i in range(n_ent)]
        for i in range(0, n_ent, CHUNK):
            conn.execute(insert(Enterprise), rows[i:i + CHUNK])
        starts = np.sort(rng.uniform(p.start_ts, p.end_ts, n_visits))
        ent = rng.integers(0, n_ent, n_visits)
        insp = rng.integers(0, 1500, n_visits)
        kind = rng.random(n_visits)
        vrows = []
        for k in range(n_visits):
            vrows.append({"id": k + 1, "enterprise_id": f"E{ent[k]:06d}", "inspector_id": f"I{insp[k]:04d}",
                          "unit_id": f"U{insp[k] % 60:02d}", "start_ts": float(starts[k]),
                          "end_ts": float(starts[k]) + 1200, "ended": True, "stay_key": f"v{k}",
                          "duplicate_of": 1 if (kind[k] < 0.03 and k > 0) else None,
                          "same_unit_repeat_of": 1 if (0.03 <= kind[k] < 0.05 and k > 0) else None})
        for i in range(0, n_visits, CHUNK):
            conn.execute(insert(Visit), vrows[i:i + CHUNK])
        arows, erows = [], []
        for a in range(900):
            first = float(rng.uniform(p.start_ts, p.end_ts))
            gas = a < 600
            arows.append({"id": a + 1, "type": "gas_alarm" if gas else "duplicate_visit", "subject": f"s{a}",
                          "severity": "critical", "state": "resolved", "street_id": f"ST{a % 10:02d}",
                          "assignee_id": f"I{a % 1500:04d}", "outcome": "reassigned" if a % 7 == 0 else None,
                          "first_seen": first, "last_seen": first + 60, "created_at": first, "updated_at": first,
                          "version": 1, "count": 1, "escalation_level": 0})
            if gas:
                erows.append({"alert_id": a + 1, "from_state": "open", "to_state": "acknowledged", "action": "ack",
                              "actor": "d", "at": first + float(rng.gamma(2.0, 30.0))})
                if a % 4:
                    erows.append({"alert_id": a + 1, "from_state": "dispatched", "to_state": "on_scene",
                                  "action": "arrive", "actor": "d", "at": first + float(rng.gamma(4.0, 150.0))})
        conn.execute(insert(Alert), arows)
        conn.execute(insert(AlertEvent), erows)


def phases(engine, settings, now: float) -> dict[str, float]:
    p = P.parse("monthly", MONTH)
    t0 = time.perf_counter()
    # The arguments dashboard.bulletins.generate passes: every section a district monthly bulletin has.
    data = report_queries.gather(engine, settings.interval_days(), since=p.start_ts, until=p.end_ts,
                                 day_starts=p.day_starts(), days=[d.isoformat() for d in p.days()], now=now,
                                 agency_month=p.key, plan_tolerance_d=settings.plan_match_tolerance_d,
                                 plan_weeks=period_weeks("monthly", p.key), settings=settings)
    t1 = time.perf_counter()
    rep = build(data, kind="monthly", period=p.key, start_ts=p.start_ts, end_ts=p.end_ts, generated_at=now,
                anchor=Anchor(None, 0))
    t2 = time.perf_counter()
    images = render.render_charts(rep)
    t3 = time.perf_counter()
    render.render_pdf(rep, "zh-CN", images)
    t4 = time.perf_counter()
    return {"gather": t1 - t0, "build": t2 - t1, "charts (2 langs)": t3 - t2, "pdf (zh-CN)": t4 - t3}


def run(engine, settings, now: float, repeats: int) -> dict[str, float]:
    phases(engine, settings, now)  # warm-up
    totals, parts = [], []
    for _ in range(repeats):
        parts.append(phases(engine, settings, now))
        t = time.perf_counter()
        generate(engine, settings, "monthly", MONTH, actor="bench", now=now)
        totals.append(time.perf_counter() - t)
    out = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    out["generate, end to end (both langs, PDF + HTML)"] = statistics.median(totals)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--enterprises", type=int, default=130_000)
    ap.add_argument("--visits", type=int, default=60_000)
    args = ap.parse_args()
    now = P.parse("monthly", MONTH).end_ts + 8 * 3600  # the 1st, 08:00: when the schedule runs
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {}
        for name, n_ent, n_vis in (("baseline: small city, no history", 0, 0),
                                   (f"city: {args.enterprises:,} enterprises, {args.visits:,} visits", args.enterprises,
                                    args.visits)):
            d = tmp / ("small" if n_ent == 0 else "city")
            settings = load_settings(None).model_copy(update={"data_dir": d})
            engine = make_engine(f"sqlite:///{d / 'anjian.sqlite3'}")
            migrate(engine)
            t = time.perf_counter()
            if n_ent == 0:
                from tests.citykit import write_small_city

                write_small_city(engine)
            else:
                fill_city(engine, n_ent, n_vis, now)
            print(f"{name}: filled in {time.perf_counter() - t:.1f} s", flush=True)
            results[name] = run(engine, settings, now, args.repeats)
            engine.dispose()
        for name, r in results.items():
            print(f"\n{name} (median of {args.repeats})")
            for k, v in r.items():
                print(f"  {k:<48} {v:7.2f} s")


if __name__ == "__main__":
    main()
