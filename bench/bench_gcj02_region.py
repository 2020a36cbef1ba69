"""Cost of the GCJ-02 region test (geo/coords.py) in conversions.

    .venv/bin/python bench/bench_gcj02_region.py

Converts 1,000,000 random points, vectorised, WGS-84 -> GCJ-02 and back, and
100,000 points one at a time, in three areas: the Longhua demo city, the
Shenzhen-Hong Kong border (where the grid most often defers to the polygon)
and the whole rectangle the old test used.  It also times the region test
alone.  It reports process CPU time (best of 5, 3 for the slow ones), which
other processes on a shared machine disturb less than wall time.
Results: docs/coordinates.md.
"""

from __future__ import annotations

import time

import numpy as np

from geo import coords
from geo.coords import gcj02_to_wgs84, wgs84_to_gcj02


def best(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def main() -> None:
    t = time.process_time()
    grid = coords._grid()
    print(f"region grid built in {(time.process_time() - t) * 1000:.0f} ms ({coords.gcj02_region()})")
    rng = np.random.default_rng(1)
    n = 1_000_000
    areas = {
        "longhua": (rng.uniform(113.98, 114.12, n), rng.uniform(22.60, 22.80, n)),
        "sz-hk border": (rng.uniform(113.9, 114.3, n), rng.uniform(22.45, 22.60, n)),
        "china box": (rng.uniform(73, 135, n), rng.uniform(4, 53, n)),
    }
    for name, (lon, lat) in areas.items():
        fwd = best(lambda: wgs84_to_gcj02(lon, lat))
        inv = best(lambda: gcj02_to_wgs84(lon, lat), 3)
        region = best(lambda: grid.contains(lon, lat))
        xs, ys = lon[:100_000].tolist(), lat[:100_000].tolist()

        def one_by_one():
            for x, y in zip(xs, ys):
                wgs84_to_gcj02(x, y)

        scalar = best(one_by_one, 3) / len(xs) * 1e6
        print(f"{name:13s} 1M wgs84_to_gcj02 {fwd * 1000:5.0f} ms | 1M gcj02_to_wgs84 {inv * 1000:5.0f} ms | "
              f"region test alone {region * 1000:3.0f} ms | one point {scalar:.2f} us")


if __name__ == "__main__":
    main()
