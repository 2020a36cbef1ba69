"""Plans at city scale: the week's collision check, a draw and its verification.

* **Collision check** (``plans.collisions.check_week``): 300 units x 200 items
  (60,000 items, 4 % of the enterprises planned by two units) against 130,000
  enterprises and two weeks of visits (the week and the duplicate window before
  it, 40,000 visits).  Baseline in the same run: one pass that only groups the
  items by enterprise (the least any check must do).
* **The same through SQL** (``data.plans_store.PlansStore.conflicts`` on a SQLite
  file: read items, facts and visits, run the check, store the conflicts), with
  ``--sql``; informative, the target is for the check.
* **A draw** of 1,000 from a pool of 130,000 (``plans.draw``: canonical pool,
  its SHA-256, strata, enterprises, two inspectors each out of 2,000).  Baseline:
  ``random.Random(seed).sample`` of 1,000 ids (no strata, no inspectors, no hash).
* **Verification** of that draw (``plans.draw.verify``: hash and picks again).

Each time is the median of ``--repeats`` runs after one warm-up.  Targets
(docs/benchmarks.md): each of the three at most 1 s.

    .venv/bin/python bench/bench_plans.py [--repeats 5] [--sql] [--markdown]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.china import DEFAULT_INTERVALS_D  # noqa: E402

from plans import draw as D  # noqa: E402
from plans.collisions import EnterpriseFacts, check_week  # noqa: E402
from plans.model import PlanItem, week_dates, week_span_ts  # noqa: E402

WEEK = "2026-W49"
DAY = 86400.0
INTERVALS = dict(DEFAULT_INTERVALS_D)  # the inspection intervals every deployment starts with
COLOURS = ("red", "orange", "yellow", "blue")


def city(n_ent: int, units: int, per_unit: int, n_visits: int, seed: int = 7):
    rng = random.Random(seed)
    start, end = week_span_ts(WEEK)
    ents = [f"E{i:06d}" for i in range(n_ent)]
    facts = {e: EnterpriseFacts(COLOURS[rng.randrange(4)], None if rng.random() < 0.05 else start - rng.uniform(0, 400) * DAY)
             for e in ents}
    dates = week_dates(WEEK)
    items, k = [], 0
    shared = rng.sample(ents, int(0.04 * units * per_unit))
    for u in range(units):
        for j in range(per_unit):
            k += 1
            e = shared[(u * per_unit + j) % len(shared)] if rng.random() < 0.08 else ents[rng.randrange(n_ent)]
            items.append(PlanItem(k, f"U{u:03d}", e, dates[rng.randrange(7)], (f"I{u:03d}1",), "inspection",
                                  ("fire", "gas")[: rng.randrange(3)]))
    visits: dict[str, list] = {}
    for v in range(n_visits):
        e = ents[rng.randrange(n_ent)]
        visits.setdefault(e, []).append((rng.uniform(start - 7 * DAY, end), v))
    for lst in visits.values():
        lst.sort()
    return ents, facts, items, visits


CPU: dict[int, float] = {}  # id(fn) -> median CPU seconds of this process, beside the wall time


def median_time(fn, repeats: int) -> float:
    """Median wall time; the median CPU time of the same runs goes to CPU (on a loaded
    shared machine the wall time includes waiting for a core, the CPU time does not)."""
    fn()
    times, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[id(fn)] = statistics.median(cpu)
    return statistics.median(times)


def sql_check(facts, items, visits, repeats: int) -> float:
    from sqlalchemy import insert

    from data.db import make_engine, migrate
    from data.models import Enterprise, Inspector, PlanItemRow, Unit, Visit, WeeklyPlan
    from data.plans_store import PlansStore

    with tempfile.TemporaryDirectory() as d:
        engine = make_engine(f"sqlite:///{d}/bench.sqlite3")
        migrate(engine)
        units = sorted({i.unit_id for i in items})
        with engine.begin() as conn:
            conn.execute(insert(Unit), [{"id": u, "name": u, "kind": "street_office"} for u in units])
            conn.execute(insert(Inspector), [{"id": f"{u}1", "name": u, "unit_id": u} for u in units])
            conn.execute(insert(Enterprise), [{"id": e, "name": e, "lat": 22.6, "lon": 114.0, "risk": f.risk,
                                               "last_inspected_at": f.last_inspected_at} for e, f in facts.items()])
            pids = {}
            for u in units:
                pids[u] = conn.execute(insert(WeeklyPlan).values(unit_id=u, week=WEEK, state="submitted", created_at=0,
                                                                 created_by="bench", updated_at=0)).inserted_primary_key[0]
            conn.execute(insert(PlanItemRow), [{"plan_id": pids[i.unit_id], "enterprise_id": i.enterprise_id,
                                                "date": i.date, "inspector_ids": list(i.inspector_ids),
                                                "purpose": i.purpose, "check_items": list(i.check_items),
                                                "state": "planned"} for i in items])
            conn.execute(insert(Visit), [{"enterprise_id": e, "inspector_id": f"{units[0]}1", "unit_id": units[0],
                                          "start_ts": ts, "end_ts": ts + 900, "stay_key": f"v{vid}", "ended": True}
                                         for e, lst in visits.items() for ts, vid in lst])
        store = PlansStore(engine, duplicate_window_s=7 * DAY, intervals_d=INTERVALS)
        store.conflicts(WEEK, time.time())  # the first run stores every conflict
        def run():
            return store.conflicts(WEEK, time.time())

        t = median_time(run, repeats)
        engine.dispose()
    return t, CPU[id(run)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--enterprises", type=int, default=130_000)
    ap.add_argument("--units", type=int, default=300)
    ap.add_argument("--items-per-unit", type=int, default=200)
    ap.add_argument("--visits", type=int, default=40_000)
    ap.add_argument("--inspectors", type=int, default=2_000)
    ap.add_argument("--count", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sql", action="store_true", help="also time the check through SQL (SQLite)")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    ents, facts, items, visits = city(a.enterprises, a.units, a.items_per_unit, a.visits)
    conflicts = check_week(WEEK, items, facts, visits, duplicate_window_s=7 * DAY, intervals_d=INTERVALS)

    def group():
        g: dict = {}
        for it in items:
            g.setdefault(it.enterprise_id, []).append(it)
        return g

    t_base = median_time(group, a.repeats)
    def check():
        return check_week(WEEK, items, facts, visits, duplicate_window_s=7 * DAY, intervals_d=INTERVALS)

    t_check = median_time(check, a.repeats)
    rng = random.Random(3)
    pool_entries = [D.PoolEntry(e, facts[e].risk, f"I{rng.randrange(a.inspectors):05d}") for e in ents]
    inspectors = [(f"I{i:05d}", f"U{i % a.units:03d}") for i in range(a.inspectors)]
    params = D.DrawParams(count=a.count)
    seed = "2026-12-01 公告 0815"

    def do_draw():
        pool = D.canonical_pool(pool_entries, inspectors)
        return pool, D.pool_hash(pool), D.picks_json(D.run_draw(seed, pool, params))

    pool, h, picks = do_draw()
    t_draw = median_time(do_draw, a.repeats)
    t_draw_base = median_time(lambda: random.Random(seed).sample(ents, a.count), a.repeats)
    stored_pool = __import__("json").loads(D.canonical_json(pool))  # as read back from the draws row
    assert D.verify(seed, stored_pool, params, h, picks)["ok"]
    def verify():
        return D.verify(seed, stored_pool, params, h, picks)

    t_verify = median_time(verify, a.repeats)
    t_sql, c_sql = sql_check(facts, items, visits, a.repeats) if a.sql else (None, None)

    kinds = {}
    for c in conflicts:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    rows = [
        (f"collision check, {len(items):,} items vs {len(ents):,} enterprises", t_check, CPU[id(check)],
         f"group items only: {t_base:.3f} s", 1.0),
        (f"draw {a.count} of {len(ents):,} (+ {a.inspectors:,} inspectors)", t_draw, CPU[id(do_draw)],
         f"random.sample: {t_draw_base:.4f} s", 1.0),
        ("verify that draw", t_verify, CPU[id(verify)], "-", 1.0),
    ]
    if t_sql is not None:
        rows.append(("collision check through SQL (SQLite), stored", t_sql, c_sql, "-", None))
    import os

    print(f"# {len(items):,} items, {len(ents):,} enterprises, {sum(map(len, visits.values())):,} visits; "
          f"conflicts: {kinds}; repeats {a.repeats}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if a.markdown:
        print("| what | median wall | median CPU | baseline (same run) | target |")
        print("|---|---|---|---|---|")
        for name, t, c, base, target in rows:
            print(f"| {name} | {t:.3f} s | {c:.3f} s | {base} | {'≤ %.0f s' % target if target else '-'} |")
    else:
        for name, t, c, base, target in rows:
            ok = "" if target is None else ("  OK" if t <= target else "  OVER TARGET")
            print(f"{name:55s} {t:8.3f} s wall {c:8.3f} s CPU  ({base}){ok}")


if __name__ == "__main__":
    main()
