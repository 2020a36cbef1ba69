"""The visit states' stored size and their encoding cost: as stored (``geo.visits``'s
state, JSON) vs a packed form (each enterprise id once per state, ``pack`` below), in
one run.  The packed form was measured and not adopted (docs/benchmarks.md section 19).

    .venv/bin/python bench/bench_visit_state.py [--scale city] [--inspectors 300] [--repeats 7]

The generated city at ``--scale`` gives the enterprises (``city``: 130,000).  Each
inspector spends five minutes at an enterprise of its own, chosen at random (so the
dense streets count as often as they hold enterprises), with a fix every 5 s and
~10 m of jitter, one fix per ``advance`` call as the ingest sees a phone.  After each
call, the state is what the geo engine writes to Redis (data/geo_store.py).

The packed form: ``"ids"``, each enterprise id of the buffered fixes' lists once, and
each fix's list as positions in it (``pack``; ``unpack`` reads it back).  Geo.visits
stored it this way in commit b52af8d, where the overload pair of section 19 ran.

Reported, for both forms:

- the stored JSON's size over every call after the first two minutes (the buffer is
  full then): median, p95, max;
- per state, the time to encode it (``orjson.dumps``, with ``pack`` for the packed form)
  and to decode it (``orjson.loads``, with ``unpack``), on the inspectors' last
  states: the median over ``--repeats`` passes, and the ratio packed / as stored.

Both forms are encoded from the same states in the same process, alternately.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402

from geo.visits import STATE_VERSION  # noqa: E402
from bench_escalation import pct  # noqa: E402 - the same percentile

STEP_S = 5.0
STAY_S = 300.0
FULL_AFTER_S = 120.0  # lateness_max_s: the buffer holds two minutes of fixes


def pack(state: dict) -> dict:
    """The packed form of a visit state (not modified)."""
    lists = [e[4] for e in state["buf"]]
    ids = list(set().union(*lists))
    where = dict(zip(ids, range(len(ids)))).__getitem__
    # map() with a bound __getitem__ keeps the per-id work in C.
    buf = [[e[0], e[1], e[2], e[3], list(map(where, e[4])), *e[5:]] for e in state["buf"]]
    return {**state, "v": "packed", "buf": buf, "ids": ids}


def unpack(stored: dict) -> dict:
    """The visit state of a packed form, in place."""
    ids = stored.pop("ids")
    for e in stored["buf"]:
        e[4] = list(map(ids.__getitem__, e[4]))
    stored["v"] = STATE_VERSION
    return stored


def stays(lats, lons, ids, inspectors: int, seed: int):
    """Per inspector, its pings: five minutes at one enterprise, a fix every STEP_S."""
    from geo.types import Ping

    rnd = random.Random(seed)
    t0 = time.time() - 3600
    out = []
    for k in range(inspectors):
        n = rnd.randrange(len(ids))
        lat0, lon0 = lats[n], lons[n]
        pings = []
        for s in range(int(STAY_S / STEP_S) + 1):
            d, b = rnd.uniform(0, 10), rnd.uniform(0, 2 * math.pi)
            lat = lat0 + d * math.cos(b) / 111_320
            lon = lon0 + d * math.sin(b) / (111_320 * math.cos(math.radians(lat0)))
            pings.append(Ping(f"I{k}", t0 + s * STEP_S, lat, lon, rnd.uniform(5, 15)))
        out.append(pings)
    return out


def timed(fn, states) -> float:
    """Seconds per state for ``fn`` over all ``states``."""
    t = time.perf_counter()
    for st in states:
        fn(st)
    return (time.perf_counter() - t) / len(states)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["tiny", "demo", "city"], default="city")
    ap.add_argument("--inspectors", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    from data.demo_city import generate_city
    from geo.index import EnterpriseIndex
    from geo.visits import VisitParams, advance

    city = generate_city(args.seed, args.scale)
    ent = city.enterprises.dropna(subset=["lat", "lon"])
    ids, lats, lons = ent["id"].tolist(), ent["lat"].tolist(), ent["lon"].tolist()
    index = EnterpriseIndex.from_arrays(ids, lats, lons)
    params = VisitParams()

    sizes_plain: list[int] = []
    sizes_packed: list[int] = []
    ids_per_state: list[int] = []
    ids_per_fix: list[int] = []
    last_states = []
    for pings in stays(lats, lons, ids, args.inspectors, args.seed):
        state = None
        for p in pings:
            state, _ = advance(state, [p], index.nearby, params)
            if p.ts - pings[0].ts >= FULL_AFTER_S:
                sizes_plain.append(len(orjson.dumps(state)))
                packed = pack(state)
                sizes_packed.append(len(orjson.dumps(packed)))
                ids_per_state.append(len(packed["ids"]))
        ids_per_fix += [len(e[4]) for e in state["buf"]]
        last_states.append(state)

    plain_bodies = [orjson.dumps(s) for s in last_states]
    packed_bodies = [orjson.dumps(pack(s)) for s in last_states]
    enc = {"stored": [], "packed": []}
    dec = {"stored": [], "packed": []}
    for _ in range(args.repeats):
        enc["stored"].append(timed(orjson.dumps, last_states))
        enc["packed"].append(timed(lambda s: orjson.dumps(pack(s)), last_states))
        dec["stored"].append(timed(orjson.loads, plain_bodies))
        dec["packed"].append(timed(lambda b: unpack(orjson.loads(b)), packed_bodies))

    # The packed form reads back to the very state.
    assert all(unpack(orjson.loads(b)) == orjson.loads(orjson.dumps(s)) for b, s in zip(packed_bodies, last_states))

    print(f"scale {args.scale}: {len(ids):,} enterprises; {args.inspectors} inspectors, "
          f"{len(sizes_plain):,} states sampled with a full buffer")
    print(f"enterprises at a fix: median {statistics.median(ids_per_fix):.0f}, p95 {pct(ids_per_fix, 95):.0f}, "
          f"max {max(ids_per_fix)}; distinct ids per state (its buffer's {int(FULL_AFTER_S / STEP_S) + 1} fixes): "
          f"median {statistics.median(ids_per_state):.0f}, max {max(ids_per_state)}")
    print()
    print("| form | size median | p95 | max | encode / state (median) | decode / state (median) |")
    print("|---|---|---|---|---|---|")
    for name, sizes in (("as stored", sizes_plain), ("packed", sizes_packed)):
        key = "stored" if name == "as stored" else "packed"
        print(f"| {name} | {statistics.median(sizes) / 1000:.1f} KB | {pct(sizes, 95) / 1000:.1f} KB | "
              f"{max(sizes) / 1000:.1f} KB | {statistics.median(enc[key]) * 1e6:.1f} µs | "
              f"{statistics.median(dec[key]) * 1e6:.1f} µs |")
    print(f"| packed / as stored | {statistics.median(sizes_packed) / statistics.median(sizes_plain):.2f} | "
          f"{pct(sizes_packed, 95) / pct(sizes_plain, 95):.2f} | {max(sizes_packed) / max(sizes_plain):.2f} | "
          f"{statistics.median(enc['packed']) / statistics.median(enc['stored']):.2f} | "
          f"{statistics.median(dec['packed']) / statistics.median(dec['stored']):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
