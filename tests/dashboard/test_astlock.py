"""CPython 3.11.7's ``ast.parse`` from two threads at once (dashboard.astlock): the
clean-clone CI failed building the web server while a background thread parsed a
traceback's line. Reproduced in a process of its own (it makes the collector and
the thread switches as eager as they go), without the lock and with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import astlock

ROOT = Path(__file__).resolve().parents[2]

RACE = """
import ast, gc, sys, threading, time
if sys.argv[1] == "locked":
    from dashboard import astlock
    assert astlock.install()
SRC = "\\n".join(f"x{k} = foo(a[{k}], b.c + {k}, *d)" for k in range(300))
errors = []
gc.callbacks.append(lambda phase, info: time.sleep(0))  # a collection hands the GIL over
gc.set_threshold(5, 1, 1)
sys.setswitchinterval(1e-6)

def work(depth):  # each thread parses at its own stack depth, as the web's threads do
    if depth:
        return work(depth - 1)
    for _ in range(2):
        try:
            ast.parse(SRC)
        except SystemError as e:
            errors.append(str(e))

t0 = time.monotonic()
while not errors and time.monotonic() - t0 < float(sys.argv[2]):  # threads that come and go, as requests do
    threads = [threading.Thread(target=work, args=(d,)) for d in (5, 40, 20, 60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
print(len(errors), errors[:1])
"""


def race(mode: str, seconds: float) -> str:
    out = subprocess.run([sys.executable, "-c", RACE, mode, str(seconds)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.skipif(not astlock.AFFECTED, reason="this CPython keeps the AST converter's depth per call")
def test_parsing_in_several_threads_fails_on_this_python_and_not_with_the_lock():
    unlocked = race("unlocked", 10)
    assert "recursion depth mismatch" in unlocked, f"the race did not show without the lock: {unlocked}"
    assert race("locked", 4) == "0 []"
