"""A read-only value that is reloaded now and then without making anyone wait.

The registry of names and the city map take a second or more to load at city
scale; a screen's poll should never wait for that.  ``Reloading.get()`` waits
only for the first load; once the value is older than ``ttl_s`` it still
returns at once, and one background thread loads the new value (a failed
reload keeps the old one and the next call tries again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Reloading(Generic[T]):
    def __init__(self, load: Callable[[], T], ttl_s: float, name: str):
        self._load, self.ttl_s, self.name = load, ttl_s, name
        self._value: T | None = None
        self._at = 0.0
        self._lock = threading.Lock()

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value, self._at = self._load(), time.monotonic()
                return self._value
        if time.monotonic() - self._at >= self.ttl_s and self._lock.acquire(blocking=False):
            threading.Thread(target=self._reload, name=f"{self.name}-reload", daemon=True).start()
        return self._value

    def peek(self) -> T | None:
        """The value loaded last, without loading (None before the first load)."""
        return self._value

    def refresh(self) -> T:
        """Load now, in this thread (what a change that must show at once needs)."""
        with self._lock:
            self._value, self._at = self._load(), time.monotonic()
            return self._value

    def _reload(self) -> None:
        try:
            self._value, self._at = self._load(), time.monotonic()
        except Exception:  # noqa: BLE001 - keep serving what we have
            log.warning("%s reload failed; keeping the one loaded %.0f s ago", self.name,
                        time.monotonic() - self._at, exc_info=True)
        finally:
            self._lock.release()
