"""Alert changes pushed to the screens as server-sent events (``GET /api/v1/events``).

The screens poll their live layers once a second, which put a polling delay
(0.5 s on average, up to a tick and a callback) between an alarm reaching the
API and reaching the wall.  Alert changes are rare and urgent, so they are
pushed: every alert change bumps the live version and adds ``kind=alert`` to
the change stream (``AlertStore.notify``); one thread per web process follows
that stream and wakes the open event streams, and the page's script turns an
event into an immediate refresh of its alert callbacks (``assets/anjian.js``).

An event carries the changed alert ids and the version.  A screen that names
itself (``?view=wall`` or ``?view=dispatch``) also gets, in ``rows``, the row
its alert list will show for each new alarm (not yet acknowledged) that its
user may see, in the user's language, rendered by the page's own code
(``register_preview``): the page puts that row in at once, and its callback's
answer, which follows, replaces it (``assets/anjian.js``).  The callback's
render took 0.1-0.3 s of a busy page's main thread after the event; the row
from the event is on screen as soon as the event is read.  Who may see what is
decided per stream, by the same area rule as the callbacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

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
# New alarms read per batch of changes for the rows an event carries.
PREVIEW_MAX = 50

# view name -> fn(alerts) -> [{"id", "html"}], run in the stream's request (the
# principal and language are the client's); registered by the pages.
_PREVIEWS: dict[str, Callable[[list[dict]], list[dict]]] = {}


def register_preview(view: str, fn: Callable[[list[dict]], list[dict]]) -> None:
    _PREVIEWS[view] = fn


def preview_for(view: str | None) -> Callable[[list[dict]], list[dict]] | None:
    return _PREVIEWS.get(view or "")


class ChangeFeed:
    """Follows ``ns:changes`` and hands alert changes to any number of event streams."""

    def __init__(self, live: LiveState, new_alerts: Callable[[list[int]], list[dict]] | None = None):
        self.live = live
        # ids -> the new alarms among them (AlertStore.new_alerts), read once per
        # batch for every stream of the process; None: events carry ids only.
        self.new_alerts = new_alerts
        self._cond = threading.Condition()
        self._events: deque[tuple[int, dict]] = deque(maxlen=BACKLOG)
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Streams open that render rows (a wall or a console): with none, a batch's new
        # alarms are not read (it was one SQL query per batch for nobody).
        self._previewing = 0

    def start(self) -> None:
        """Start following the change stream, from its present end as read here, in the
        caller: a change made after the first stream's retry hint reached its client is
        then delivered, however late the thread gets its first turn (the clean-clone CI
        caught an alarm opened in that gap and never sent)."""
        with self._cond:
            if self._thread is None:
                try:
                    first = newest_change_id(self.live)
                except Exception as e:  # noqa: BLE001 - Redis away: the thread reads it when Redis is back
                    log.warning("change feed waits for Redis: %s", e)
                    first = None
                self._thread = threading.Thread(target=self._run, args=(first,), name="change-feed", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def seq(self) -> int:
        return self._seq

    def _run(self, last: bytes | None = None) -> None:
        # Block for less than the client's socket timeout (redis-py's default is
        # 5 s even when the URL names none), or every idle read times out.
        block = block_ms(self.live.r, BLOCK_MS)
        # ``last``: from now on (a screen that connects draws the present from its own poll)
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
                self._attach_new(got)
                with self._cond:
                    for e in got:
                        self._seq += 1
                        self._events.append((self._seq, e))
                    self._cond.notify_all()

    def _attach_new(self, got: list[dict]) -> None:
        """Each event's new alarms (``alerts``), from one read for the batch; an
        error leaves the events as they were (the screens' polls still show them)."""
        if self.new_alerts is None or not self._previewing:
            return
        ids = [i for e in got for i in e["ids"]]
        try:
            rows = {a["id"]: a for a in self.new_alerts(ids[-PREVIEW_MAX:])}
        except Exception as e:  # noqa: BLE001 - SQL away: ids only, as before
            log.warning("change feed: new alarms not read (%s); events carry ids only", e)
            return
        for e in got:
            e["alerts"] = [rows[i] for i in e["ids"] if i in rows]

    def wait(self, after: int, timeout_s: float) -> tuple[list[dict], int]:
        """Events after sequence number ``after`` (waiting up to ``timeout_s`` for one), and the new position."""
        with self._cond:
            if self._seq == after:
                self._cond.wait(timeout_s)
            out = [e for s, e in self._events if s > after]
            return out, self._seq

    def stream(self, keepalive_s: float = KEEPALIVE_S,
               preview: Callable[[list[dict]], list[dict]] | None = None) -> Iterator[bytes]:
        """The text/event-stream body for one client; ``preview`` renders the rows of
        the event's new alarms this client may see (``register_preview``)."""
        self.start()
        pos = self._seq
        if preview is not None:
            with self._cond:
                self._previewing += 1
        try:
            yield f"retry: {RETRY_MS}\n: anjian alert events\n\n".encode()
            yield from self._events_for(pos, keepalive_s, preview)
        finally:  # the client went (the server closes the generator)
            if preview is not None:
                with self._cond:
                    self._previewing -= 1

    def _events_for(self, pos: int, keepalive_s: float,
                    preview: Callable[[list[dict]], list[dict]] | None) -> Iterator[bytes]:
        while not self._stop.is_set():
            events, pos = self.wait(pos, keepalive_s)
            if not events:
                yield f": keepalive {time.time():.0f}\n\n".encode()
                continue
            for e in events:
                body: dict = {"v": e["v"], "ids": e["ids"]}
                if preview is not None and e.get("alerts"):
                    try:
                        rows = preview(e["alerts"])
                    except Exception:  # noqa: BLE001 - a row that fails to render: the poll draws it
                        log.exception("alert preview failed")
                        rows = []
                    if rows:
                        body["rows"] = rows
                data = orjson.dumps(body).decode()
                yield f"id: {e['id']}\nevent: alert\ndata: {data}\n\n".encode()
