"""The daily scoring job (每日零时打分): facts from SQL, scores from ``hazards.scoring``.

``run_day(engine, settings, "2026-12-02")`` scores every enterprise, street and
unit for that day (China time) from what happened up to the day's end, within
``score_window_d`` days, and replaces that day's rows in slices, its
``score_runs`` row last: a rerun gives identical rows.  ``score_runs`` records
each day that ran, with a digest of its rows; ``catch_up`` scores the days
missed since the newest run (at most ``score_catchup_max_d``), up to yesterday.

``Scheduler`` runs ``catch_up`` once at start and then just after every
midnight, China time.  It is scheduled in the alert engine's process (``app.py``:
``start_alert_engine``, so also in the all-in-one demo) and does the work in a
child process of its own at a lower priority (``data.jobs``); several such
processes may run, so a Redis lease (``SET NX EX``) lets one of them do a
night's work.

Approximation, documented in docs/api.md: a hazard's state at a past day's end
is read from its timestamps (reported, assigned, latest rectification, closed),
so a hazard that was rectified before that day's end and sent back after it
counts as not rectified when the day is re-scored later.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

import orjson
from sqlalchemy import Engine, case, delete, func, insert, select, tuple_

from data.models import (
    Alert,
    AlertEvent,
    Enterprise,
    HazardRow,
    Inspector,
    ScoreRowModel,
    ScoreRun,
    SelfInspection,
    Street,
    Unit,
    Visit,
)
from geo.china import CHINA_TZ
from hazards.model import DAY_S, SUPERVISION_FINDERS
from hazards.scoring import AreaDay, EnterpriseDay, ScoreRow, score_areas, score_enterprises

log = logging.getLogger(__name__)

LEASE_KEY = "scores:lease"
LEASE_S = 3600


def day_end(day: str) -> float:
    """Epoch of the end of ``day`` (YYYY-MM-DD, China time): the next midnight."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, tzinfo=CHINA_TZ).timestamp() + DAY_S


def china_day(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).date().isoformat()


def _counts(conn, q) -> dict:
    return {r[0]: tuple(r[1:]) for r in conn.execute(q)}


