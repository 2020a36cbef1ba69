"""Alerts in SQL: the only place that writes them.

The lifecycle, rules and ladder are pure logic in ``alerts/``; this module
loads an ``AlertState``, asks ``alerts.lifecycle.transition`` (or the rules)
for the next one, and stores it with its history rows and its audit entry in
one transaction.  An UPDATE carries ``WHERE version = :seen``: of two
dispatchers acknowledging the same alert at once, one wins and the other gets
``Conflict`` (the API's 409), and nothing is half-written.

After a commit, screens are told through the live-state change stream, and a
dispatch goes to the outbox stream that the alert engine publishes over MQTT
(so the web process needs no broker connection, and a dispatch issued while
the broker is away is sent when it is back).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, case, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from alerts.audit import alert_audit
from alerts.escalation import Ladder
from alerts.lifecycle import TransitionNotAllowed, new_alert, transition
from alerts.model import (ACTIVE_STATES, HAZARD_NO_LONGER_OVERDUE, HAZARD_OVERDUE, OVERDUE_INSPECTION,
                          OVERDUE_SUPERSEDED, SEVERITY_RANK, AlertState, TransitionRecord, hazard_escalated_note,
                          hazard_overdue_note, hazard_subject, takeover_note)
from alerts.nearest import Candidate, rank_nearest
from alerts.rules import severity_for
from data import audit
from data.auth import Principal
from data.live import LiveState, reported_offline
from data.models import Alert, AlertEvent, DispatchTask, Enterprise, Inspector, StreamMark
from geo.timefmt import iso

log = logging.getLogger(__name__)

ALERT_FIELDS = [f.name for f in dataclasses.fields(AlertState)]
# Retries of a transaction that lost a race (audit-chain append, SQLite lock).
TX_RETRIES = 8
# What officers may do: take an alarm in their own grid and see it through.
OFFICER_ACTIONS = frozenset({"ack", "assign", "arrive", "resolve"})
MANAGER_ROLES = frozenset({"dispatcher", "admin"})
# Subjects bound into one IN (...) of active_subjects: the engine's whole batch,
# and far below SQLite's limit on bound parameters (999 in old builds).
SUBJECTS_PER_QUERY = 500
SYSTEM = Principal(0, "system", "admin")


def queue_key(a: dict) -> tuple:
    """The one order of alerts, on every screen and in ``GET /api/v1/alerts``:
    unacknowledged (``open``) before acknowledged (the other active states), those
    before handled ones (resolved, closed); then the most severe; then the newest
    (first seen), and the higher id on a tie."""
    state = a.get("state")
    handled = 0 if state == "open" else 1 if state in ACTIVE_STATES else 2
    first = a.get("first_seen_ts")
    try:
        first = float(first) if first is not None else 0.0
    except (TypeError, ValueError):
        first = 0.0
    if first != first:  # NaN from an odd stored value: last
        first = 0.0
    aid = a.get("id")
    return (handled, -SEVERITY_RANK.get(a.get("severity"), -1), -first, -aid if isinstance(aid, int) else 0)


# Alerts escalated per transaction (escalate_due): large enough that 3,000 due at
# once take a handful of transactions, small enough that one holds its locks briefly.
ESCALATE_BATCH = 500
# What an escalation step changes (alerts.escalation.Ladder.escalate).
ESCALATION_FIELDS = frozenset({"escalation_level", "escalate_at"})


class Conflict(Exception):
    """Someone else changed the alert first; reload and try again."""


class UnknownReference(ValueError):
    """An action names an inspector or an enterprise that SQL does not have
    (``code``: ``unknown_inspector`` or ``unknown_enterprise``)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def state_from_row(row) -> AlertState:
    d = {k: getattr(row, k) for k in ALERT_FIELDS if k != "details"}
    d["details"] = dict(row.details or {})
    return AlertState(**d)


def _values(alert: AlertState) -> dict:
    d = {k: getattr(alert, k) for k in ALERT_FIELDS if k != "id"}
    d["details"] = dict(alert.details or {})
    return d


