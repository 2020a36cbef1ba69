"""The loop of the demo's background actors (data/demo_hazards.py, data/demo_alerts.py):
a pass every few seconds until the demo stops, a failed pass logged and the next one
trying again (the database away for a moment must not end the demo's life)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def every(stop_event: threading.Event, period_s: float, step: Callable[[float], object], what: str) -> None:
    """Run ``step(now)`` every ``period_s`` until ``stop_event`` is set."""
    while not stop_event.wait(period_s):
        try:
            step(time.time())
        except Exception:  # noqa: BLE001 - the demo goes on; the next pass tries again
            log.exception("%s: a pass failed", what)
