"""History retention: the raw device history older than the operator keeps, deleted
by a daily job (docs/deploy.md, "Sizing"; issue 14).

At a city's load history grows about 3.5 GiB a day, 90 % of it the detectors'
heartbeats (``bench/bench_sizing.py``).  Two settings, both off (0: keep all) unless
the operator sets them:

- ``history_readings_keep_days``: detector readings at level ``normal`` older than
  this go.  Every other level (low, high, fault, tamper, test) is kept: an alarm's
  readings are evidence.
- ``history_pings_keep_days``: location fixes older than this go.  The visits found
  in them are kept; the replay of a day older than this shows its visits without
  the trail.

Deletes run in slices of the primary key (``CHUNK`` ids a statement, one
transaction each), oldest first, so that no statement scans or locks the whole
table and the ingest writes on meanwhile.  Rows are appended in time order, so the
job stops at the first slice whose rows are all newer than the cutoff.  Each run
that deleted anything leaves one audit entry (``history.pruned``: per table the
cutoff and the count).  The daily job runs at ``RUN_AT_H`` China time in one
process (a Redis lease), scheduled beside the scores (``app.py`` ``start_alert_engine``) and
run, as they are, in a child process at a lower priority (``data.jobs``);
``app.py history prune`` runs it by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import and_, delete, func, select
from sqlalchemy.engine import Engine

from data import audit
from data.models import PingRow, SensorReadingRow
from geo.heat import local_day_start

log = logging.getLogger(__name__)

CHUNK = 20_000  # ids per DELETE: well under a second on PostgreSQL and SQLite
RUN_AT_H = 3.0  # China time: after the midnight scores, before the day's work
LEASE_KEY = "retention:lease"
LEASE_S = 3600


def _tables(settings) -> list[tuple[str, type, int, object]]:
    """(name, model, keep days, extra condition) of each table with a retention set."""
    out = []
    if settings.history_readings_keep_days:
        out.append(("sensor_readings", SensorReadingRow, settings.history_readings_keep_days,
                    SensorReadingRow.level == "normal"))
    if settings.history_pings_keep_days:
        out.append(("pings", PingRow, settings.history_pings_keep_days, None))
    return out


def prune_table(engine: Engine, model, cutoff_ts: float, extra=None, *, dry_run: bool = False,
                chunk: int = CHUNK) -> int:
    """Delete ``model`` rows with ``ts < cutoff_ts`` (and ``extra``), a slice of ids at a
    time; returns how many (with ``dry_run``, how many would go)."""
    with engine.connect() as conn:
        lo, hi = conn.execute(select(func.min(model.id), func.max(model.id))).one()
    if lo is None:
        return 0
    gone = 0
    while lo is not None and lo <= hi:
        in_slice = and_(model.id >= lo, model.id < lo + chunk)
        old = and_(in_slice, model.ts < cutoff_ts, *([] if extra is None else [extra]))
        with engine.begin() as conn:
            old_in_slice = conn.execute(select(func.count()).where(in_slice, model.ts < cutoff_ts)).scalar_one()
            if old_in_slice == 0:
                break  # a slice with nothing old: the rows after it are newer still
            if dry_run:
                gone += conn.execute(select(func.count()).where(old)).scalar_one()
            else:
                gone += conn.execute(delete(model).where(old)).rowcount
            # the next row's id (kept rows, and earlier runs, leave gaps)
            lo = conn.execute(select(func.min(model.id)).where(model.id >= lo + chunk)).scalar()
    return gone


def prune(engine: Engine, settings, now: float | None = None, *, actor: str = "system",
          dry_run: bool = False) -> dict[str, dict]:
    """One run over every table with a retention set: {table: {"cutoff", "keep_days", "deleted"}}."""
    now = time.time() if now is None else now
    out: dict[str, dict] = {}
    for name, model, days, extra in _tables(settings):
        cutoff = now - days * 86400.0
        n = prune_table(engine, model, cutoff, extra, dry_run=dry_run)
        out[name] = {"keep_days": days, "cutoff": cutoff, "deleted" if not dry_run else "would_delete": n}
    deleted = sum(v.get("deleted", 0) for v in out.values())
    if deleted:
        audit.append(engine, actor, "history.pruned", None, out)
        log.info("history retention: %s", ", ".join(f"{k} {v['deleted']}" for k, v in out.items()))
    return out


def seconds_to_next_run(now: float) -> float:
    """Seconds from ``now`` to the next ``RUN_AT_H`` o'clock, China time."""
    today_run = local_day_start(now) + RUN_AT_H * 3600.0
    return today_run - now if today_run > now else today_run + 86400.0 - now


class Scheduler(threading.Thread):
    """The daily run, in the one process that takes the Redis lease."""

    def __init__(self, engine: Engine, settings, redis_client, *, run_job: Callable[[], object] | None = None):
        super().__init__(name="retention", daemon=True)
        self.engine, self.settings, self.redis = engine, settings, redis_client
        self.run_job = run_job  # the work here (run_once), or in a child process (data.jobs)
        self.stop_event = threading.Event()

    def run_once(self, now: float | None = None) -> dict | None:
        key = f"{self.settings.redis_prefix}:{LEASE_KEY}"
        if not self.redis.set(key, "1", nx=True, ex=LEASE_S):
            return None  # another process ran it (the lease outlives the run, so once a day)
        return prune(self.engine, self.settings, now)

    def run(self) -> None:
        if not _tables(self.settings):
            return
        while not self.stop_event.wait(seconds_to_next_run(time.time())):
            try:
                if self.run_job is None:
                    self.run_once()
                elif not self.redis.exists(f"{self.settings.redis_prefix}:{LEASE_KEY}"):
                    self.run_job()  # in a child, unless another process ran it already today
            except Exception:  # noqa: BLE001 - tried again the next day; the engine keeps running
                log.exception("history retention failed; it runs again tomorrow")

    def stop(self) -> None:
        self.stop_event.set()