class AlertStore:
    def __init__(self, engine: Engine, live: LiveState, ladder: Ladder, *, mqtt_prefix: str = "anjian"):
        self.engine = engine
        self.live = live
        self.ladder = ladder
        self.mqtt_prefix = mqtt_prefix

    # --- reads ----------------------------------------------------------------
    def list(self, state: str | None = None, principal: Principal | None = None, limit: int = 200,
             type: str | None = None, since: float | None = None, most_urgent: bool = False) -> list[dict]:
        """Alerts as the API shows them, in the order every screen shows them
        (``queue_key``): unacknowledged first, then the most severe, then the newest.

        ``limit`` keeps the first ``limit`` in that order: what a screen must never
        leave out when a city has more active alerts than it can draw.
        (``most_urgent`` is kept for callers; the order is the same either way.)
        """
        q = select(Alert.__table__)
        if state == "open":
            q = q.where(Alert.state.in_(ACTIVE_STATES))  # "open" in the API: not yet resolved
        elif state:
            q = q.where(Alert.state == state)
        if type:
            q = q.where(Alert.type == type)
        if since is not None:
            q = q.where(Alert.last_seen >= since)
        if principal is not None and principal.role == "officer":
            q = q.where(Alert.grid_id.in_(principal.grids) if principal.grids else Alert.street_id.in_(principal.streets))
        rank = case(dict(SEVERITY_RANK), value=Alert.severity, else_=-1)
        handled = case((Alert.state == "open", 0), (Alert.state.in_(ACTIVE_STATES), 1), else_=2)
        q = q.order_by(handled, rank.desc(), Alert.first_seen.desc(), Alert.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            history = self._history(conn, [r.id for r in rows])
        out = [self._json(r, history.get(r.id, [])) for r in rows]
        out.sort(key=queue_key)
        return out

    def new_alerts(self, alert_ids: Iterable[int], limit: int = 50) -> list[dict]:
        """The alerts among ``alert_ids`` nobody has acknowledged yet, without their
        histories: what the event stream shows at once, before a screen's own poll
        (``dashboard.push``).  One read for at most ``limit`` ids."""
        wanted = sorted({int(i) for i in alert_ids})[-limit:]
        if not wanted:
            return []
        q = select(Alert.__table__).where(Alert.id.in_(wanted), Alert.state == "open")
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        out = [self._json(r, []) for r in rows]
        out.sort(key=queue_key)
        return out

    def get(self, alert_id: int) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(Alert.__table__).where(Alert.id == alert_id)).first()
            if row is None:
                return None
            return self._json(row, self._history(conn, [alert_id]).get(alert_id, []))

    def _history(self, conn: Connection, ids: list[int]) -> dict[int, list[dict]]:
        if not ids:
            return {}
        out: dict[int, list[dict]] = {}
        rows = conn.execute(select(AlertEvent.__table__).where(AlertEvent.alert_id.in_(ids)).order_by(AlertEvent.id))
        for e in rows:
            out.setdefault(e.alert_id, []).append({
                "from_state": e.from_state, "to_state": e.to_state, "action": e.action, "actor": e.actor,
                "at": iso(e.at), "at_ts": e.at, "note": e.note, "note_typed": e.note_typed,
            })
        return out

    def _json(self, r, history: list[dict]) -> dict:
        from alerts.lifecycle import allowed_actions

        st = state_from_row(r)
        return {
            "id": r.id, "type": r.type, "severity": r.severity, "state": r.state, "subject": r.subject,
            "enterprise_id": r.enterprise_id, "sensor_id": r.sensor_id, "inspector_id": r.inspector_id,
            "street_id": r.street_id, "grid_id": r.grid_id, "assignee_id": r.assignee_id, "count": r.count,
            "peak_lel": r.peak_lel, "last_value_lel": r.last_value_lel,
            "returned_to_normal_at": iso(r.returned_to_normal_at), "escalation_level": r.escalation_level,
            "outcome": r.outcome, "first_seen": iso(r.first_seen), "first_seen_ts": r.first_seen,
            "last_seen": iso(r.last_seen), "last_seen_ts": r.last_seen, "details": r.details or {},
            "allowed_actions": allowed_actions(st), "history": history,
            "changes": {h["to_state"]: h["at"] for h in history if h["action"] != "escalate"},
        }

    def active(self, conn: Connection, alert_type: str, subject: str) -> tuple[AlertState, int] | None:
        """The subject's newest alert of ``alert_type`` in ``ACTIVE_STATES``, and its version."""
        return self.active_of(conn, (alert_type,), subject).get(alert_type)

    def active_of(self, conn: Connection, alert_types: Iterable[str],
                  subject: str) -> dict[str, tuple[AlertState, int]]:
        """``active`` for several types of one subject in one query: type -> (alert, version)."""
        rows = conn.execute(
            select(Alert.__table__).where(Alert.type.in_(list(alert_types)), Alert.subject == subject,
                                          Alert.state.in_(ACTIVE_STATES)).order_by(Alert.id.desc())
        ).all()
        out: dict[str, tuple[AlertState, int]] = {}
        for row in rows:
            out.setdefault(row.type, (state_from_row(row), row.version))
        return out

    def supersede_overdue(self, conn: Connection, street_id: str, subject: str, day: str, now: float) -> list[int]:
        """Resolve the street's still-open overdue roll-ups of earlier days (outcome
        ``superseded``): the day's new one (``subject``) lists what is overdue now, and
        the dispatcher's queue keeps one per street."""
        rows = conn.execute(select(Alert.__table__).where(
            Alert.type == OVERDUE_INSPECTION, Alert.street_id == street_id, Alert.subject != subject,
            Alert.state.in_(ACTIVE_STATES))).all()
        done = []
        for row in rows:
            alert, rec = transition(state_from_row(row), "resolve", actor=SYSTEM.username, at=now,
                                    outcome="superseded", note=OVERDUE_SUPERSEDED.format(day=day))
            self.update(conn, alert, row.version, [rec], now)
            done.append(row.id)
        return done

    def active_subjects(self, alert_types: Iterable[str], subjects: Iterable[str] | None, *,
                        still_away: bool = False) -> set[str]:
        """Those of ``subjects`` that have an alert of one of ``alert_types`` in ``ACTIVE_STATES``
        (``subjects`` None: every subject that has one, in one query; for a caller that
        would otherwise name tens of thousands).

        ``still_away``: only alerts not marked back to normal (an offline device
        not heard again since).

        The alert engine's batch read: one query tells which sensors of a batch
        can skip SQL altogether.  It reads no lock and may be stale by the time
        it is used (a dispatcher resolves an alert); callers treat "active" as
        "look again in a transaction".
        """
        types = list(alert_types)
        wanted = None if subjects is None else list(dict.fromkeys(subjects))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, 1 if wanted is None else len(wanted), SUBJECTS_PER_QUERY):
                q = select(Alert.subject).distinct().where(Alert.type.in_(types), Alert.state.in_(ACTIVE_STATES))
                if wanted is not None:
                    q = q.where(Alert.subject.in_(wanted[i:i + SUBJECTS_PER_QUERY]))
                if still_away:
                    q = q.where(Alert.returned_to_normal_at.is_(None))
                found.update(s for s in conn.execute(q).scalars() if s is not None)
        return found

    # --- writes (used by the engine and by act) --------------------------------------
    def insert(self, conn: Connection, alert: AlertState, record: TransitionRecord, now: float) -> AlertState:
        alert = self.ladder.arm(alert, now)
        vals = _values(alert) | {"created_at": now, "updated_at": now, "version": 1}
        alert_id = conn.execute(insert(Alert).values(**vals).returning(Alert.id)).scalar_one()
        alert = dataclasses.replace(alert, id=alert_id)
        self._record(conn, alert_id, [record])
        return alert

    def update(self, conn: Connection, alert: AlertState, seen_version: int, records: Iterable[TransitionRecord],
               now: float) -> None:
        res = conn.execute(
            update(Alert).where(and_(Alert.id == alert.id, Alert.version == seen_version))
            .values(**_values(alert), updated_at=now, version=seen_version + 1)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:
            raise Conflict(f"alert {alert.id} was changed by someone else")
        self._record(conn, alert.id, records)

    def _record(self, conn: Connection, alert_id: int, records: Iterable[TransitionRecord]) -> None:
        for rec in records:
            for step in rec.steps():
                conn.execute(insert(AlertEvent).values(
                    alert_id=alert_id, from_state=step.from_state, to_state=step.to_state, action=step.action,
                    actor=step.actor, at=step.at, note=step.note, note_typed=step.note_typed))
            action, target, detail = alert_audit(alert_id, rec)
            audit.append(conn, rec.actor, action, target, detail, at=rec.at)

    def escalate_due(self, now: float, limit: int = ESCALATE_BATCH) -> tuple[list[tuple[int, list[TransitionRecord]]], bool]:
        """Fire the escalations due at ``now`` of up to ``limit`` open alerts, oldest
        deadline first, in one transaction: their rows, events and audit entries
        are written together (one statement each kind but the versioned updates),
        so thousands due at once take a few transactions, not thousands.
        On PostgreSQL the rows are locked (``FOR UPDATE SKIP LOCKED``): a person's
        acknowledgement waits for this commit or is not in the way; on SQLite the
        write lock serialises the same.  Returns ``[(alert_id, records)]`` and
        whether more may be due (the batch was full)."""
        def tx(conn: Connection):
            q = (select(Alert.__table__).where(Alert.escalate_at <= now, Alert.state == "open")
                 .order_by(Alert.escalate_at, Alert.id).limit(limit))
            if conn.dialect.name == "postgresql":
                q = q.with_for_update(skip_locked=True)
            rows = conn.execute(q).all()
            fired: list[tuple[int, list[TransitionRecord]]] = []
            params = []
            for row in rows:
                before = state_from_row(row)
                alert, records = before, []
                while (step := self.ladder.escalate(alert, now)) is not None:
                    alert, rec = step
                    records.append(rec)
                if not records:
                    continue
                was = _values(before)
                changed = {k for k, v in _values(alert).items() if was[k] != v}
                if not changed <= ESCALATION_FIELDS:
                    raise AssertionError(f"an escalation changed {sorted(changed)}: escalate_due writes only "
                                         f"{sorted(ESCALATION_FIELDS)}")
                params.append({"b_id": alert.id, "b_version": row.version, "level": alert.escalation_level,
                               "at": alert.escalate_at, "now": now, "version": row.version + 1})
                fired.append((alert.id, records))
            if params:
                # One executemany: the rows are locked (PostgreSQL) or the database is
                # (SQLite), so the version check is a second guard that never trips.
                t = Alert.__table__
                res = conn.execute(
                    update(t).where(and_(t.c.id == bindparam("b_id"), t.c.version == bindparam("b_version")))
                    .values(escalation_level=bindparam("level"), escalate_at=bindparam("at"),
                            updated_at=bindparam("now"), version=bindparam("version")), params)
                if conn.dialect.supports_sane_multi_rowcount and res.rowcount != len(params):
                    raise Conflict(f"{len(params) - res.rowcount} of {len(params)} alerts changed while escalating")
            self._record_many(conn, fired)
            return fired, len(rows) >= limit

        return self.run_tx(tx)

    def sync_hazard_overdue(self, overdue: list[dict], now: float, escalate_after_s: float) -> list[int]:
        """Keep one ``hazard_overdue`` alert per overdue hazard (``HazardStore.overdue``):
        opened when the hazard is past its deadline, at the street's level (1); raised
        to the district's (2) once it is overdue longer than ``escalate_after_s``; and
        resolved by the system (outcome ``rectified``) when the hazard is no longer
        overdue (rectified, accepted, closed, or its deadline moved).  One transaction;
        every change has its event and audit entry.  Returns the changed alert ids."""
        def tx(conn: Connection) -> list[int]:
            active = {r.subject: r for r in conn.execute(select(Alert.__table__).where(
                Alert.type == HAZARD_OVERDUE, Alert.state.in_(sorted(ACTIVE_STATES)))).all()}
            # Resolved by a person (followed up, dismissed) for the same deadline: not
            # reopened at the same level, only when it goes to the district.
            handled: dict[tuple[str, float | None], int] = {}
            subjects = sorted(hazard_subject(h["id"]) for h in overdue)
            for i in range(0, len(subjects), SUBJECTS_PER_QUERY):
                for r in conn.execute(select(Alert.subject, Alert.escalation_level, Alert.details).where(
                        Alert.type == HAZARD_OVERDUE, Alert.subject.in_(subjects[i:i + SUBJECTS_PER_QUERY]),
                        Alert.state.in_(("resolved", "closed")), Alert.outcome != "rectified")):
                    k = (r.subject, (r.details or {}).get("deadline"))
                    handled[k] = max(handled.get(k, 0), r.escalation_level)
            changed: list[int] = []
            wanted = set()
            for h in overdue:
                subject = hazard_subject(h["id"])
                wanted.add(subject)
                days = (now - h["deadline"]) / 86400.0
                level = 2 if now - h["deadline"] > escalate_after_s else 1
                row = active.get(subject)
                if row is None and handled.get((subject, h["deadline"]), 0) >= level:
                    continue
                if row is None:
                    alert, rec = new_alert(
                        HAZARD_OVERDUE, subject, severity=severity_for(HAZARD_OVERDUE, h["level"]), at=now,
                        first_seen=h["deadline"], enterprise_id=h["enterprise_id"], street_id=h["street_id"],
                        grid_id=h["grid_id"], escalation_level=level,
                        note=hazard_overdue_note(h["id"], days),
                        details={"hazard_id": h["id"], "category": h["category"], "level": h["level"],
                                 "deadline": h["deadline"]})
                    changed.append(self.insert(conn, alert, rec, now).id)
                elif row.escalation_level < level:
                    alert = state_from_row(row)
                    rec = TransitionRecord(alert.state, alert.state, "escalate", SYSTEM.username, now,
                                           note=hazard_escalated_note(level, h["id"], days))
                    self.update(conn, dataclasses.replace(alert, escalation_level=level), row.version, [rec], now)
                    changed.append(row.id)
            for subject, row in active.items():
                if subject in wanted:
                    continue
                alert, rec = transition(state_from_row(row), "resolve", actor=SYSTEM.username, at=now,
                                        outcome="rectified", note=HAZARD_NO_LONGER_OVERDUE)
                self.update(conn, alert, row.version, [rec], now)
                changed.append(row.id)
            return changed

        return self.run_tx(tx)

    def _record_many(self, conn: Connection, fired: list[tuple[int, list[TransitionRecord]]]) -> None:
        """``_record`` for many alerts at once: one insert of all events, one chained audit append."""
        events, entries = [], []
        for alert_id, records in fired:
            for rec in records:
                events += [{"alert_id": alert_id, "from_state": st.from_state, "to_state": st.to_state,
                            "action": st.action, "actor": st.actor, "at": st.at, "note": st.note,
                            "note_typed": st.note_typed}
                           for st in rec.steps()]
                action, target, detail = alert_audit(alert_id, rec)
                entries.append((rec.actor, action, target, detail, rec.at))
        if events:
            conn.execute(insert(AlertEvent), events)
        audit.append_many(conn, entries)

    def first_time(self, conn: Connection, stream: str, key: str, entry_id: str,
                   rewind_above: str | None = None) -> bool:
        """Whether stream entry ``entry_id`` for ``key`` is newer than the last one
        applied (then it becomes the last one, in ``conn``'s transaction).  Entries
        of one key are applied in stream order, so "not newer" means "applied":
        read again after a crash between the commit and the XACK.

        ``rewind_above``: a mark above it is a fast clock's, and an entry at or below
        it is first seen and moves the mark back (alerts.rules.stale_future)."""
        row = conn.execute(select(StreamMark.last_id).where(StreamMark.stream == stream, StreamMark.key == key)
                           ).first()
        if row is not None and _stream_id(entry_id) <= _stream_id(row.last_id):
            edge = None if rewind_above is None else _stream_id(rewind_above)
            if edge is None or not _stream_id(row.last_id) > edge >= _stream_id(entry_id):
                return False
        now = time.time()
        if row is None:
            conn.execute(insert(StreamMark).values(stream=stream, key=key, last_id=entry_id, at=now))
        else:
            # Compare and set: two engines can hold the same entry for a moment (the
            # lease moving after a Redis failover), and the mark read above may
            # already be stale (read committed; SQLite's driver begins a transaction
            # only at the first write).  The loser runs again (run_tx) and finds it applied.
            res = conn.execute(update(StreamMark).where(StreamMark.stream == stream, StreamMark.key == key,
                                                        StreamMark.last_id == row.last_id)
                               .values(last_id=entry_id, at=now))
            if res.rowcount != 1:
                raise LostRace(f"{stream} {key}: another engine applied an entry meanwhile")
        return True

    # --- reads of the alert engine ------------------------------------------------
    def enterprise_area(self, enterprise_id: str) -> tuple[str | None, str | None] | None:
        """(street_id, grid_id) of an enterprise; None for an unknown one."""
        with self.engine.connect() as conn:
            ent = conn.execute(select(Enterprise.street_id, Enterprise.grid_id)
                               .where(Enterprise.id == enterprise_id)).first()
        return None if ent is None else (ent.street_id, ent.grid_id)

    def notify(self, alert_ids: Iterable[int]) -> None:
        """Tell the screens (after the commit): the alerts version, then the live
        version and the change stream (which the event stream pushes)."""
        ids = ",".join(str(i) for i in alert_ids)
        if not ids:
            return
        self.live.publish_change("alert", ids, also_bump="alerts:ver")

    def alerts_version(self) -> int:
        """Bumped by every alert change (``notify``): an unchanged version means unchanged alerts."""
        return int(self.live.r.get(self.live.key("alerts", "ver")) or 0)

    def run_tx(self, fn):
        """Run fn(conn) in a transaction, retrying when it lost a race (not on Conflict)."""
        for attempt in range(TX_RETRIES):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except IntegrityError:
                if attempt == TX_RETRIES - 1:
                    raise
            except OperationalError as e:
                if "locked" not in str(e) or attempt == TX_RETRIES - 1:
                    raise
            except LostRace:
                if attempt == TX_RETRIES - 1:
                    raise
            time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    # --- people's actions -------------------------------------------------------
    def act(self, alert_id: int, action: str, principal: Principal, *, note: str | None = None,
            assignee_id: str | None = None, outcome: str | None = None, at: float | None = None,
            target_enterprise_id: str | None = None, take_over: bool = False) -> dict:
        """One lifecycle step by a person (or by the system, e.g. arrival by GPS).

        An officer's ``assign`` is "on my way": to their own linked inspector only (an
        account without one cannot take an alarm), and an alarm already assigned to
        someone else is taken over only with ``take_over`` (the screen asks first); the
        takeover is audited (``alert.takeover``, naming both inspectors).  An officer's
        ``arrive`` is refused unless the alarm was sent to their own inspector.
        """
        if principal.role not in MANAGER_ROLES and principal.role != "officer":
            raise PermissionError(f"role {principal.role} may not change alerts")
        officer_assign = principal.role == "officer" and action == "assign"
        if principal.role == "officer":
            if action not in OFFICER_ACTIONS:
                raise PermissionError(f"officers may not {action}")
            if action == "assign":
                # "On my way": an officer can take an alarm, not hand it to others.
                me = principal.inspector_id
                if not me:
                    raise PermissionError(f"{principal.username} has no linked inspector: cannot take an alarm")
                if assignee_id not in (None, me):
                    raise PermissionError("officers may assign alarms only to themselves")
                assignee_id = me
        now = time.time() if at is None else at
        dispatch: dict | None = None

        def tx(conn: Connection):
            nonlocal dispatch
            row = conn.execute(select(Alert.__table__).where(Alert.id == alert_id)).first()
            if row is None:
                raise LookupError(f"no alert {alert_id}")
            if not principal.sees_area(row.street_id, row.grid_id):
                raise PermissionError(f"alert {alert_id} is outside {principal.username}'s area")
            alert = state_from_row(row)
            if action in ("assign", "reassign") and assignee_id is not None and conn.execute(
                    select(Inspector.id).where(Inspector.id == assignee_id)).first() is None:
                # Sent to no one: no dispatch would go out, and the alarm would no longer escalate.
                raise UnknownReference("unknown_inspector", f"no inspector {assignee_id!r}")
            if action == "reassign" and target_enterprise_id is not None and conn.execute(
                    select(Enterprise.id).where(Enterprise.id == target_enterprise_id)).first() is None:
                raise UnknownReference("unknown_enterprise", f"no enterprise {target_enterprise_id!r}")
            taken_from = None
            if principal.role == "officer" and action == "arrive" and row.assignee_id != principal.inspector_id:
                # Only the officer who was sent reports the arrival; another takes it over first.
                raise PermissionError(f"alert {alert_id} was sent to {row.assignee_id}, not to "
                                      f"{principal.inspector_id or principal.username}: take it over first")
            if officer_assign and row.assignee_id and row.assignee_id != assignee_id:
                if not take_over:
                    raise Conflict(f"alert {alert_id} is assigned to {row.assignee_id}; confirm the takeover")
                taken_from = row.assignee_id
            step_note = note if not taken_from else takeover_note(taken_from, assignee_id, note)
            if step_note is None and action == "assign" and assignee_id:
                # The history names who was sent, and whom they replace (history_note renders it).
                step_note = (f"sent {assignee_id} instead of {row.assignee_id}"
                             if row.assignee_id and row.assignee_id != assignee_id else f"sent {assignee_id}")
            # What the person typed, unchanged, is shown as typed; the notes composed here
            # (a takeover's, "sent ...") are the system's.
            new, rec = transition(alert, action, actor=principal.username, at=now, note=step_note,
                                  assignee_id=assignee_id, outcome=outcome,
                                  note_typed=step_note is not None and step_note == note)
            self.update(conn, new, row.version, [rec], now)
            if taken_from:
                audit.append(conn, principal.username, "alert.takeover", f"alert:{alert_id}",
                             {"from": taken_from, "to": assignee_id}, at=now)
            dispatch = None
            if action in ("assign", "reassign") and new.assignee_id:
                dispatch = self._dispatch(conn, new, principal.username, now, note,
                                          target_enterprise_id if action == "reassign" else None)
            return new

        new = self.run_tx(tx)
        self.after_transition(new, dispatch)
        return self.get(alert_id)

    def _dispatch(self, conn: Connection, alert: AlertState, issued_by: str, now: float, note: str | None,
                  target_enterprise_id: str | None = None) -> dict | None:
        """A dispatch task to the assignee: to the alert's enterprise, or (a
        reassignment) to where the second team should go instead."""
        insp = conn.execute(select(Inspector.id).where(Inspector.id == alert.assignee_id)).first()
        target = target_enterprise_id or alert.enterprise_id
        if insp is None or not target:
            return None  # an officer taking it personally, or nothing to drive to
        ent = conn.execute(select(Enterprise.id, Enterprise.name, Enterprise.lat, Enterprise.lon)
                           .where(Enterprise.id == target)).first()
        if ent is None:
            return None
        conn.execute(update(DispatchTask).where(DispatchTask.alert_id == alert.id, DispatchTask.state == "issued")
                     .values(state="cancelled"))
        task_id = uuid.uuid4().hex
        kind = "gas_alarm" if alert.type == "gas_alarm" else "reassign"
        reason = note or (f"{alert.type} #{alert.id}" if not target_enterprise_id
                          else f"{alert.type} #{alert.id} at {alert.enterprise_id}: go to overdue {ent.id} instead")
        conn.execute(insert(DispatchTask).values(
            id=task_id, kind=kind, alert_id=alert.id, inspector_id=alert.assignee_id, enterprise_id=ent.id,
            reason=reason, state="issued", issued_at=now, issued_by=issued_by))
        audit.append(conn, issued_by, "dispatch", f"inspector:{alert.assignee_id}",
                     {"task_id": task_id, "alert_id": alert.id, "enterprise_id": ent.id}, at=now)
        return {"task_id": task_id, "kind": kind, "enterprise_id": ent.id, "name": ent.name, "lat": ent.lat,
                "lon": ent.lon, "reason": reason, "issued_at": now, "issued_by": issued_by,
                "inspector_id": alert.assignee_id, "alert_id": alert.id}

    def after_transition(self, alert: AlertState, dispatch: dict | None) -> None:
        """Tell screens, queue the MQTT dispatch, and keep the GPS-arrival watch list."""
        r, key = self.live.r, self.live.key
        pipe = r.pipeline(transaction=False)
        if dispatch:
            pipe.xadd(key("outbox"), {"task": orjson.dumps(dispatch)}, maxlen=10000, approximate=True)
        watch = key("tasks", "active")
        if alert.state == "dispatched" and alert.assignee_id and dispatch:
            pipe.hset(watch, alert.assignee_id, orjson.dumps(
                {"alert_id": alert.id, "lat": dispatch["lat"], "lon": dispatch["lon"]}))
        elif alert.state != "dispatched" and alert.assignee_id and alert.type == "gas_alarm":
            pipe.hdel(watch, alert.assignee_id)
        pipe.execute()
        self.notify([alert.id])

    # --- suggestions -------------------------------------------------------------
    def second_team(self, alert: dict) -> str | None:
        """The inspector to move: the one who came second (duplicate, overlap) or is approaching."""
        if alert["type"] == "overlap_now":
            ids = (alert.get("details") or {}).get("inspector_ids") or []
            return ids[-1] if ids else None
        return alert.get("inspector_id")

    def reassignment(self, alert_id: int) -> dict | None:
        """Where to send the second team instead: the nearest overdue enterprise of its
        own unit (a street office: its street; district sections and agencies: the district)."""
        from alerts.dispatch import suggest_reassignment
        from data.models import Unit

        alert = self.get(alert_id)
        if alert is None:
            return None
        iid = self.second_team(alert)
        if not iid:
            return None
        fix = self.live.inspector_fixes([iid]).get(iid)
        now = time.time()
        with self.engine.connect() as conn:
            row = conn.execute(select(Inspector.unit_id, Unit.street_id).join(Unit, Unit.id == Inspector.unit_id)
                               .where(Inspector.id == iid)).first()
            if row is None:
                return None
            q = select(Enterprise.id, Enterprise.name, Enterprise.lat, Enterprise.lon, Enterprise.risk).where(
                Enterprise.next_due_at < now, Enterprise.id != alert["enterprise_id"])
            if row.street_id:
                q = q.where(Enterprise.street_id == row.street_id)
            overdue = [tuple(r) for r in conn.execute(q)]
            if fix is None:
                ent = conn.execute(select(Enterprise.lat, Enterprise.lon)
                                   .where(Enterprise.id == alert["enterprise_id"])).first()
                lat, lon = (ent.lat, ent.lon) if ent else (None, None)
            else:
                lat, lon = fix.lat, fix.lon
        if lat is None:
            return None
        s = suggest_reassignment(row.unit_id, lat, lon, overdue)
        if s is None:
            return None
        return {"inspector_id": iid, "unit_id": row.unit_id, "enterprise_id": s.id, "name": s.name, "risk": s.risk,
                "lat": s.lat, "lon": s.lon, "distance_m": round(s.distance_m, 1), "eta_s": round(s.eta_s)}

    def nearest(self, alert_id: int, k: int = 5) -> list[dict]:
        with self.engine.connect() as conn:
            row = conn.execute(select(Alert.enterprise_id, Alert.sensor_id).where(Alert.id == alert_id)).first()
            if row is None or not row.enterprise_id:
                return []
            ent = conn.execute(select(Enterprise.lat, Enterprise.lon).where(Enterprise.id == row.enterprise_id)).first()
            insp = {r.id: r for r in conn.execute(select(Inspector.id, Inspector.name, Inspector.unit_id))}
            busy = {r.inspector_id for r in conn.execute(
                select(DispatchTask.inspector_id).where(DispatchTask.state == "issued"))}
        if ent is None:
            return []
        fixes = self.live.inspector_fixes(insp)
        avail = self.live.availability("inspector")
        now = time.time()
        cands = [
            Candidate(i, f.lat, f.lon, online=not reported_offline(avail.get(i), f.ts) and now - f.ts < 600,
                      busy=i in busy, unit_id=insp[i].unit_id, name=insp[i].name)
            for i, f in fixes.items()
        ]
        return [
            {"id": s.id, "name": s.name, "unit": s.unit_id, "distance_m": round(s.distance_m, 1),
             "eta_s": round(s.eta_s), "lat": s.lat, "lon": s.lon}
            for s in rank_nearest(ent.lat, ent.lon, cands, k=k)
        ]


class LostRace(Exception):
    """A row this transaction read was changed by another before it wrote (run_tx runs it again)."""


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


__all__ = ["AlertStore", "Conflict", "TransitionNotAllowed", "SYSTEM", "queue_key"]