def compute_day(engine: Engine, settings, day: str) -> list[ScoreRow]:
    """Every score row of ``day``: enterprises, streets, units (deterministic order)."""
    end = day_end(day)
    start = end - settings.score_window_d * DAY_S
    period_s = settings.self_inspection_period_d * DAY_S
    intervals = settings.interval_days()
    H = HazardRow
    in_window = (H.reported_at > start) & (H.reported_at <= end)
    with engine.connect() as conn:
        ents = conn.execute(select(Enterprise.id, Enterprise.street_id, Enterprise.risk)
                            .order_by(Enterprise.id)).all()
        last_si = dict(conn.execute(select(SelfInspection.enterprise_id, func.max(SelfInspection.submitted_at))
                                    .where(SelfInspection.submitted_at <= end)
                                    .group_by(SelfInspection.enterprise_id)).all())
        # Found by supervision: an inspector's or a service agency's finding counts against
        # the enterprise; what it reported itself does not (self-reporting is rewarded).
        found_outside = H.found_by.in_(SUPERVISION_FINDERS)
        assigned = (H.assigned_at > start) & (H.assigned_at <= end)
        rectified = assigned & (H.rectified_at <= end)
        hz = _counts(conn, select(
            H.enterprise_id,
            func.sum(case((assigned, 1), else_=0)),
            func.sum(case((rectified, 1), else_=0)),
            func.sum(case((rectified & (H.rectified_at <= H.deadline), 1), else_=0)),
            func.sum(case(((H.assigned_at <= end) & (H.deadline < end)
                           & ((H.rectified_at.is_(None)) | (H.rectified_at > end))
                           & ((H.closed_at.is_(None)) | (H.closed_at > end)), 1), else_=0)),
            func.sum(case((in_window & found_outside & (H.level == "general"), 1), else_=0)),
            func.sum(case((in_window & found_outside & (H.level == "major"), 1), else_=0)),
        ).where(H.reported_at <= end).group_by(H.enterprise_id))
        gas_window = (Alert.type == "gas_alarm") & (Alert.first_seen > start) & (Alert.first_seen <= end)
        gas = dict(conn.execute(select(Alert.enterprise_id, func.count()).where(gas_window)
                                .group_by(Alert.enterprise_id)).all())
        last_visit = dict(conn.execute(select(Visit.enterprise_id, func.max(Visit.start_ts))
                                       .where(Visit.start_ts <= end).group_by(Visit.enterprise_id)).all())
        v_window = (Visit.start_ts > start) & (Visit.start_ts <= end)
        visits_street = _counts(conn, select(
            Enterprise.street_id, func.count(), func.sum(case((Visit.duplicate_of.is_not(None), 1), else_=0)))
            .join(Enterprise, Enterprise.id == Visit.enterprise_id).where(v_window).group_by(Enterprise.street_id))
        visits_unit = _counts(conn, select(
            Visit.unit_id, func.count(), func.sum(case((Visit.duplicate_of.is_not(None), 1), else_=0)))
            .where(v_window).group_by(Visit.unit_id))
        unit_visited = {}
        for uid, eid in conn.execute(select(Visit.unit_id, Visit.enterprise_id).where(v_window).distinct()):
            unit_visited.setdefault(uid, set()).add(eid)
        on_scene = (select(AlertEvent.alert_id, func.min(AlertEvent.at).label("at"))
                    .where(AlertEvent.to_state == "on_scene", AlertEvent.at <= end)
                    .group_by(AlertEvent.alert_id).subquery())
        alarms = conn.execute(select(Alert.id, Alert.street_id, Inspector.unit_id, Alert.first_seen, on_scene.c.at)
                              .join(on_scene, on_scene.c.alert_id == Alert.id, isouter=True)
                              .join(Inspector, Inspector.id == Alert.assignee_id, isouter=True)
                              .where(gas_window).order_by(Alert.id)).all()
        closed = (H.closed_at.is_not(None)) & (H.closed_at <= end)
        hz_street = _counts(conn, select(H.street_id, func.count(), func.sum(case((closed, 1), else_=0)))
                            .where(in_window).group_by(H.street_id))
        # A unit's findings: those of its staff, and an agency's found in the agency's own name.
        finder_unit = func.coalesce(Inspector.unit_id, Unit.id)
        hz_unit = _counts(conn, select(finder_unit, func.count(), func.sum(case((closed, 1), else_=0)))
                          .join(Inspector, Inspector.id == H.finder_id, isouter=True)
                          .join(Unit, Unit.id == H.finder_id, isouter=True)
                          .where(in_window, found_outside, finder_unit.is_not(None)).group_by(finder_unit))
        streets = [r[0] for r in conn.execute(select(Street.id).order_by(Street.id))]
        units = conn.execute(select(Unit.id, Unit.street_id).order_by(Unit.id)).all()

    e_facts = []
    street_ents: dict = {}
    street_cov: dict = {}
    for eid, sid, risk in ents:
        a, r, ot, od, fg, fm = hz.get(eid, (0, 0, 0, 0, 0, 0))
        si = last_si.get(eid)
        e_facts.append(EnterpriseDay(eid, None if si is None else end - si, int(a or 0), int(r or 0), int(ot or 0),
                                     int(od or 0), int(gas.get(eid, 0)), int(fg or 0), int(fm or 0)))
        street_ents.setdefault(sid, []).append(eid)
        lv = last_visit.get(eid)
        if lv is not None and end - lv <= intervals.get(risk, 365) * DAY_S:
            street_cov[sid] = street_cov.get(sid, 0) + 1

    def response(rows):
        return tuple(None if r.at is None else max(0.0, r.at - r.first_seen) for r in rows)

    s_facts = []
    for sid in streets:
        n, dup = visits_street.get(sid, (0, 0))
        found, done = hz_street.get(sid, (0, 0))
        s_facts.append(AreaDay(sid, len(street_ents.get(sid, ())), street_cov.get(sid, 0), int(n or 0),
                               int(dup or 0), response([a for a in alarms if a.street_id == sid]),
                               int(found or 0), int(done or 0)))
    u_facts = []
    for uid, sid in units:
        n, dup = visits_unit.get(uid, (0, 0))
        found, done = hz_unit.get(uid, (0, 0))
        # A unit covers its street's enterprises by its own visits; a district unit has no street of its own.
        pool = set(street_ents.get(sid, ())) if sid else None
        visited = unit_visited.get(uid, set())
        covered = len(visited & pool) if pool is not None else len(visited)
        n_ents = len(pool) if pool is not None else len(visited)
        u_facts.append(AreaDay(uid, n_ents, covered, int(n or 0), int(dup or 0),
                               response([a for a in alarms if a.unit_id == uid]), int(found or 0), int(done or 0)))
    return (score_enterprises(e_facts, settings.score_weights_enterprise, period_s)
            + score_areas("street", s_facts, settings.score_weights_area, settings.score_alarm_response_target_s)
            + score_areas("unit", u_facts, settings.score_weights_area, settings.score_alarm_response_target_s))


