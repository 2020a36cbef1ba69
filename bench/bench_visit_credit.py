"""Visits per stop: crediting every enterprise within reach of a stop against crediting
the enterprise nearest for a share of its fixes (``geo.visits``, ``credit_share_min``),
in one run over the same stops.

    .venv/bin/python bench/bench_visit_credit.py [--scale demo] [--stops 400] [--seed 3]

The generated city at ``--scale`` gives the enterprises (``demo``: 20,000 in one
district, ``city``: 130,000).  Each stop is one inspector's, at an enterprise chosen at
random (so the dense streets count as often as they hold enterprises), made as the
demo's simulator makes them (``ingest.simulator``): the inspector stands 0-15 m from
the enterprise's point for 20-90 minutes, with a fix every 30 s of accuracy 3-15 m and
that much Gaussian noise (sigma = accuracy / 2).

Each share in ``--shares`` is a run of ``detect_visits`` over all the stops (share 0
credits every stay that lasts the dwell: the rule before the credit rule).  Reported
per share:

- visits per stop: mean, median, p90, max;
- stops with no visit (an inspection lost);
- stops credited to the enterprise the inspector went to, and to the enterprise
  nearest the point where the inspector stood (the one a person watching would name;
  the two differ where the 0-15 m of wandering brought the inspector nearer a
  neighbour's point);
- visits confirmed while their stay went on and later taken back (``retracted``), of
  all confirmed, with the fixes streamed one by one through ``advance`` as the geo
  engine sees a phone: a share is first run with visits reported at that share, as
  before ``confirm_share_min``, then the default (credit at a quarter, report at a
  half);
- the median time of ``detect_visits`` over all stops, over ``--repeats`` passes.

A last run takes the default share with each stop's enterprise on the inspector's plan
for the day (``planned_of``), as when inspectors follow their task list.

With ``--baseline DIR`` (a checkout of an earlier commit, e.g. a ``git worktree``), the
ingest's way is timed too, for this checkout and for DIR's ``geo/index.py`` and
``geo/visits.py`` loaded beside it, alternately in this one process: each stop's fixes
in batches of ``--batch``, each batch looked up at once (``within_many``, in DIR
``ids_within_many``) and folded into the inspector's state (``advance``), as the geo
engine does (data/geo_store.py).  Reported: the median over ``--repeats`` passes of the
time per fix, and the ratio; and the state's JSON size at the end of each stop.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_escalation import pct  # noqa: E402 - the same percentile

M_PER_DEG = 111_320.0
STEP_S = 30.0
STAY_S = (20 * 60, 90 * 60)  # ingest.simulator.DWELL_SIM_S
WANDER_M = 15.0  # ingest.simulator.DWELL_WANDER_M
ACC_M = (3.0, 15.0)  # ingest.simulator.GPS_ACC_M


def make_stops(ids, lats, lons, n: int, seed: int):
    """``n`` stops: (inspector, enterprise gone to, standing point, pings)."""
    from geo.types import Ping

    rnd = random.Random(seed)
    out = []
    t = time.time() - 86400
    for k in range(n):
        e = rnd.randrange(len(ids))
        lat0, lon0 = lats[e], lons[e]
        kx = M_PER_DEG * math.cos(math.radians(lat0))
        ang, r = rnd.uniform(0, 2 * math.pi), rnd.uniform(0, WANDER_M)
        wy, wx = r * math.cos(ang), r * math.sin(ang)
        pings = []
        for s in range(int(rnd.uniform(*STAY_S) / STEP_S) + 1):
            acc = rnd.uniform(*ACC_M)
            dy, dx = wy + rnd.gauss(0, acc / 2), wx + rnd.gauss(0, acc / 2)
            pings.append(Ping(f"I{k}", t + s * STEP_S, lat0 + dy / M_PER_DEG, lon0 + dx / kx, acc))
        out.append((f"I{k}", ids[e], (lat0 + wy / M_PER_DEG, lon0 + wx / kx), pings))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["tiny", "demo", "city"], default="demo")
    ap.add_argument("--stops", type=int, default=400)
    ap.add_argument("--shares", default="0,0.2,0.25,0.333,0.5")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--baseline", type=Path, help="a checkout of an earlier commit, to time the ingest's way against")
    ap.add_argument("--batch", type=int, default=10)
    args = ap.parse_args()

    from data.demo_city import generate_city
    from geo.index import EnterpriseIndex
    from geo.visits import VisitParams, detect_visits

    city = generate_city(7, args.scale)
    ent = city.enterprises.dropna(subset=["lat", "lon"])
    ids, lats, lons = ent["id"].astype(str).tolist(), ent["lat"].tolist(), ent["lon"].tolist()
    index = EnterpriseIndex.from_arrays(ids, lats, lons)
    index.prepare_many()
    stops = make_stops(ids, lats, lons, args.stops, args.seed)
    pings = [p for s in stops for p in s[3]]
    stood_at = {iid: (index.nearest(lat, lon, 1000.0) or (None,))[0] for iid, _e, (lat, lon), _p in stops}
    print(f"{args.scale} city: {len(ids):,} enterprises; {len(stops)} stops, {len(pings):,} fixes; "
          f"{sum(len(index.nearby(lat, lon, 58.0)) for _i, _e, (lat, lon), _p in stops) / len(stops):.1f} "
          "enterprises within 58 m of a stop on average\n")
    print("| credit share | visits / stop: mean | median | p90 | max | stops with no visit "
          "| credited where it went | credited where it stood | confirmed, then taken back | detect_visits, median |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    went_to = {iid: {e} for iid, e, _pt, _p in stops}
    default = VisitParams()
    # (credit share, planned_of, confirm share): each share first reported at itself
    # (as before confirm_share_min), then the defaults, then the defaults with a plan.
    runs = [(float(x), None, float(x)) for x in args.shares.split(",")]
    runs.append((default.credit_share_min, None, default.confirm_share_min))
    runs.append((default.credit_share_min, went_to.get, default.confirm_share_min))
    for share, planned_of, confirm in runs:
        params = replace(default, credit_share_min=share, confirm_share_min=confirm)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            got = detect_visits(pings, index, params, planned_of=planned_of)
            times.append(time.perf_counter() - t)
        per: dict[str, set[str]] = {iid: set() for iid, *_ in stops}
        n_per = {iid: 0 for iid, *_ in stops}
        for v in got:
            per[v.inspector_id].add(v.enterprise_id)
            n_per[v.inspector_id] += 1
        counts = sorted(n_per.values())
        went = sum(1 for iid, e, _pt, _p in stops if e in per[iid])
        stood = sum(1 for iid, _e, _pt, _p in stops if stood_at[iid] in per[iid])
        n = len(stops)
        label = "0 (every enterprise within reach)" if share == 0 else f"{share:g}"
        label += f", reported at {confirm:g}" if confirm != share else ""
        if planned_of:
            label += ", the enterprise gone to on the day's plan"
        taken_back, confirmed = churn(stops, index, params, planned_of)
        print(f"| {label} | {statistics.mean(counts):.2f} | {statistics.median(counts):g} | {pct(counts, 90):g} "
              f"| {counts[-1]} | {counts.count(0)} ({100 * counts.count(0) / n:.1f} %) "
              f"| {went} ({100 * went / n:.0f} %) | {stood} ({100 * stood / n:.0f} %) "
              f"| {taken_back} of {confirmed} | {statistics.median(times) * 1000:.0f} ms |")
    if args.baseline:
        ingest_way(args, stops, ids, lats, lons)
    return 0


def churn(stops, index, params, planned_of) -> tuple[int, int]:
    """Streamed as the geo engine sees them (each stop's fixes one by one, in order):
    (visits confirmed while their stay went on and then retracted, visits confirmed)."""
    from geo.visits import advance, flush

    retracted = confirmed = 0
    for iid, _e, _pt, pings in stops:
        planned = planned_of(iid) if planned_of else ()
        state = None
        for p in pings:
            state, ev = advance(state, [p], index.nearby, params, planned=planned)
            retracted += sum(e.kind == "retracted" for e in ev)
            confirmed += sum(e.kind == "confirmed" for e in ev)
        state, ev = flush(state, params)
        confirmed += sum(e.kind == "confirmed" for e in ev)
    return retracted, confirmed


def load_geo(root: Path, name: str, tag: str):
    """``root``'s ``geo/<name>.py`` as a module of its own (``<tag>_<name>``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{tag}_{name}", root / "geo" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def ingest_way(args, stops, ids, lats, lons) -> None:
    import orjson

    ways = {}
    for tag, root in (("baseline", args.baseline.resolve()), ("this", ROOT)):
        index_mod, visits_mod = load_geo(root, "index", tag), load_geo(root, "visits", tag)
        index = index_mod.EnterpriseIndex.from_arrays(ids, lats, lons)
        index.prepare_many()
        ways[tag] = (index, visits_mod, hasattr(index, "within_many"))

    def run(tag: str) -> tuple[float, list[int]]:
        index, vm, with_near = ways[tag]
        params = vm.VisitParams()
        radius = params.radius_m
        sizes = []
        t = time.perf_counter()
        for _iid, _e, _pt, pings in stops:
            state = None
            for a in range(0, len(pings), args.batch):
                batch = pings[a:a + args.batch]
                lat, lon, r = [p.lat for p in batch], [p.lon for p in batch], [radius(p.acc_m) for p in batch]
                if with_near:
                    at, near = index.within_many(lat, lon, r)
                    state, _ev = vm.advance(state, batch, index.nearby, params, consume=True, at=at, near=near)
                else:
                    at = index.ids_within_many(lat, lon, r)
                    state, _ev = vm.advance(state, batch, index.nearby, params, consume=True, at=at)
                state = orjson.loads(orjson.dumps(state))  # as stored and read back
            sizes.append(len(orjson.dumps(state)))
        return time.perf_counter() - t, sizes

    n_fix = sum(len(s[3]) for s in stops)
    per_fix: dict[str, list[float]] = {"baseline": [], "this": []}
    sizes: dict[str, list[int]] = {}
    for _ in range(args.repeats):
        for tag in per_fix:
            dt, sizes[tag] = run(tag)
            per_fix[tag].append(dt / n_fix * 1e6)
    b, c = statistics.median(per_fix["baseline"]), statistics.median(per_fix["this"])
    print(f"\nThe ingest's way, batches of {args.batch} fixes (lookup + advance + JSON round trip), "
          f"median of {args.repeats} passes:\n")
    print("| | per fix | state at a stop's end: median | p95 |")
    print("|---|---|---|---|")
    for tag, v in (("baseline: " + str(args.baseline), b), ("this checkout", c)):
        sz = sizes[tag.split(":")[0] if tag.startswith("baseline") else "this"]
        print(f"| {tag} | {v:.1f} µs | {statistics.median(sz):,.0f} B | {pct(sz, 95):,.0f} B |")
    print(f"| ratio | {c / b:.2f} | | |")


if __name__ == "__main__":
    raise SystemExit(main())
