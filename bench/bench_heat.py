"""Benchmark of the geo engine's hot paths, all measured in one run.

1. Heat binning of N pings from history at one resolution:
   * kernel  - bare h3ronpy ``coordinates_to_cells`` (the floor);
   * ours    - ``geo.heat.bin_points`` (kernel + np.unique + str of distinct cells);
   * sjoin   - what a typical user writes: a geopandas ``sjoin`` of the points
     into the hex polygons, then a group-by count.  The hex polygons are built
     before the clock starts (in the baseline's favour).
   Requirement (issue 3): ours <= 1.5 x kernel, and sjoin >= 4 x ours.
2. Enterprise index at 130,000 enterprises: build time, lookups per second.
3. Visit detection: ``geo.visits.advance`` per ping with the state round-tripped
   through JSON, as the ingest worker does through Redis.

Each timing is the median of ``--repeats`` runs after one warm-up run; the
kernel and ``bin_points`` runs alternate, so machine noise hits both alike.

    .venv/bin/python bench/bench_heat.py            # 1M pings, 5 repeats
    .venv/bin/python bench/bench_heat.py --quick    # 100k pings, 3 repeats
    .venv/bin/python bench/bench_heat.py --markdown # also print a Markdown table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geopandas as gpd  # noqa: E402
import h3  # noqa: E402
import h3ronpy  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from h3ronpy.vector import coordinates_to_cells  # noqa: E402

from geo.cells import cells_u64_to_str  # noqa: E402
from geo.heat import bin_points  # noqa: E402
from geo.index import EnterpriseIndex  # noqa: E402
from geo.types import Ping  # noqa: E402
from geo.visits import VisitParams, advance  # noqa: E402

# Shenzhen, the default service area (Settings.service_area).
MIN_LON, MIN_LAT, MAX_LON, MAX_LAT = 113.70, 22.40, 114.65, 22.90


def city_pings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pings as inspectors make them: 70 % around 2,000 work sites (sigma ~300 m), 30 % anywhere."""
    rng = np.random.default_rng(seed)
    n_sites = 2000
    site_lat = rng.uniform(MIN_LAT + 0.02, MAX_LAT - 0.02, n_sites)
    site_lon = rng.uniform(MIN_LON + 0.02, MAX_LON - 0.02, n_sites)
    k = int(n * 0.7)
    pick = rng.integers(0, n_sites, k)
    lats = np.r_[site_lat[pick] + rng.normal(0, 0.0027, k), rng.uniform(MIN_LAT, MAX_LAT, n - k)]
    lons = np.r_[site_lon[pick] + rng.normal(0, 0.0029, k), rng.uniform(MIN_LON, MAX_LON, n - k)]
    order = rng.permutation(n)
    return lats[order], lons[order]


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median seconds of ``repeats`` runs after one warm-up, and the last result."""
    (t,), (result,) = timed_interleaved([fn], repeats)
    return t, result


def timed_interleaved(fns, repeats: int) -> tuple[list[float], list]:
    """Like ``timed`` for several functions, run in turn within each repeat.

    Interleaving gives each the same share of whatever else the machine is
    doing, so their ratio is fair even when the absolute times drift.
    """
    results = [fn() for fn in fns]  # warm-up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times], results


def hex_frame(cells_str: list[str]) -> gpd.GeoDataFrame:
    polys = [shapely.Polygon([(lon, lat) for lat, lon in h3.cell_to_boundary(c)]) for c in cells_str]
    return gpd.GeoDataFrame({"cell": cells_str}, geometry=polys, crs="EPSG:4326")


def sjoin_counts(lats: np.ndarray, lons: np.ndarray, hexes: gpd.GeoDataFrame) -> dict[str, int]:
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lons, lats), crs="EPSG:4326")
    joined = gpd.sjoin(points, hexes, how="inner", predicate="within")
    return joined.groupby("cell").size().to_dict()


def bench_binning(n: int, res: int, repeats: int, seed: int) -> dict:
    lats, lons = city_pings(n, seed)

    def kernel():
        return np.asarray(coordinates_to_cells(lats, lons, res))

    cells = kernel()
    # The baseline's hex grid: every cell that holds a ping, built off the clock.
    hexes = hex_frame(cells_u64_to_str(np.unique(cells)))
    sjoin_repeats = max(1, repeats - 2)
    (t_kernel, t_ours), (_, ours) = timed_interleaved([kernel, lambda: bin_points(lats, lons, res)], repeats)
    t_sjoin, theirs = timed(lambda: sjoin_counts(lats, lons, hexes), sjoin_repeats)
    agree = sum(min(ours.get(c, 0), m) for c, m in theirs.items()) / n
    return {
        "n": n,
        "res": res,
        "distinct_cells": len(ours),
        "kernel_s": t_kernel,
        "ours_s": t_ours,
        "sjoin_s": t_sjoin,
        "kernel_pts_per_s": n / t_kernel,
        "ours_pts_per_s": n / t_ours,
        "sjoin_pts_per_s": n / t_sjoin,
        "ours_over_kernel": t_ours / t_kernel,
        "sjoin_over_ours": t_sjoin / t_ours,
        "sjoin_agreement": agree,
        "sjoin_repeats": sjoin_repeats,
    }


def bench_index(n_enterprises: int, n_queries: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 1)
    lats, lons = city_pings(n_enterprises, seed + 2)
    ids = [f"E{i:06d}" for i in range(n_enterprises)]
    t_build, index = timed(lambda: EnterpriseIndex.from_arrays(ids, lats, lons), repeats)
    # Queries where inspectors are: near enterprises (within ~100 m).
    pick = rng.integers(0, n_enterprises, n_queries)
    q_lat = (lats[pick] + rng.normal(0, 0.0007, n_queries)).tolist()
    q_lon = (lons[pick] + rng.normal(0, 0.0007, n_queries)).tolist()
    out = {"enterprises": n_enterprises, "build_s": t_build, "queries": n_queries}
    for radius in (50.0, 100.0, 300.0):

        def run(radius=radius):
            hits = 0
            for a, o in zip(q_lat, q_lon):
                hits += len(index.nearby(a, o, radius))
            return hits

        t, hits = timed(run, repeats)
        out[f"r{int(radius)}_lookups_per_s"] = n_queries / t
        out[f"r{int(radius)}_mean_hits"] = hits / n_queries
        out[f"r{int(radius)}_k"] = index.k_for_radius(radius, int(index.cells[0]))
    return out


def bench_visits(n_inspectors: int, pings_each: int, n_enterprises: int, repeats: int, seed: int) -> dict:
    rng = np.random.default_rng(seed + 3)
    lats, lons = city_pings(n_enterprises, seed + 2)
    index = EnterpriseIndex.from_arrays([f"E{i:06d}" for i in range(n_enterprises)], lats, lons)
    params = VisitParams()
    # Each inspector dwells at an enterprise, then walks on to the next: fixes every 30 s.
    streams = []
    for k in range(n_inspectors):
        pings = []
        t = 1_714_500_000.0
        e = int(rng.integers(0, n_enterprises))
        for i in range(pings_each):
            if i % 40 == 0:
                e = int(rng.integers(0, n_enterprises))
            pings.append(
                Ping(f"I{k}", t, float(lats[e] + rng.normal(0, 0.0002)), float(lons[e] + rng.normal(0, 0.0002)), 15.0)
            )
            t += 30.0
        streams.append(pings)
    total = n_inspectors * pings_each

    def run():
        states = {}
        events = 0
        for i in range(pings_each):
            for s in streams:
                p = s[i]
                raw = states.get(p.inspector_id)
                st, ev = advance(json.loads(raw) if raw else None, [p], index.nearby, params)
                states[p.inspector_id] = json.dumps(st)
                events += len(ev)
        return events

    t, events = timed(run, repeats)
    return {"pings": total, "pings_per_s": total / t, "us_per_ping": 1e6 * t / total, "events": events}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100k pings, 3 repeats (a smoke run)")
    ap.add_argument("--n", type=int, help="pings to bin (default 1,000,000; --quick 100,000)")
    ap.add_argument("--res", type=int, default=9, help="heat resolution to bin at (default 9, the finest)")
    ap.add_argument("--repeats", type=int, help="timed runs per measurement (default 5; --quick 3)")
    ap.add_argument("--enterprises", type=int, default=130_000, help="enterprises in the index")
    ap.add_argument("--seed", type=int, default=440309)
    ap.add_argument("--markdown", action="store_true", help="also print a Markdown table of the results")
    args = ap.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (3 if args.quick else 5)

    env = {
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "h3": h3.__version__,
        "h3ronpy": h3ronpy.__version__,
        "numpy": np.__version__,
        "geopandas": gpd.__version__,
        "shapely": shapely.__version__,
    }
    binning = bench_binning(n, args.res, repeats, args.seed)
    index = bench_index(args.enterprises, 2000 if args.quick else 10_000, repeats, args.seed)
    visits = bench_visits(50 if args.quick else 200, 60, args.enterprises, max(1, repeats - 2), args.seed)
    result = {"env": env, "binning": binning, "index": index, "visits": visits}
    print(json.dumps(result, indent=2))

    ok_kernel = binning["ours_over_kernel"] <= 1.5
    ok_sjoin = binning["sjoin_over_ours"] >= 4.0
    print(
        f"\nbinning {n:,} pings at res {args.res}: kernel {binning['kernel_s']:.3f} s, "
        f"ours {binning['ours_s']:.3f} s, sjoin {binning['sjoin_s']:.3f} s"
    )
    print(f"ours / kernel = {binning['ours_over_kernel']:.2f} (<= 1.5: {'PASS' if ok_kernel else 'FAIL'})")
    print(f"sjoin / ours  = {binning['sjoin_over_ours']:.2f} (>= 4: {'PASS' if ok_sjoin else 'FAIL'})")
    if args.markdown:
        print()
        print(markdown(result, n, repeats))
    if n < 1_000_000:
        # The requirement is stated for 1M pings; with fewer, the distinct
        # cells are a larger share of the points and the ratio is higher.
        print(f"(the requirement is for 1,000,000 pings; with {n:,} the ratios are informational)")
        return 0
    return 0 if ok_kernel and ok_sjoin else 1


def markdown(r: dict, n: int, repeats: int) -> str:
    b, i, v = r["binning"], r["index"], r["visits"]
    lines = [
        f"Environment: Python {r['env']['python']}, {r['env']['machine']}; h3 {r['env']['h3']}, "
        f"h3ronpy {r['env']['h3ronpy']}, numpy {r['env']['numpy']}, geopandas {r['env']['geopandas']}, "
        f"shapely {r['env']['shapely']}.",
        "",
        f"Binning {n:,} pings at res {b['res']} ({b['distinct_cells']:,} distinct cells); "
        f"median of {repeats} runs (sjoin: {b['sjoin_repeats']}) after a warm-up:",
        "",
        "| path | median s | points/s | ratio |",
        "|---|---:|---:|---:|",
        f"| h3ronpy `coordinates_to_cells` (bare kernel) | {b['kernel_s']:.3f} | {b['kernel_pts_per_s'] / 1e6:.2f} M | 1.00 |",
        f"| `geo.heat.bin_points` | {b['ours_s']:.3f} | {b['ours_pts_per_s'] / 1e6:.2f} M | "
        f"{b['ours_over_kernel']:.2f} x kernel |",
        f"| geopandas `sjoin` into hex polygons + group-by | {b['sjoin_s']:.3f} | {b['sjoin_pts_per_s'] / 1e6:.2f} M | "
        f"{b['sjoin_over_ours']:.1f} x ours |",
        "",
        f"sjoin and `bin_points` put {100 * b['sjoin_agreement']:.3f} % of the points in the same cell "
        "(any rest lie on cell edges, where planar polygons and H3 differ).",
        "",
        f"Enterprise index, {i['enterprises']:,} enterprises: build {i['build_s'] * 1000:.0f} ms (median); "
        f"{i['queries']:,} lookups near enterprises:",
        "",
        "| radius | k (rings) | lookups/s | mean hits |",
        "|---:|---:|---:|---:|",
    ]
    for r_m in (50, 100, 300):
        lines.append(
            f"| {r_m} m | {i[f'r{r_m}_k']} | {i[f'r{r_m}_lookups_per_s']:,.0f} | {i[f'r{r_m}_mean_hits']:.1f} |"
        )
    lines += [
        "",
        f"Visit detection: `advance` one ping at a time with the state through JSON, {v['pings']:,} pings: "
        f"{v['pings_per_s']:,.0f} pings/s ({v['us_per_ping']:.0f} us per ping, including the index lookup).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