def digest(rows: list[ScoreRow]) -> str:
    """sha256 of the rows, in their order (canonical JSON, keys sorted)."""
    return hashlib.sha256(orjson.dumps([[r.kind, r.id, r.score, r.rank, r.parts] for r in rows],
                                       option=orjson.OPT_SORT_KEYS)).hexdigest()


WRITE_SLICE = 2000  # rows a transaction of a day's write
SQLITE_PAUSE_S = 0.05  # between two slices on SQLite: a waiting writer's turn


def run_day(engine: Engine, settings, day: str, now: float | None = None) -> dict:
    """Score ``day`` and replace its rows (idempotent); returns ``{"date", "rows", "digest"}``.

    The rows are written in slices of ``WRITE_SLICE``, a transaction each, and the
    day's ``score_runs`` row last: on SQLite, whose one writer's lock a single
    transaction of a city's 130,000 rows held for about 2 s, an alarm's commit waits
    for one slice, not for the day (docs/benchmarks.md, section 27).  Each slice
    replaces its subjects' rows of the day, so a reader sees a subject's old row or
    its new one; rows of subjects no longer scored go with the ``score_runs`` row.
    The day counts as scored (``latest_date``, ``missed_days``) only once that row is
    written: a run cut short is run again in full by the next catch-up."""
    date.fromisoformat(day)  # ValueError for a malformed date
    rows = compute_day(engine, settings, day)
    dg = digest(rows)
    key = tuple_(ScoreRowModel.kind, ScoreRowModel.subject_id)
    with engine.connect() as conn:
        had = set(conn.execute(select(ScoreRowModel.kind, ScoreRowModel.subject_id)
                               .where(ScoreRowModel.date == day)).tuples())
    pause = SQLITE_PAUSE_S if engine.dialect.name == "sqlite" else 0.0
    for i in range(0, len(rows), WRITE_SLICE):
        part = rows[i:i + WRITE_SLICE]
        with engine.begin() as conn:
            old = [k for k in ((r.kind, r.id) for r in part) if k in had]
            if old:
                conn.execute(delete(ScoreRowModel).where(ScoreRowModel.date == day, key.in_(old)))
            conn.execute(insert(ScoreRowModel), [
                {"date": day, "kind": r.kind, "subject_id": r.id, "score": r.score, "rank": r.rank, "parts": r.parts}
                for r in part])
        if pause and i + WRITE_SLICE < len(rows):
            time.sleep(pause)
    stale = list(had - {(r.kind, r.id) for r in rows})
    with engine.begin() as conn:
        for j in range(0, len(stale), WRITE_SLICE):
            conn.execute(delete(ScoreRowModel).where(ScoreRowModel.date == day, key.in_(stale[j:j + WRITE_SLICE])))
        conn.execute(delete(ScoreRun).where(ScoreRun.date == day))
        conn.execute(insert(ScoreRun).values(date=day, ran_at=time.time() if now is None else now, rows=len(rows),
                                             digest=dg))
    log.info("scores of %s: %d rows (digest %s)", day, len(rows), dg[:12])
    return {"date": day, "rows": len(rows), "digest": dg}


def missed_days(engine: Engine, settings, now: float) -> list[str]:
    """The days to score now: after the newest run up to yesterday (China time), at most
    ``score_catchup_max_d`` of them (the newest); yesterday alone when nothing ran yet."""
    yesterday = date.fromisoformat(china_day(now)) - timedelta(days=1)
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(ScoreRun.date))).scalar()
    first = yesterday if newest is None else date.fromisoformat(newest) + timedelta(days=1)
    first = max(first, yesterday - timedelta(days=max(0, settings.score_catchup_max_d - 1)))
    out = []
    d = first
    while d <= yesterday:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


