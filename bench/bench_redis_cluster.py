"""What a Redis Cluster costs the ingest: a batch applied to live state on one Redis,
on a cluster, and on a cluster waiting for the replica (issue 14 §4, docs/deploy.md
"Redis Cluster").

    .venv/bin/python bench/bench_redis_cluster.py [--batches 300] [--batch 200]

Three targets, started here from the installed ``redis-server`` (AOF on, as in
production): one server (the baseline), and a cluster of 3 masters with a replica
each (``tests/servicekit.py`` ``RedisCluster``, the one the tests use).  Each
batch is ``--batch`` gas readings (half pings, half detector readings, each with a
msg_id), applied with the ingest's own scripts (``LiveState.apply_pings`` and
``apply_sensor_readings``), then, in the third case, ``await_replicas(1)``: the
write and ``WAIT`` that stand between a batch and its MQTT acks.  The three run
interleaved, batch by batch, so that whatever else the machine does falls on all
three alike.  Reported: the median and p95 time per batch, and each median's ratio
to the one server's.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--batch", type=int, default=200)
    args = ap.parse_args()

    from data.embedded import free_port, wait_listening
    from data.live import LiveState, connect
    from geo.types import GasReading, Ping
    from tests.servicekit import RedisCluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-rcluster-"))
    port = free_port(26500)
    single = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "yes", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    cluster = RedisCluster(tmp)
    try:
        wait_listening("127.0.0.1", port, proc=single)
        cluster.start()
        one = LiveState(connect(f"redis://127.0.0.1:{port}/0"), "bench")
        rc = connect(cluster.url, cluster=True)
        many = LiveState(rc, "{bench}")
        waited = LiveState(rc, "{bench2}")
        cases = {"one Redis": (one, False), "cluster": (many, False), "cluster, WAIT 1 replica": (waited, True)}
        times: dict[str, list[float]] = {name: [] for name in cases}
        half = args.batch // 2
        for b in range(args.batches + 10):
            now = time.time()
            pings = [Ping(f"I{i:05d}", now + b, 22.5 + i * 1e-4, 114.0, acc_m=8.0, msg_id=f"p{b}-{i}")
                     for i in range(half)]
            gas = [GasReading(f"S{i:05d}", now + b, lel_pct=3.0, msg_id=f"g{b}-{i}") for i in range(half)]
            for name, (live, wait) in cases.items():
                t0 = time.perf_counter()
                live.apply_pings(pings)
                live.apply_sensor_readings(gas, ["normal"] * half)
                if wait:
                    live.await_replicas(1, 2000)
                if b >= 10:  # the first ten warm the connections and the script cache
                    times[name].append(time.perf_counter() - t0)
        base = statistics.median(times["one Redis"])
        print(f"{args.batches} batches of {args.batch} messages ({half} pings, {half} detector readings)")
        print(f"{'target':28} {'median ms':>10} {'p95 ms':>8} {'ratio':>6} {'msg/s at the median':>20}")
        for name, ts in times.items():
            med = statistics.median(ts)
            p95 = statistics.quantiles(ts, n=20)[-1]
            print(f"{name:28} {med * 1e3:10.2f} {p95 * 1e3:8.2f} {med / base:6.2f} {args.batch / med:20,.0f}")
    finally:
        cluster.stop()
        single.terminate()
        single.wait(10)


if __name__ == "__main__":
    main()
