"""Alert changes pushed to the screens as server-sent events (``GET /api/v1/events``).

The screens poll their live layers once a second, which put a polling delay
(0.5 s on average, up to a tick and a callback) between an alarm reaching the
API and reaching the wall.  Alert changes are rare and urgent, so they are
pushed: every alert change bumps the live version and adds ``kind=alert`` to
the change stream (``AlertStore.notify``); one thread per web process follows
that stream and wakes the open event streams, and the page's script turns an
event into an immediate refresh of its alert callbacks (``assets/anjian.js``).

An event carries the changed alert ids and the version, nothing else: what a
screen may show is still decided by its callbacks, per role.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator

import orjson

from data.live import LiveState
from data.redis_wait import block_ms
from data.screen_queries import newest_change_id, read_changes

log = logging.getLogger(__name__)

# A comment line this often keeps proxies from closing an idle stream and
# tells the server that a browser has gone (the write fails).
KEEPALIVE_S = 15.0
# How long the browser waits before reconnecting (the SSE "retry" field).
RETRY_MS = 2000
# Events kept for subscribers that were busy writing when they arrived.
BACKLOG = 256
# XREAD blocks this long, so the thread notices a stop (at most half the
# Redis client's socket timeout: data/redis_wait.py).
BLOCK_MS = 5000


class ChangeFeed:
    """Follows ``ns:changes`` and hands alert changes to any number of event streams."""

    def __init__(self, live: LiveState):
        self.live = live
        self._cond = threading.Condition()
        self._events: deque[tuple[int, dict]] = deque(maxlen=BACKLOG)
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def seq(self) -> int:
        return self._seq

    def _run(self) -> None:
        # Block for less than the client's socket timeout (redis-py's default is
        # 5 s even when the URL names none), or every idle read times out.
        block = block_ms(self.live.r, BLOCK_MS)
        last = None  # from now on (a screen that connects draws the present from its own poll)
        down_since = None  # when the current Redis outage began: one warning per outage, not one per second
        while not self._stop.is_set():
            try:
                if last is None:
                    last = newest_change_id(self.live)
                entries = read_changes(self.live, last, 500, block)
            except Exception as e:  # noqa: BLE001 - Redis restarts; the screens still poll meanwhile
                if self._stop.is_set():
                    break  # shutting down: the connection went with the server
                if down_since is None:
                    down_since = time.monotonic()
                    log.warning("change feed waits for Redis: %s", e)
                else:
                    log.debug("change feed still waits for Redis: %s", e)
                self._stop.wait(1.0)
                continue
            if down_since is not None:
                log.info("change feed resumed after %.1f s", time.monotonic() - down_since)
                down_since = None
            got = []
            for entry_id, f in entries:
                last = entry_id
                if f.get(b"kind") == b"alert":
                    ids = [int(x) for x in f.get(b"ids", b"").split(b",") if x]
                    got.append({"id": entry_id.decode(), "v": int(f.get(b"v", 0)), "ids": ids})
            if got:
                with self._cond:
                    for e in got:
                        self._seq += 1
                        self._events.append((self._seq, e))
                    self._cond.notify_all()

    def wait(self, after: int, timeout_s: float) -> tuple[list[dict], int]:
        """Events after sequence number ``after`` (waiting up to ``timeout_s`` for one), and the new position."""
        with self._cond:
            if self._seq == after:
                self._cond.wait(timeout_s)
            out = [e for s, e in self._events if s > after]
            return out, self._seq

    def stream(self, keepalive_s: float = KEEPALIVE_S) -> Iterator[bytes]:
        """The text/event-stream body for one client."""
        self.start()
        pos = self._seq
        yield f"retry: {RETRY_MS}\n: anjian alert events\n\n".encode()
        while not self._stop.is_set():
            events, pos = self.wait(pos, keepalive_s)
            if not events:
                yield f": keepalive {time.time():.0f}\n\n".encode()
                continue
            for e in events:
                data = orjson.dumps({"v": e["v"], "ids": e["ids"]}).decode()
                yield f"id: {e['id']}\nevent: alert\ndata: {data}\n\n".encode()
