"""Redis memory of msg_id idempotency over a sustained run: before (a key per
fix, ``SET ns:msgid:i:{id}:{msg} NX EX ttl``) and after (a capped sorted set
per device, data/live.py ``_LUA_MSGID``), in the same run, on a private
redis-server of its own (so that nothing else moves its ``used_memory``).

    .venv/bin/python bench/bench_msgid_memory.py [--devices 2000] [--fixes 720] [--batch 1000]

Every device sends ``--fixes`` fixes (720: one per 5 s for an hour) with
OwnTracks-style msg_ids (``"{_id}:{tst}"``, ~20 characters), interleaved as
a worker's batches carry them.  Reported, from ``INFO memory`` deltas:

- **before**: the per-fix marker keys alone (what the old script wrote; their
  24 h TTL never expires within the run, as it did not in production);
- **after**: ``LiveState.apply_pings`` with msg_ids, less the same run without
  msg_ids (the live state itself), i.e. what the idempotency memory costs;

as bytes per fix of the run and per device, with ``used_memory`` sampled along
the run to show where it levels off.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis  # noqa: E402

from data.live import MSG_ID_CAP, LiveState  # noqa: E402
from geo.types import Ping  # noqa: E402

OLD_MARKERS = """
local ns, ttl = KEYS[1], tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('SET', ns .. ':msgid:i:' .. ARGV[i] .. ':' .. ARGV[i + 1], '1', 'NX', 'EX', ttl)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def batches(devices: int, fixes: int, batch: int, t0: float, with_msg_id: bool = True):
    """Pings in time order, every device once per step, cut into batches."""
    out: list[Ping] = []
    for step in range(fixes):
        ts = t0 + step * 5.0
        for d in range(devices):
            msg = f"{(d * 7919 + step * 104729) % 2**32:08x}:{int(ts)}" if with_msg_id else None
            out.append(Ping(inspector_id=f"I{d:05d}", ts=ts, lat=22.6 + d * 1e-5, lon=114.0 + step * 1e-6,
                            msg_id=msg))
            if len(out) == batch:
                yield out
                out = []
    if out:
        yield out


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def run(r: redis.Redis, label: str, apply, args, samples: int = 6) -> int:
    r.flushall()  # our private server: nothing else lives here
    time.sleep(0.2)
    base = used(r)
    total = args.devices * args.fixes
    every = max(1, total // args.batch // samples)
    t = time.perf_counter()
    points = []
    for k, b in enumerate(batches(args.devices, args.fixes, args.batch, time.time() - 3600, label != "live only")):
        apply(b)
        if (k + 1) % every == 0:
            points.append(((k + 1) * args.batch, used(r) - base))
    secs = time.perf_counter() - t
    grown = used(r) - base
    curve = ", ".join(f"{n // 1000}k: {m / 2**20:.1f} MB" for n, m in points)
    print(f"{label:>28}: +{grown / 2**20:7.1f} MB after {total:,} fixes, {secs * 1e6 / total:5.1f} us/fix  [{curve}]")
    return grown


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--fixes", type=int, default=720, help="fixes per device")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--old-ttl", type=int, default=86400)
    ap.add_argument("--ttl", type=int, default=3600)
    args = ap.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp,
                                 "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            r = redis.Redis(port=port)
            for _ in range(100):
                try:
                    r.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            version = r.info("server")["redis_version"]
            old = r.register_script(OLD_MARKERS)
            live = LiveState(r, "bench", msg_id_ttl_s=args.ttl)
            total = args.devices * args.fixes
            print(f"redis {version}, {args.devices:,} devices x {args.fixes} fixes = {total:,} fixes, "
                  f"batches of {args.batch}")

            def old_apply(b):
                flat: list = [args.old_ttl]
                for p in b:
                    flat += (p.inspector_id, p.msg_id)
                old(keys=["bench"], args=flat)

            before = run(r, "before: a key per msg_id", old_apply, args)
            with_ids = run(r, "after: live state + msg_ids", live.apply_pings, args)
            bare = run(r, "live only", live.apply_pings, args)
            after = with_ids - bare
            print()
            print("| | bytes per fix of the run | bytes per device | bound |")
            print("|---|---|---|---|")
            print(f"| before (key per msg_id, TTL {args.old_ttl} s) | {before / total:.1f} | "
                  f"{before / args.devices:,.0f} | none within the TTL: grows with every fix |")
            print(f"| after (sorted set per device, cap {MSG_ID_CAP}, window {args.ttl} s) | {after / total:.1f} | "
                  f"{after / args.devices:,.0f} | {MSG_ID_CAP - 16} to {MSG_ID_CAP} msg_ids per device heard in the window |")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