def catch_up(engine: Engine, settings, now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    return [run_day(engine, settings, d, now) for d in missed_days(engine, settings, now)]


def seconds_to_midnight(now: float) -> float:
    """Seconds from ``now`` to the next midnight, China time."""
    return day_end(china_day(now)) - now


def take_lease(redis_client, namespace: str) -> str | None:
    """The scoring lease (one scorer at a time across processes), or None when another holds it.
    Its value names the holder (host, process), for ``free_lease_of``."""
    token = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{time.time()}"
    return token if redis_client.set(f"{namespace}:{LEASE_KEY}", token, nx=True, ex=LEASE_S) else None


def release_lease(redis_client, namespace: str, token: str) -> None:
    key = f"{namespace}:{LEASE_KEY}"
    if redis_client.get(key) == token.encode():  # only our own
        redis_client.delete(key)


# Deletes KEYS[1] only while its value begins with ARGV[1]: one step, so that a lease
# another process took meanwhile is never deleted.
_FREE_IF_HELD_BY = """
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def free_lease_of(redis_client, namespace: str, pid: int) -> bool:
    """Free the lease of process ``pid`` of this host, which died holding it (killed: its
    ``release_lease`` never ran), so that the night is tried again now, not after the
    lease's hour.  True when it held it."""
    held_by = f"{socket.gethostname()}:{pid}:"
    return bool(redis_client.eval(_FREE_IF_HELD_BY, 1, f"{namespace}:{LEASE_KEY}", held_by))


class Scheduler(threading.Thread):
    """Catch up at start, then score just after each China midnight; one process per night
    holds the Redis lease (``<namespace>:scores:lease``)."""

    def __init__(self, engine: Engine, settings, redis_client, *, delay_s: float = 60.0,
                 run_job: Callable[[], int | None] | None = None):
        super().__init__(name="scores", daemon=True)
        self.engine, self.settings, self.redis = engine, settings, redis_client
        self.delay_s = delay_s  # after midnight, so that the day's last writes are in
        # Where the work is done: here (run_once), or a child process's (data.jobs), started
        # only when a day is missing; it returns the child's exit code.
        self.run_job = run_job
        self.stop_event = threading.Event()

    def run_once(self, now: float | None = None) -> list[dict] | None:
        token = take_lease(self.redis, self.settings.redis_prefix)
        if token is None:
            return None  # another process is scoring
        try:
            return catch_up(self.engine, self.settings, now)
        finally:
            release_lease(self.redis, self.settings.redis_prefix, token)

    def tick(self, now: float) -> bool | None:
        """One scheduled run: here, or in a child only when a day is missing and no other
        process holds the lease (a child's start-up is a second of CPU).  True when it
        ran, False when the child failed, None when there was nothing for it to do."""
        if self.run_job is None:
            return None if self.run_once(now) is None else True
        if not missed_days(self.engine, self.settings, now) or self.redis.exists(
                f"{self.settings.redis_prefix}:{LEASE_KEY}"):
            return None
        return self.run_job() == 0

    def run(self) -> None:
        failures = 0
        while not self.stop_event.is_set():
            ok = None
            try:
                ok = self.tick(time.time())
            except Exception:  # noqa: BLE001 - the job retries at the next midnight; the engine keeps running
                log.exception("daily scoring failed; it catches up at the next run")
            # A child that failed (killed by the kernel's OOM killer, say) is tried again
            # soon, a few times; then, or after a run, at the next midnight.
            failures = failures + 1 if ok is False else 0
            if 0 < failures <= self.settings.jobs_retries:
                wait_s = self.settings.jobs_retry_s
                log.warning("daily scoring is tried again in %.0f s (%d of %d)", wait_s, failures,
                            self.settings.jobs_retries)
            else:
                failures = 0
                wait_s = seconds_to_midnight(time.time()) + self.delay_s
            if self.stop_event.wait(wait_s):
                return

    def stop(self) -> None:
        self.stop_event.set()


def latest_date(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(func.max(ScoreRun.date))).scalar()


def scores_of(engine: Engine, day: str, kind: str, limit: int = 1000) -> list[dict]:
    """``[{"id", "score", "rank", "parts"}]`` of one day and kind, best first."""
    with engine.connect() as conn:
        rows = conn.execute(select(ScoreRowModel.subject_id, ScoreRowModel.score, ScoreRowModel.rank,
                                   ScoreRowModel.parts)
                            .where(ScoreRowModel.date == day, ScoreRowModel.kind == kind)
                            .order_by(ScoreRowModel.rank, ScoreRowModel.subject_id).limit(limit)).all()
    return [{"id": r.subject_id, "score": r.score, "rank": r.rank, "parts": r.parts} for r in rows]
