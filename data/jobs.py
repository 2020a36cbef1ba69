"""The nightly jobs run each in a child process of their own, at a lower CPU priority.

The daily scores (``data.scores_store``), the scheduled bulletins
(``dashboard.bulletins``) and the history retention (``data.retention``) are
scheduled in the alert engine's process (``app.py``: ``start_alert_engine``).  Their
work is not done there: one day's scores at a city's scale are 14-23 s of
Python (docs/benchmarks.md, section 11), and in the engine's interpreter every
alarm, escalation and offline sweep would wait on the GIL behind them.  The
schedules stay in threads of the engine's process (they sleep, and take their
Redis leases in the child); when one falls due, ``ChildJobs.run`` starts
``python app.py jobs NAME``, hands it the engine's own settings on its standard
input (the embedded services' addresses, a settings file's values and the
environment's, exactly as the parent read them; never on the command line, where
``ps`` shows it), lowers its priority by ``jobs_nice`` and waits for it.

- A job that fails, or a child that dies, is logged; the engine is not touched.  The
  day's scores are tried again after ``jobs_retry_s`` (a few times; a child killed
  holding the lease has it freed first, ``on_killed``), the other jobs at their next
  time, as they were in a thread.
- Stopping the engine stops a running child (SIGTERM, then SIGKILL after
  ``STOP_GRACE_S``); the child releases its lease on SIGTERM.
- A ``kill -9`` of the engine leaves a running child to finish its job and exit:
  it holds the job's lease (a day's scores cut short would be scored again whole,
  as the day counts only once all its rows are in; ``scores_store.run_day``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parents[1] / "app.py"
NAMES = ("scores", "retention", "weekly", "monthly")
STOP_GRACE_S = 10.0


class ChildJobs:
    """Starts the nightly jobs' processes for one parent, and stops them with it."""

    def __init__(self, settings, *, python: str = sys.executable):
        self.settings = settings  # with the services' addresses in use, not only the configured ones
        self.python = python
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()

    def run(self, name: str, *, on_killed: Callable[[int], object] | None = None) -> int | None:
        """Run job ``name`` in a child and wait for it: its exit code, None when stopping.
        ``on_killed(pid)`` when a signal not of ours ended it (its own clean-up never ran)."""
        if name not in NAMES:
            raise ValueError(f"unknown nightly job {name!r}: one of {', '.join(NAMES)}")
        with self._lock:
            if self.stopping.is_set():
                return None
            p = subprocess.Popen([self.python, str(APP), "jobs", name, "--settings-on-stdin"],
                                 stdin=subprocess.PIPE, cwd=os.getcwd())
            self._running.add(p)
        t0 = time.monotonic()
        try:
            try:
                p.stdin.write(self.settings.model_dump_json().encode())
                p.stdin.close()
            except BrokenPipeError:  # it died at start: its exit code says why
                pass
            while True:
                try:
                    code = p.wait(0.5)
                    break
                except subprocess.TimeoutExpired:
                    if self.stopping.is_set():
                        return None  # stop() ends it
        finally:
            with self._lock:
                self._running.discard(p)
        took = time.monotonic() - t0
        if code < 0 and on_killed is not None and not self.stopping.is_set():
            on_killed(p.pid)
        if code == 0:
            log.info("nightly job %s done in its process %d (%.1f s)", name, p.pid, took)
        elif not self.stopping.is_set():
            log.error("nightly job %s failed in its process %d (exit code %s after %.1f s)", name, p.pid, code, took)
        return code

    def stop(self) -> None:
        """End the running children: SIGTERM, then SIGKILL after ``STOP_GRACE_S``."""
        with self._lock:
            self.stopping.set()
            running = list(self._running)
        for p in running:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for p in running:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("nightly job process %d did not stop in %.0f s: killed", p.pid, STOP_GRACE_S)
                p.kill()
                p.wait()
