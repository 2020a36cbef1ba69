"""Run the benches of docs/benchmarks.md one after the other (``make bench``).

    .venv/bin/python bench/run_all.py [--full] [--screens] [--only NAME[,NAME...]] [--list]

By default each bench runs at a modest size (a smoke run that shows every bench
still works, in a few minutes). Its numbers are NOT the ones docs/benchmarks.md
reports: for those, ``--full`` runs exactly the commands listed at the top of
docs/benchmarks.md. The overload bench (ten minutes of ten times a city's load)
runs only with ``--full`` or ``--only overload``. The screens bench needs /usr/bin/chromium and drives the
whole city; it runs only with ``--screens``.

Every bench talks to the local Mosquitto and Redis (``make services``). Each
runs in its own process with this interpreter; its output goes straight to the
terminal. The exit status is 1 if any bench failed; a summary lists each one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# name -> (script, modest arguments, the documented arguments of docs/benchmarks.md)
BENCHES: dict[str, tuple[str, list[str], list[str]]] = {
    "ingest": (
        "bench_ingest.py",
        ["--messages", "20000", "--repeats", "1", "--kinds", "bare,nogeo,full"],
        ["--messages", "100000", "--repeats", "3", "--kinds", "bare,nogeo,full/3000,full"],
    ),
    "heat": ("bench_heat.py", ["--quick", "--markdown"], ["--markdown"]),
    "alarm_latency": (
        "bench_alarm_latency.py",
        ["--alarms", "10", "--duplicates", "3"],
        ["--alarms", "40", "--duplicates", "15", "--escalation"],
    ),
    "screens": ("bench_screens.py", ["--warmup-s", "10", "--renders", "2", "--steady-s", "15"], ["--warmup-s", "30"]),
    "scoring": ("bench_scoring.py", ["--n", "20000", "--repeats", "1", "--trend-days", "10"], []),
    "alert_engine": (
        "bench_alert_engine.py",
        ["--events", "5000", "--sensors", "2000", "--baseline-events", "1000", "--backlog", "5000", "--rounds", "1"],
        [],
    ),
    "redis_parser": ("bench_redis_parser.py", ["--entries", "5000", "--rounds", "3"], []),
    "escalation": ("bench_escalation.py", ["--alerts", "1000"], ["--alerts", "3000"]),
    "sizing": ("bench_sizing.py", ["--inspectors", "2000", "--sensors", "5000", "--rows", "20000"], []),
    "review_stream": ("bench_review_stream.py", ["--opens", "3"], ["--opens", "7"]),
    "escalation_failover": ("bench_escalation.py", ["--alerts", "1000", "--failover"],
                            ["--alerts", "3000", "--failover"]),
    "web_memory": ("bench_web_memory.py", ["--scale", "demo", "--passes", "40", "--threads", "8"],
                   ["--scale", "city", "--passes", "400", "--threads", "32"]),
    "console_rows": ("bench_console_rows.py", ["--scale", "demo", "--inspectors", "5000", "--rounds", "10"],
                     ["--inspectors", "20000", "--rounds", "30"]),
    "alarm_sql": ("bench_alarm_sql.py", ["--alarms", "40", "--burners", "4"], []),
    "visit_state": ("bench_visit_state.py", ["--scale", "demo", "--inspectors", "50", "--repeats", "3"], []),
    "visit_credit": (
        "bench_visit_credit.py",
        ["--scale", "demo", "--stops", "100", "--shares", "0,0.25", "--repeats", "1"],
        ["--scale", "city", "--stops", "400"],
    ),
    "nightly": ("bench_nightly.py", ["--n", "20000", "--db", "/tmp/bench-nightly-20000.sqlite3", "--after", "5"],
                ["--pg"]),
    "overload": ("bench_overload.py", ["--minutes", "1", "--inspectors", "2000", "--no-browser"], ["--minutes", "10"]),
}
# Long: only with --full (or named in --only). The overload bench runs ten minutes of
# load, and its process layout (ingest, alerts and web apart) takes the whole machine.
FULL_ONLY = {"overload"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="the documented sizes of docs/benchmarks.md")
    ap.add_argument("--screens", action="store_true", help="also the browser bench (needs chromium)")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHES)}")
    ap.add_argument("--list", action="store_true", help="print the commands and exit")
    args = ap.parse_args(argv)

    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}; one of {', '.join(BENCHES)}")
    if not args.only and not args.screens:
        names.remove("screens")  # the browser benches: with --screens
        names.remove("review_stream")
    if not args.only and not args.full:
        names = [n for n in names if n not in FULL_ONLY]

    results: list[tuple[str, str, float]] = []
    for name in names:
        script, modest, documented = BENCHES[name]
        cmd = [sys.executable, str(BENCH / script), *(documented if args.full else modest)]
        shown = " ".join(["bench/" + script, *cmd[2:]])
        if args.list:
            print(shown)
            continue
        if name in ("screens", "review_stream") and not Path("/usr/bin/chromium").exists():
            results.append((name, "skipped: no chromium", 0.0))
            continue
        print(f"\n=== {name}: {shown}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(cmd)
        results.append((name, "ok" if rc == 0 else f"FAILED (exit {rc})", time.monotonic() - t0))

    if args.list:
        return 0
    print("\n=== summary" + ("" if args.full else " (modest sizes; --full for the documented runs)"))
    for name, status, took in results:
        print(f"{name:14s} {status:24s} {took:7.1f} s")
    return 1 if any(s.startswith("FAILED") for _, s, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
