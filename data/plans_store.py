"""Plans, conflicts, joint tasks and draws in SQL (issue 15; the rules are in plans/).

Every change runs in one transaction with its audit entry (``data.audit``).
Errors for the API: ``LookupError`` (404), ``PermissionError`` (403),
``plans.lifecycle.TransitionNotAllowed`` (409), ``RowErrors`` (400 with every
row's error), ``ValueError`` (400).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from data import audit
from data.models import (
    Alert,
    DrawRow,
    Enterprise,
    HazardRow,
    Inspector,
    JointTaskRow,
    PlanConflictRow,
    PlanItemRow,
    Unit,
    Visit,
    WeeklyPlan,
)
from geo.timefmt import iso
from plans import draw as drawing
from plans.actual import ItemRef, VisitRef, match
from plans.collisions import EnterpriseFacts, check_week
from plans.joint import make_joint_task
from plans.lifecycle import TransitionNotAllowed, editable, resolve_conflict, transition
from plans.model import PlanItem, day_start_ts, local_date, parse_week, week_dates, week_of, week_span_ts
from plans.rows import Lookup, split_list, validate_rows
from plans.targets import LOOKBACK_D, TargetFacts, rank

CHUNK = 500  # values bound into one IN (...)
MAX_ROWS = 5000  # rows of one plan (a unit's week)
FILE_COLUMNS = ("enterprise_id", "credit_code", "enterprise_name", "date", "inspector_ids", "purpose", "check_items")


class RowErrors(Exception):
    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} row errors")
        self.errors = errors


def _chunks(values: Sequence, n: int = CHUNK):
    for i in range(0, len(values), n):
        yield values[i:i + n]


def read_plan_file(filename: str, data: bytes) -> list[tuple[int, dict]]:
    """A CSV or XLSX plan file as (spreadsheet line number, fields) rows; the header is line 1.

    Column names as in FILE_COLUMNS (case and surrounding spaces ignored).  Raises
    RowErrors (row 1) for a file that cannot be read or has no enterprise column."""
    import pandas as pd

    name = (filename or "").lower()
    try:
        if name.endswith((".xlsx", ".xlsm")):
            # One row past the limit is enough to refuse the file: a 1 MB XLSX expanding to
            # 200,000 rows took 8.7 s of a web worker's CPU to be read whole, then refused.
            df = pd.read_excel(io.BytesIO(data), dtype=str, engine="openpyxl", nrows=MAX_ROWS + 1)
        elif name.endswith(".csv") or not name:
            df = pd.read_csv(io.BytesIO(data), dtype=str, encoding="utf-8-sig", keep_default_na=False,
                             nrows=MAX_ROWS + 1)
        else:
            raise RowErrors([{"row": 1, "reason": "bad_file", "detail": "the file must be .csv or .xlsx"}])
    except RowErrors:
        raise
    except Exception as e:  # noqa: BLE001 - pandas/openpyxl raise many kinds for a broken file
        raise RowErrors([{"row": 1, "reason": "bad_file", "detail": f"cannot read the file: {e}"}]) from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    if not {"enterprise_id", "credit_code", "enterprise_name"} & set(df.columns):
        raise RowErrors([{"row": 1, "reason": "bad_header",
                          "detail": "a column enterprise_id, credit_code or enterprise_name is required"}])
    if len(df) > MAX_ROWS:
        raise RowErrors([{"row": 1, "reason": "too_many_rows", "detail": f"at most {MAX_ROWS} rows"}])
    cols = [c for c in FILE_COLUMNS if c in df.columns]
    rows = []
    for k, rec in enumerate(df[cols].to_dict("records")):
        rows.append((k + 2, {c: (None if v is None or (isinstance(v, float) and v != v) else v) for c, v in rec.items()}))
    return rows


class PlansStore:
    def __init__(self, engine: Engine, *, duplicate_window_s: float, intervals_d: dict[str, int],
                 tolerance_d: int = 1):
        self.engine = engine
        self.duplicate_window_s = duplicate_window_s
        self.intervals_d = dict(intervals_d)
        self.tolerance_d = tolerance_d

    # --- units and scope ---------------------------------------------------------
    def unit(self, unit_id: str):
        with self.engine.connect() as conn:
            return conn.execute(select(Unit.id, Unit.kind, Unit.street_id, Unit.name).where(Unit.id == unit_id)).first()

    def units(self) -> list[tuple[str, str]]:
        """(id, name) of every unit, by id."""
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(Unit.id, Unit.name).order_by(Unit.id))]

    def own_units(self, principal) -> set[str]:
        """The units an officer plans for: the street offices of their streets and their own inspector's unit."""
        with self.engine.connect() as conn:
            out = set()
            if principal.streets:
                out |= set(conn.execute(select(Unit.id).where(Unit.kind == "street_office",
                                                              Unit.street_id.in_(list(principal.streets)))).scalars())
            if principal.inspector_id:
                u = conn.execute(select(Inspector.unit_id).where(Inspector.id == principal.inspector_id)).scalar()
                if u:
                    out.add(u)
        return out

    # --- plans -------------------------------------------------------------------
    def _lookup(self, conn: Connection, rows: Sequence[tuple[int, dict]]) -> Lookup:
        def vals(field, upper=False):
            out = {str(r.get(field)).strip() for _, r in rows if isinstance(r, dict) and r.get(field) not in (None, "")}
            return sorted({v.upper() for v in out} if upper else out)

        ids: set[str] = set()
        codes: dict[str, str] = {}
        names: dict[str, list[str]] = {}
        for chunk in _chunks(vals("enterprise_id")):
            ids |= set(conn.execute(select(Enterprise.id).where(Enterprise.id.in_(chunk))).scalars())
        for chunk in _chunks(vals("credit_code", upper=True)):
            codes.update({c.upper(): i for i, c in conn.execute(
                select(Enterprise.id, Enterprise.credit_code).where(func.upper(Enterprise.credit_code).in_(chunk)))})
        for chunk in _chunks(vals("enterprise_name")):
            for i, n in conn.execute(select(Enterprise.id, Enterprise.name).where(Enterprise.name.in_(chunk))
                                     .order_by(Enterprise.id)):
                names.setdefault(n, []).append(i)
        insp_ids = set()
        for _, r in rows:
            if isinstance(r, dict):
                insp_ids |= set(split_list(r.get("inspector_ids")))
        units = {}
        for chunk in _chunks(sorted(insp_ids)):
            units.update(dict(conn.execute(select(Inspector.id, Inspector.unit_id).where(Inspector.id.in_(chunk))).all()))
        return Lookup(frozenset(ids), codes, names, units)

    def save_plan(self, unit_id: str, week: str, rows: Sequence[tuple[int, dict]], actor: str, now: float,
                  source: str = "json") -> dict:
        """Validate every row and store the unit's plan for the week as a draft (replacing the
        items of an existing draft).  RowErrors with every error, and nothing stored, when
        any row is wrong; TransitionNotAllowed when the week's plan is no longer a draft."""
        parse_week(week)
        if len(rows) > MAX_ROWS:
            raise RowErrors([{"row": 1, "reason": "too_many_rows", "detail": f"at most {MAX_ROWS} rows"}])
        with self.engine.begin() as conn:
            if conn.execute(select(Unit.id).where(Unit.id == unit_id)).first() is None:
                raise LookupError(f"no unit {unit_id}")
            items, errors = validate_rows(rows, unit_id, week, self._lookup(conn, rows))
            if errors:
                raise RowErrors(errors)
            cur = conn.execute(select(WeeklyPlan.id, WeeklyPlan.state).where(
                WeeklyPlan.unit_id == unit_id, WeeklyPlan.week == week)).first()
            if cur is not None:
                if not editable(cur.state):
                    raise TransitionNotAllowed("plan", cur.state, "edit")
                plan_id = cur.id
                conn.execute(delete(PlanItemRow).where(PlanItemRow.plan_id == plan_id))
                conn.execute(update(WeeklyPlan).where(WeeklyPlan.id == plan_id).values(updated_at=now))
                action = "plan_replace"
            else:
                plan_id = conn.execute(insert(WeeklyPlan).values(
                    unit_id=unit_id, week=week, state="draft", created_at=now, created_by=actor, updated_at=now)
                ).inserted_primary_key[0]
                action = "plan_create"
            if items:
                conn.execute(insert(PlanItemRow), [
                    {"plan_id": plan_id, "enterprise_id": it.enterprise_id, "date": it.date,
                     "inspector_ids": list(it.inspector_ids), "purpose": it.purpose,
                     "check_items": list(it.check_items), "state": "planned"} for it in items])
            audit.append(conn, actor, action, f"plan:{plan_id}",
                         {"unit_id": unit_id, "week": week, "items": len(items), "source": source}, at=now)
            return self._plan(conn, plan_id)

    def _plan(self, conn: Connection, plan_id: int) -> dict:
        p = conn.execute(select(WeeklyPlan.__table__).where(WeeklyPlan.id == plan_id)).first()
        if p is None:
            raise LookupError(f"no plan {plan_id}")
        return self._plans_json(conn, [p])[0]

    def _plans_json(self, conn: Connection, plans) -> list[dict]:
        ids = [p.id for p in plans]
        items: dict[int, list[dict]] = {}
        for chunk in _chunks(ids):
            for r in conn.execute(select(PlanItemRow.__table__).where(PlanItemRow.plan_id.in_(chunk))
                                  .order_by(PlanItemRow.date, PlanItemRow.id)):
                items.setdefault(r.plan_id, []).append({
                    "id": r.id, "enterprise_id": r.enterprise_id, "date": r.date,
                    "inspector_ids": list(r.inspector_ids or []), "purpose": r.purpose,
                    "check_items": list(r.check_items or []), "state": r.state, "joint_task_id": r.joint_task_id})
        return [{"id": p.id, "unit_id": p.unit_id, "week": p.week, "state": p.state,
                 "submitted_at": iso(p.submitted_at), "items": items.get(p.id, [])}
                for p in plans]

    def get_plan(self, plan_id: int) -> dict:
        with self.engine.connect() as conn:
            return self._plan(conn, plan_id)

    def list_plans(self, week: str | None = None, unit_ids: Iterable[str] | None = None) -> list[dict]:
        q = select(WeeklyPlan.__table__).order_by(WeeklyPlan.week, WeeklyPlan.unit_id)
        if week:
            q = q.where(WeeklyPlan.week == week)
        if unit_ids is not None:
            q = q.where(WeeklyPlan.unit_id.in_(list(unit_ids)))
        with self.engine.connect() as conn:
            return self._plans_json(conn, conn.execute(q).all())

    def act_on_plan(self, plan_id: int, action: str, actor: str, now: float) -> dict:
        with self.engine.begin() as conn:
            p = conn.execute(select(WeeklyPlan.id, WeeklyPlan.state, WeeklyPlan.unit_id, WeeklyPlan.week)
                             .where(WeeklyPlan.id == plan_id)).first()
            if p is None:
                raise LookupError(f"no plan {plan_id}")
            to = transition(p.state, action)
            values = {"state": to, "updated_at": now}
            if action == "submit":  # the first submission is kept (a plan sent back keeps its date)
                values["submitted_at"] = func.coalesce(WeeklyPlan.submitted_at, now)
            done = conn.execute(update(WeeklyPlan).where(WeeklyPlan.id == plan_id, WeeklyPlan.state == p.state)
                                .values(**values)).rowcount
            if done != 1:
                raise TransitionNotAllowed("plan", "changed", action)
            audit.append(conn, actor, f"plan_{action}", f"plan:{plan_id}",
                         {"from": p.state, "to": to, "unit_id": p.unit_id, "week": p.week}, at=now)
            return self._plan(conn, plan_id)

    def plan_unit(self, plan_id: int) -> str:
        with self.engine.connect() as conn:
            u = conn.execute(select(WeeklyPlan.unit_id).where(WeeklyPlan.id == plan_id)).scalar()
        if u is None:
            raise LookupError(f"no plan {plan_id}")
        return u

    # --- the week's items and facts ------------------------------------------------
    def _week_items(self, conn: Connection, week: str, unit_ids: Iterable[str] | None = None) -> list:
        q = (select(PlanItemRow.__table__, WeeklyPlan.unit_id).join(WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id)
             .where(WeeklyPlan.week == week).order_by(PlanItemRow.id))
        if unit_ids is not None:
            q = q.where(WeeklyPlan.unit_id.in_(list(unit_ids)))
        return conn.execute(q).all()

    @staticmethod
    def _item(r) -> PlanItem:
        return PlanItem(r.id, r.unit_id, r.enterprise_id, r.date, tuple(r.inspector_ids or ()), r.purpose,
                        tuple(r.check_items or ()), r.state)

    def collision_inputs(self, conn: Connection, week: str):
        # Only the columns the check reads (the JSON columns cost most of a city-wide read).
        rows = conn.execute(
            select(PlanItemRow.id, WeeklyPlan.unit_id, PlanItemRow.enterprise_id, PlanItemRow.date,
                   PlanItemRow.purpose, PlanItemRow.state)
            .join(WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id).where(WeeklyPlan.week == week)).all()
        items = [PlanItem(r.id, r.unit_id, r.enterprise_id, r.date, (), r.purpose, (), r.state) for r in rows]
        eids = sorted({i.enterprise_id for i in items})
        facts: dict[str, EnterpriseFacts] = {}
        q = select(Enterprise.id, Enterprise.risk, Enterprise.last_inspected_at)
        # Past a few thousand planned enterprises one scan beats many IN (...) lookups.
        chunks = [None] if len(eids) > 10 * CHUNK else list(_chunks(eids))
        wanted = set(eids)
        for chunk in chunks:
            for e in conn.execute(q if chunk is None else q.where(Enterprise.id.in_(chunk))):
                if e.id in wanted:
                    facts[e.id] = EnterpriseFacts(e.risk, e.last_inspected_at)
        start, end = week_span_ts(week)
        visits: dict[str, list[tuple[float, int]]] = {}
        for v in conn.execute(select(Visit.id, Visit.enterprise_id, Visit.start_ts).where(
                Visit.start_ts >= start - self.duplicate_window_s, Visit.start_ts < end).order_by(Visit.start_ts)):
            if v.enterprise_id in wanted:
                visits.setdefault(v.enterprise_id, []).append((v.start_ts, v.id))
        return items, facts, visits

    # --- conflicts -------------------------------------------------------------------
    def conflicts(self, week: str, now: float) -> list[dict]:
        """Run the week's collision check and bring the stored conflicts up to date: new
        ones are added, open ones no longer found are removed, resolved ones stay."""
        parse_week(week)
        with self.engine.begin() as conn:
            items, facts, visits = self.collision_inputs(conn, week)
            found = check_week(week, items, facts, visits, duplicate_window_s=self.duplicate_window_s,
                               intervals_d=self.intervals_d)
            c = PlanConflictRow
            stored = {r.key: r for r in conn.execute(
                select(c.id, c.key, c.resolved, c.resolution, c.resolved_by, c.joint_task_id).where(c.week == week))}
            keys = {x.key for x in found}
            gone = [r.id for k, r in stored.items() if not r.resolved and k not in keys]
            for chunk in _chunks(gone):
                conn.execute(delete(c).where(c.id.in_(chunk)))
            new = [x for x in found if x.key not in stored]
            if new:
                conn.execute(insert(c), [
                    {"week": week, "key": x.key, "kind": x.kind, "enterprise_id": x.enterprise_id,
                     "item_ids": list(x.item_ids), "suggestion": x.suggestion, "detail": x.detail,
                     "resolved": False, "created_at": now} for x in new])
                ids = dict(conn.execute(select(c.key, c.id).where(c.week == week, c.resolved.is_(False))).all())
            else:
                ids = {k: r.id for k, r in stored.items()}
            # The answer: what the check found (with the stored state), plus the resolved
            # conflicts it no longer finds (their items were dropped or moved), read back whole.
            out = []
            for x in found:
                r = stored.get(x.key)
                out.append({"id": ids[x.key] if r is None else r.id, "kind": x.kind, "enterprise_id": x.enterprise_id,
                            "item_ids": list(x.item_ids), "suggestion": x.suggestion,
                            "resolved": bool(r is not None and r.resolved), "week": week, "detail": x.detail,
                            "resolution": r.resolution if r is not None else None,
                            "resolved_by": r.resolved_by if r is not None else None,
                            "joint_task_id": r.joint_task_id if r is not None else None})
            old = [r.id for k, r in stored.items() if r.resolved and k not in keys]
            for chunk in _chunks(old):
                out.extend(self._conflict_json(r) for r in conn.execute(select(c.__table__).where(c.id.in_(chunk))))
        out.sort(key=lambda x: x["id"])
        return out

    @staticmethod
    def _conflict_json(r) -> dict:
        return {"id": r.id, "kind": r.kind, "enterprise_id": r.enterprise_id, "item_ids": list(r.item_ids),
                "suggestion": r.suggestion, "resolved": bool(r.resolved), "week": r.week, "detail": r.detail or {},
                "resolution": r.resolution, "resolved_by": r.resolved_by, "joint_task_id": r.joint_task_id}

    def resolve(self, conflict_id: int, action: str, actor: str, now: float, *, date: str | None = None,
                item_ids: Sequence[int] | None = None) -> tuple[dict, dict | None]:
        """Resolve one conflict; returns (conflict, joint task or None).

        joint: every item of the conflict becomes one joint task (two or more units);
        shift: the items (default: the conflict's) move to ``date`` (default: the suggested day);
        drop:  the items (default: the conflict's; a same_week conflict needs ``item_ids``) are dropped."""
        with self.engine.begin() as conn:
            c = conn.execute(select(PlanConflictRow.__table__).where(PlanConflictRow.id == conflict_id)).first()
            if c is None:
                raise LookupError(f"no conflict {conflict_id}")
            resolve_conflict(bool(c.resolved), action)
            ids = list(c.item_ids)
            if item_ids is not None:
                bad = [i for i in item_ids if i not in ids]
                if bad or not item_ids:
                    raise ValueError(f"item_ids must be items of the conflict {ids}")
                ids = [int(i) for i in item_ids]
            rows = conn.execute(select(PlanItemRow.__table__, WeeklyPlan.unit_id)
                                .join(WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id)
                                .where(PlanItemRow.id.in_(ids))).all()
            live = [r for r in rows if r.state == "planned"]
            if len(live) != len(ids):
                raise TransitionNotAllowed("conflict", "stale", action)  # items merged or dropped meanwhile
            joint = None
            changes: dict = {"item_ids": ids}
            if action == "joint":
                if c.kind != "same_week" or len({r.unit_id for r in live}) < 2:
                    raise ValueError("joint needs the items of two or more units (a same_week conflict)")
                kinds = dict(conn.execute(select(Unit.id, Unit.kind).where(Unit.id.in_({r.unit_id for r in live}))).all())
                t = make_joint_task([self._item(r) for r in live], kinds)
                jid = conn.execute(insert(JointTaskRow).values(
                    week=c.week, enterprise_id=t.enterprise_id, date=t.date, lead_unit_id=t.lead_unit_id,
                    unit_ids=list(t.unit_ids), inspector_ids=list(t.inspector_ids), item_ids=list(t.item_ids),
                    created_at=now, created_by=actor)).inserted_primary_key[0]
                conn.execute(update(PlanItemRow).where(PlanItemRow.id.in_(ids)).values(state="joint", joint_task_id=jid))
                joint = self._joint(conn, jid)
                changes["joint_task_id"] = jid
            elif action == "shift":
                target = date or (c.detail or {}).get("shift_to")
                if not target:
                    raise ValueError("shift needs a date (this conflict suggests none)")
                if target not in week_dates(c.week):
                    raise ValueError(f"{target} is not in {c.week}")
                if c.kind == "same_week" and item_ids is None:
                    raise ValueError("shifting a same_week conflict needs item_ids (whose visit moves)")
                conn.execute(update(PlanItemRow).where(PlanItemRow.id.in_(ids)).values(date=target))
                changes["date"] = target
            else:  # drop
                if c.kind == "same_week" and item_ids is None:
                    raise ValueError("dropping from a same_week conflict needs item_ids (whose visit goes)")
                conn.execute(update(PlanItemRow).where(PlanItemRow.id.in_(ids)).values(state="dropped"))
            conn.execute(update(PlanConflictRow).where(PlanConflictRow.id == conflict_id).values(
                resolved=True, resolution=action, resolved_by=actor, resolved_at=now,
                joint_task_id=changes.get("joint_task_id")))
            audit.append(conn, actor, "conflict_resolve", f"conflict:{conflict_id}",
                         {"action": action, "kind": c.kind, "enterprise_id": c.enterprise_id, "week": c.week,
                          **changes}, at=now)
            out = self._conflict_json(conn.execute(select(PlanConflictRow.__table__)
                                                   .where(PlanConflictRow.id == conflict_id)).first())
        return out, joint

    # --- joint tasks -------------------------------------------------------------------
    def _joint(self, conn: Connection, jid: int) -> dict:
        r = conn.execute(select(JointTaskRow.__table__).where(JointTaskRow.id == jid)).first()
        return self._joint_json(r)

    @staticmethod
    def _joint_json(r) -> dict:
        return {"id": r.id, "enterprise_id": r.enterprise_id, "date": r.date, "lead_unit_id": r.lead_unit_id,
                "unit_ids": list(r.unit_ids), "inspector_ids": list(r.inspector_ids), "item_ids": list(r.item_ids),
                "week": r.week}

    def joint_tasks(self, week: str | None = None, inspector_id: str | None = None) -> list[dict]:
        q = select(JointTaskRow.__table__).order_by(JointTaskRow.date, JointTaskRow.id)
        if week:
            q = q.where(JointTaskRow.week == week)
        with self.engine.connect() as conn:
            out = [self._joint_json(r) for r in conn.execute(q)]
        if inspector_id:
            out = [t for t in out if inspector_id in t["inspector_ids"]]
        return out

    def enterprise_places(self, ids: Iterable[str]) -> dict[str, tuple[str, float, float]]:
        out = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                for e in conn.execute(select(Enterprise.id, Enterprise.name, Enterprise.lat, Enterprise.lon)
                                      .where(Enterprise.id.in_(chunk))):
                    out[e.id] = (e.name, e.lat, e.lon)
        return out

    def inspector_units(self, ids: Iterable[str]) -> dict[str, str]:
        """Inspector id -> unit id, for the inspectors named."""
        out = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(ids))):
                out.update(conn.execute(select(Inspector.id, Inspector.unit_id).where(Inspector.id.in_(chunk))).all())
        return out

    # --- plan against actual ---------------------------------------------------------------
    def actual(self, week: str, unit_ids: Sequence[str] | None, now: float) -> dict:
        """Plan against actual for the week (docs/plans.md): ``unit_ids`` None is every unit."""
        start, end = week_span_ts(week)
        with self.engine.connect() as conn:
            rows = [r for r in self._week_items(conn, week) if r.state != "dropped"]
            joints = {r.id: list(r.unit_ids) for r in conn.execute(
                select(JointTaskRow.id, JointTaskRow.unit_ids).where(JointTaskRow.week == week))}
            items = []
            for r in rows:
                units = tuple(joints.get(r.joint_task_id, [r.unit_id])) if r.joint_task_id else (r.unit_id,)
                if unit_ids is not None and not set(units) & set(unit_ids):
                    continue
                items.append(ItemRef(r.id, r.enterprise_id, r.date, units))
            tol = self.tolerance_d * 86400
            q = select(Visit.id, Visit.enterprise_id, Visit.unit_id, Visit.start_ts).where(
                Visit.start_ts >= start - tol, Visit.start_ts < end + tol)
            visits = [VisitRef(v.id, v.enterprise_id, v.unit_id, v.start_ts) for v in conn.execute(q)]
            resolved = conn.execute(select(func.count()).select_from(PlanConflictRow).where(
                PlanConflictRow.week == week, PlanConflictRow.resolved.is_(True))).scalar_one()
            dups = conn.execute(select(func.count()).select_from(Visit).where(
                Visit.start_ts >= start, Visit.start_ts < end, Visit.duplicate_of.is_not(None))).scalar_one()
        if unit_ids is not None:
            visits = [v for v in visits if v.unit_id in unit_ids]
        out = match(items, visits, tolerance_d=self.tolerance_d, today=local_date(now))
        # Visits outside the week (inside the tolerance margin) only count when they complete an item.
        out["unplanned_visits"] = self._in_week(out["unplanned_visits"], visits, start, end)
        out["kpis"] = {"items": len(items), "done": sum(1 for i in out["items"] if i["done"]),
                       "unplanned_visits": len(out["unplanned_visits"]), "conflicts_resolved": resolved,
                       "duplicates_happened": dups}
        return out

    def day_tasks(self, inspector_id: str, date: str, now: float) -> list[dict]:
        """One inspector's tasks of one day (China date; docs/api.md, ``GET /tasks``): the
        items of approved plans that name them, and the joint tasks they take part in (an
        item merged into a joint task shows as that task), each with ``done`` and the
        ``visit_id`` that did it, exactly as ``actual`` matches them for the whole week (the
        matching of an item depends only on the items and visits at its enterprise, so the
        week's items and visits at these enterprises give the same answer)."""
        week = week_of(date)
        start, end = week_span_ts(week)
        tol = self.tolerance_d * 86400
        with self.engine.connect() as conn:
            joint_rows = [r for r in conn.execute(select(JointTaskRow.__table__).where(
                JointTaskRow.week == week, JointTaskRow.date == date)) if inspector_id in (r.inspector_ids or ())]
            mine = [r for r in conn.execute(
                select(PlanItemRow.__table__, WeeklyPlan.unit_id).join(WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id)
                .where(WeeklyPlan.week == week, WeeklyPlan.state == "approved", PlanItemRow.date == date,
                       PlanItemRow.state == "planned"))
                if inspector_id in (r.inspector_ids or ())]
            ents = sorted({r.enterprise_id for r in mine} | {j.enterprise_id for j in joint_rows})
            if not ents:
                return []
            joints = {r.id: tuple(r.unit_ids) for r in conn.execute(
                select(JointTaskRow.id, JointTaskRow.unit_ids).where(JointTaskRow.week == week))}
            items, visits = [], []
            for chunk in _chunks(ents):
                for r in conn.execute(select(PlanItemRow.id, PlanItemRow.enterprise_id, PlanItemRow.date,
                                             PlanItemRow.state, PlanItemRow.joint_task_id, WeeklyPlan.unit_id)
                                      .join(WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id)
                                      .where(WeeklyPlan.week == week, PlanItemRow.enterprise_id.in_(chunk))):
                    if r.state != "dropped":
                        units = joints.get(r.joint_task_id, (r.unit_id,)) if r.joint_task_id else (r.unit_id,)
                        items.append(ItemRef(r.id, r.enterprise_id, r.date, tuple(units)))
                visits += [VisitRef(v.id, v.enterprise_id, v.unit_id, v.start_ts) for v in conn.execute(
                    select(Visit.id, Visit.enterprise_id, Visit.unit_id, Visit.start_ts).where(
                        Visit.enterprise_id.in_(chunk), Visit.start_ts >= start - tol, Visit.start_ts < end + tol))]
            joint_items: dict[int, list] = {j.id: [] for j in joint_rows}
            if joint_items:
                for r in conn.execute(select(PlanItemRow.id, PlanItemRow.joint_task_id, PlanItemRow.purpose,
                                             WeeklyPlan.unit_id)
                                      .join(WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id)
                                      .where(PlanItemRow.joint_task_id.in_(list(joint_items)))
                                      .order_by(PlanItemRow.id)):
                    joint_items[r.joint_task_id].append(r)
        matched = {m["item_id"]: m for m in match(items, visits, tolerance_d=self.tolerance_d,
                                                 today=local_date(now))["items"]}
        places = self.enterprise_places(ents)

        def task(task_id, kind, ent, lead, units, item_ids, purpose):
            name, lat, lon = places.get(ent, (ent, None, None))
            hit = next((matched[i] for i in item_ids if i in matched and matched[i]["done"]), None)
            return {"task_id": task_id, "kind": kind, "enterprise_id": ent, "name": name, "lat": lat, "lon": lon,
                    "date": date, "lead_unit_id": lead, "unit_ids": list(units), "purpose": purpose,
                    "done": hit is not None, "visit_id": hit["visit_id"] if hit else None}

        out = [task(f"item-{r.id}", "planned", r.enterprise_id, r.unit_id, [r.unit_id], [r.id], r.purpose)
               for r in mine]
        for j in joint_rows:
            rows = joint_items[j.id]
            # The joint inspection's purpose is the lead unit's (the other units join it).
            purpose = next((r.purpose for r in rows if r.unit_id == j.lead_unit_id), rows[0].purpose if rows else None)
            out.append(task(f"joint-{j.id}", "joint", j.enterprise_id, j.lead_unit_id, j.unit_ids,
                            [r.id for r in rows], purpose))
        return sorted(out, key=lambda t: (t["done"], t["name"], t["task_id"]))

    def day_summary(self, date: str, now: float, limit: int = 20) -> dict:
        """The dispatcher's "today": the day's plan items (every unit) and how many a visit
        has done, and the day's unplanned visits, newest first (the plan-against-actual
        matching of ``actual`` for the day's week)."""
        week = week_of(date)
        out = self.actual(week, None, now)
        start = day_start_ts(date)
        with self.engine.connect() as conn:
            today = {r.id for r in conn.execute(select(PlanItemRow.id).join(
                WeeklyPlan, WeeklyPlan.id == PlanItemRow.plan_id).where(
                WeeklyPlan.week == week, PlanItemRow.date == date))}
            unplanned = set(out["unplanned_visits"])
            rows = [r for r in conn.execute(
                select(Visit.id, Visit.enterprise_id, Visit.inspector_id, Visit.unit_id, Visit.start_ts)
                .where(Visit.start_ts >= start, Visit.start_ts < start + 86400)
                .order_by(Visit.start_ts.desc(), Visit.id.desc())) if r.id in unplanned]
        items = [i for i in out["items"] if i["item_id"] in today]
        return {"date": date, "items": len(items), "done": sum(1 for i in items if i["done"]),
                "unplanned_visits": len(rows),
                "recent_unplanned": [{"visit_id": r.id, "enterprise_id": r.enterprise_id,
                                      "inspector_id": r.inspector_id, "unit_id": r.unit_id, "start_ts": r.start_ts}
                                     for r in rows[:limit]]}

    @staticmethod
    def _in_week(ids, visits, start, end):
        ts = {v.visit_id: v.start_ts for v in visits}
        return [i for i in ids if start <= ts[i] < end]

    # --- draws ------------------------------------------------------------------------------
    def draw_pool(self, conn: Connection, pool_filter: dict, now: float) -> dict:
        q = select(Enterprise.id, Enterprise.risk, Enterprise.last_inspected_at)
        if pool_filter.get("street"):
            q = q.where(Enterprise.street_id.in_(pool_filter["street"]))
        if pool_filter.get("risk"):
            q = q.where(Enterprise.risk.in_(pool_filter["risk"]))
        if pool_filter.get("industry"):
            q = q.where(Enterprise.industry.in_(pool_filter["industry"]))
        ents = conn.execute(q).all()
        # The last inspector of each enterprise: the inspector of its latest visit.
        latest = (select(Visit.enterprise_id, func.max(Visit.start_ts).label("ts"))
                  .group_by(Visit.enterprise_id).subquery())
        last = dict(conn.execute(select(Visit.enterprise_id, Visit.inspector_id).join(
            latest, and_(latest.c.enterprise_id == Visit.enterprise_id, latest.c.ts == Visit.start_ts))).all())
        today = local_date(now)
        planned = set(conn.execute(select(PlanItemRow.enterprise_id).where(
            PlanItemRow.date >= today, PlanItemRow.state != "dropped").distinct()).scalars())
        entries = drawing.eligible_pool(((e.id, e.risk, e.last_inspected_at, last.get(e.id, "")) for e in ents),
                                        now=now, exclude_inspected_days=pool_filter.get("exclude_inspected_days"),
                                        planned_ids=planned if pool_filter.get("exclude_planned", True) else ())
        inspectors = conn.execute(select(Inspector.id, Inspector.unit_id)).all()
        return drawing.canonical_pool(entries, [(i.id, i.unit_id) for i in inspectors])

    def create_draw(self, seed: str, pool_filter: dict, params: drawing.DrawParams, actor: str, now: float) -> dict:
        with self.engine.begin() as conn:
            pool = self.draw_pool(conn, pool_filter, now)
            picks = drawing.picks_json(drawing.run_draw(seed, pool, params))
            h = drawing.pool_hash(pool)
            did = conn.execute(insert(DrawRow).values(
                algorithm=drawing.ALGORITHM, seed=seed, params=drawing.canonical_json(params.as_dict()).decode(),
                pool_filter=drawing.canonical_json(pool_filter).decode(),
                pool=drawing.canonical_json(pool).decode(), pool_hash=h,
                picks=drawing.canonical_json(picks).decode(), created_at=now, created_by=actor)).inserted_primary_key[0]
            audit.append(conn, actor, "draw", f"draw:{did}",
                         {"seed": seed, "pool_hash": h, "pool_size": len(pool["enterprises"]),
                          "params": params.as_dict(), "filter": pool_filter,
                          "result_hash": drawing.pool_hash({"picks": picks}), "picks": picks}, at=now)
            return self._draw(conn, did)

    def _draw(self, conn: Connection, did: int) -> dict:
        r = conn.execute(select(DrawRow.id, DrawRow.algorithm, DrawRow.seed, DrawRow.params, DrawRow.pool_filter,
                                DrawRow.pool_hash, DrawRow.picks, DrawRow.created_at, DrawRow.created_by)
                         .where(DrawRow.id == did)).first()
        if r is None:
            raise LookupError(f"no draw {did}")
        return {"id": r.id, "seed": r.seed, "pool_hash": r.pool_hash, "picks": json.loads(r.picks),
                "algorithm": r.algorithm, "params": json.loads(r.params), "pool": json.loads(r.pool_filter),
                "created_at": r.created_at, "created_by": r.created_by}

    def get_draw(self, did: int) -> dict:
        with self.engine.connect() as conn:
            return self._draw(conn, did)

    def verify_draw(self, did: int) -> dict:
        with self.engine.connect() as conn:
            r = conn.execute(select(DrawRow.__table__).where(DrawRow.id == did)).first()
        if r is None:
            raise LookupError(f"no draw {did}")
        try:
            pool, params, picks = json.loads(r.pool), drawing.DrawParams.from_dict(json.loads(r.params)), json.loads(r.picks)
        except (ValueError, KeyError, TypeError):
            return {"id": did, "ok": False, "pool_hash_ok": False, "picks_ok": False}
        if r.algorithm != drawing.ALGORITHM:
            return {"id": did, "ok": False, "pool_hash_ok": False, "picks_ok": False}
        return {"id": did, **drawing.verify(r.seed, pool, params, r.pool_hash, picks)}

    # --- targets ---------------------------------------------------------------------------
    def targets(self, now: float, limit: int | None = None,
                red_light: Mapping[str, Sequence[str]] | None = None) -> list[dict]:
        """The targeting list (plans.targets); ``red_light``: enterprise id -> its red-light
        reasons (``HazardStore.red_light``), which raise it."""
        since = now - LOOKBACK_D * 86400
        red_light = red_light or {}
        with self.engine.connect() as conn:
            alarms = dict(conn.execute(select(Alert.enterprise_id, func.count()).where(
                Alert.type == "gas_alarm", Alert.first_seen >= since, Alert.enterprise_id.is_not(None))
                .group_by(Alert.enterprise_id)).all())
            dups = dict(conn.execute(select(Visit.enterprise_id, func.count()).where(
                Visit.start_ts >= since, Visit.duplicate_of.is_not(None)).group_by(Visit.enterprise_id)).all())
            hazards = dict(conn.execute(select(HazardRow.enterprise_id, func.count()).where(
                HazardRow.state != "closed").group_by(HazardRow.enterprise_id)).all())
            ents = conn.execute(select(Enterprise.id, Enterprise.name, Enterprise.risk, Enterprise.next_due_at,
                                       Enterprise.street_id, Enterprise.grid_id)).all()
        facts = [TargetFacts(e.id, e.risk, e.next_due_at, alarms.get(e.id, 0), dups.get(e.id, 0),
                             hazards.get(e.id, 0), tuple(red_light.get(e.id, ()))) for e in ents]
        out = rank(facts, now, limit)
        meta = {e.id: e for e in ents}
        for r in out:
            e = meta[r["enterprise_id"]]
            r.update(name=e.name, street_id=e.street_id, grid_id=e.grid_id)
        return out


def week_now(now: float) -> str:
    return week_of(local_date(now))


