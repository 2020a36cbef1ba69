"""redis-py's reply parser: pure Python (RESP3) against hiredis's C parser, on the
replies the alert engine and the screens read most.

    .venv/bin/python bench/bench_redis_parser.py [--entries 20000] [--rounds 7]

The alert engine's profile (docs/benchmarks.md §14) spent a fifth of its samples in
redis-py's pure-Python parser, reading batches of 500 gas events with
``XREADGROUP``; the web's spent its Redis time reading inspectors' fixes.  On the
local Redis this fills a stream with ``--entries`` gas events shaped as the ingest
writes them and a hash of 20,000 fixes, then times, alternately with each parser in
one run (``--rounds`` of each; medians and their ratio):

- ``XRANGE ... COUNT 500``, over the whole stream (what ``XREADGROUP`` returns);
- ``HMGET`` of 2,000 fields of the hash.

The parser is picked per connection pool (``parser_class``); both clients talk
RESP3, as the project's clients do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid

REDIS = os.environ.get("ANJIAN_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    import redis
    from redis._parsers import _HiredisParser, _RESP3Parser
    from redis.utils import HIREDIS_AVAILABLE

    if not HIREDIS_AVAILABLE:
        sys.exit("hiredis is not installed: pip install -e . installs it (pyproject.toml)")
    ns = "brp" + uuid.uuid4().hex[:8]
    clients = {"pure Python": redis.Redis.from_url(REDIS, protocol=3, parser_class=_RESP3Parser),
               "hiredis": redis.Redis.from_url(REDIS, protocol=3, parser_class=_HiredisParser)}
    r = clients["pure Python"]
    stream, fixes = f"{ns}:gas:events", f"{ns}:fixes"
    try:
        pipe = r.pipeline(transaction=False)
        for i in range(args.entries):
            pipe.xadd(stream, {"sensor": f"S{i % 50_000:05d}", "ts": repr(1.8e9 + i), "level": "normal",
                               "prev": "normal", "lel": "1.5", "alarm": "none", "late": "0"})
            if i % 5000 == 4999:
                pipe.execute()
        for i in range(20_000):
            pipe.hset(fixes, f"I{i:05d}", f'{{"lat":22.6{i % 997},"lon":114.0{i % 991},"ts":1800000000.{i},"acc":8}}')
        pipe.execute()
        fields = [f"I{i:05d}" for i in range(0, 20_000, 10)]

        def xrange_all(c) -> None:
            last = "-"
            while True:
                got = c.xrange(stream, min=last, count=500)
                if not got or len(got) < 500:
                    return
                last = "(" + got[-1][0].decode()

        times: dict[str, dict[str, list[float]]] = {k: {"xrange": [], "hmget": []} for k in clients}
        for _ in range(args.rounds):
            for name, c in clients.items():
                t0 = time.perf_counter()
                xrange_all(c)
                times[name]["xrange"].append((time.perf_counter() - t0) / (args.entries / 500) * 1000)
                t0 = time.perf_counter()
                for _k in range(10):
                    c.hmget(fixes, fields)
                times[name]["hmget"].append((time.perf_counter() - t0) / 10 * 1000)
        for what, label in (("xrange", "XRANGE of 500 gas events"), ("hmget", "HMGET of 2,000 fixes")):
            py, hi = (statistics.median(times[k][what]) for k in ("pure Python", "hiredis"))
            print(f"{label}: pure Python {py:.2f} ms, hiredis {hi:.2f} ms (medians of {args.rounds}); "
                  f"{py / hi:.1f}x")
    finally:
        for k in r.scan_iter(match=f"{ns}:*", count=1000):
            r.delete(k)
        for c in clients.values():
            c.close()


if __name__ == "__main__":
    main()
