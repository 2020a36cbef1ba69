"""Ports for the servers tests start of their own, apart per test worker.

``make test`` runs the suite in two pytest-xdist workers (docs/testing.md).  A test
that starts a private broker, Redis or cluster takes the first free port from a
start (``data.embedded.free_port``); two workers starting one at the same moment
could both find the same port free.  Each worker searches from its own offset:
worker N adds ``OFFSET_STEP * N``.  The ranges (servicekit: 17100, 21883, 24222,
26222, 26379, 28883 and the cluster buses at +10000) stay apart and below Linux's
ephemeral ports (32768 and up) for up to four workers.

The tests that start the whole app (its embedded services search from 1884 and
6380, its web port from 18050 and up) all run in one worker: ``conftest.APP_MODULES``.
"""

from __future__ import annotations

import os

from data.embedded import free_port

OFFSET_STEP = 500


def worker_index() -> int:
    """0 for the first xdist worker (``gw0``) and for a run without workers."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    try:
        return int(name.removeprefix("gw"))
    except ValueError:
        return 0


def spare_port(start: int) -> int:
    """A free port at or after ``start`` in this worker's own range."""
    return free_port(start + OFFSET_STEP * worker_index())
