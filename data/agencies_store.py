"""Third-party safety-service agencies in SQL (issue 17 §2; docs/agencies.md).

An agency is a unit of kind ``third_party`` (``AGENCY_KIND``; the API calls it an
agency); its staff are the unit's inspectors, tracked like every inspector.  This
module keeps the service contracts and the bureau's complaints, and gathers the facts
of an agency's month for the rating, whose rules are pure (``plans/agencies.py``).

Every change runs in one transaction with its audit entry (``data.audit``).  Errors
for the API: ``LookupError`` (404: no such agency), ``FieldErrors`` (400, every error).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import Engine, func, insert, select

from data import audit
from data.models import AgencyComplaint, Enterprise, HazardRow, Inspector, ServiceContract, Unit, Visit, WeeklyPlan
from plans.agencies import AgencyMonth, AgencyVisit, Contract, HazardFact, Month, contracted_in, month_weeks, rate
from plans.model import local_date

AGENCY_KIND = "third_party"  # the stored kind of an agency unit (data.models.UNIT_KINDS)
NOTE_MAX_LEN = 2000
CHUNK = 500


class FieldErrors(Exception):
    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in errors))
        self.errors = errors


def _date(raw, name: str, errors: list[dict]) -> str | None:
    """A China date ``YYYY-MM-DD``, or None with the error recorded."""
    try:
        if isinstance(raw, str) and len(raw) == 10:
            return dt.date.fromisoformat(raw).isoformat()
    except ValueError:
        pass
    errors.append({"field": name, "reason": "required, a date YYYY-MM-DD"})
    return None


def _contract_json(r) -> dict:
    return {"id": r.id, "agency_id": r.agency_id, "enterprise_id": r.enterprise_id,
            "start_date": r.start_date, "end_date": r.end_date, "created_by": r.created_by,
            "created_at": r.created_at}


class AgenciesStore:
    def __init__(self, engine: Engine, plans=None):
        """``plans``: a ``data.plans_store.PlansStore`` (plan against actual), needed by ``ratings``."""
        self.engine = engine
        self.plans = plans

    # --- agencies and contracts --------------------------------------------------------
    def _agency(self, conn, agency_id: str):
        a = conn.execute(select(Unit.id, Unit.name, Unit.kind).where(Unit.id == agency_id)).first()
        if a is None or a.kind != AGENCY_KIND:
            raise LookupError(f"no agency {agency_id}")
        return a

    def agencies(self, today: str) -> list[dict]:
        """Every agency by id, with its staff, its contracts and those in force on ``today``."""
        with self.engine.connect() as conn:
            units = conn.execute(select(Unit.id, Unit.name).where(Unit.kind == AGENCY_KIND).order_by(Unit.id)).all()
            staff = dict(conn.execute(select(Inspector.unit_id, func.count()).join(Unit, Unit.id == Inspector.unit_id)
                                      .where(Unit.kind == AGENCY_KIND).group_by(Inspector.unit_id)).all())
            contracts: dict[str, list] = {}
            for r in conn.execute(select(ServiceContract.agency_id, ServiceContract.start_date,
                                         ServiceContract.end_date)):
                contracts.setdefault(r.agency_id, []).append(r)
        return [{"id": u.id, "name": u.name, "kind": "agency", "unit_kind": AGENCY_KIND,
                 "inspectors": int(staff.get(u.id, 0)), "contracts": len(contracts.get(u.id, [])),
                 "contracts_in_force": sum(1 for c in contracts.get(u.id, []) if c.start_date <= today <= c.end_date)}
                for u in units]

    def contracts(self, agency_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            self._agency(conn, agency_id)
            rows = conn.execute(select(ServiceContract.__table__).where(ServiceContract.agency_id == agency_id)
                                .order_by(ServiceContract.start_date, ServiceContract.id)).all()
        return [_contract_json(r) for r in rows]

    def add_contract(self, agency_id: str, body: dict, actor: str, now: float) -> dict:
        """Record that the agency serves ``body["enterprise_id"]`` from ``start_date`` to
        ``end_date`` (China dates, both inclusive).  A contract may not overlap another of
        the same agency and enterprise."""
        errors: list[dict] = []
        ent = body.get("enterprise_id")
        if not isinstance(ent, str) or not ent or len(ent) > 32:
            errors.append({"field": "enterprise_id", "reason": "required, an enterprise id"})
            ent = None
        start = _date(body.get("start_date"), "start_date", errors)
        end = _date(body.get("end_date"), "end_date", errors)
        if start and end and end < start:
            errors.append({"field": "end_date", "reason": "before start_date"})
        with self.engine.begin() as conn:
            self._agency(conn, agency_id)
            if ent and conn.execute(select(Enterprise.id).where(Enterprise.id == ent)).first() is None:
                errors.append({"field": "enterprise_id", "reason": "no such enterprise"})
            if not errors:
                clash = conn.execute(select(ServiceContract.id).where(
                    ServiceContract.agency_id == agency_id, ServiceContract.enterprise_id == ent,
                    ServiceContract.start_date <= end, ServiceContract.end_date >= start)).scalar()
                if clash is not None:
                    errors.append({"field": "start_date", "reason": f"overlaps contract {clash}"})
            if errors:
                raise FieldErrors(errors)
            cid = conn.execute(insert(ServiceContract).values(
                agency_id=agency_id, enterprise_id=ent, start_date=start, end_date=end, created_by=actor,
                created_at=now)).inserted_primary_key[0]
            audit.append(conn, actor, "agency_contract_create", f"agency:{agency_id}",
                         {"contract_id": cid, "enterprise_id": ent, "start_date": start, "end_date": end}, at=now)
            r = conn.execute(select(ServiceContract.__table__).where(ServiceContract.id == cid)).first()
        return _contract_json(r)

    def add_complaint(self, agency_id: str, body: dict, actor: str, now: float) -> dict:
        errors: list[dict] = []
        note = body.get("note")
        if not isinstance(note, str) or not note.strip() or len(note) > NOTE_MAX_LEN:
            errors.append({"field": "note", "reason": f"required, 1 to {NOTE_MAX_LEN} characters"})
        ent = body.get("enterprise_id")
        if ent is not None and (not isinstance(ent, str) or not ent or len(ent) > 32):
            errors.append({"field": "enterprise_id", "reason": "an enterprise id, or absent"})
            ent = None
        with self.engine.begin() as conn:
            self._agency(conn, agency_id)
            if ent and conn.execute(select(Enterprise.id).where(Enterprise.id == ent)).first() is None:
                errors.append({"field": "enterprise_id", "reason": "no such enterprise"})
            if errors:
                raise FieldErrors(errors)
            cid = conn.execute(insert(AgencyComplaint).values(
                agency_id=agency_id, enterprise_id=ent, note=note.strip(), recorded_by=actor, recorded_at=now)
            ).inserted_primary_key[0]
            audit.append(conn, actor, "agency_complaint", f"agency:{agency_id}",
                         {"complaint_id": cid, "enterprise_id": ent}, at=now)
        return {"id": cid, "agency_id": agency_id, "enterprise_id": ent, "note": note.strip(),
                "recorded_by": actor, "recorded_at": now}

    def complaints(self, agency_id: str, start_ts: float | None = None, end_ts: float | None = None) -> list[dict]:
        q = select(AgencyComplaint.__table__).where(AgencyComplaint.agency_id == agency_id)
        if start_ts is not None:
            q = q.where(AgencyComplaint.recorded_at >= start_ts)
        if end_ts is not None:
            q = q.where(AgencyComplaint.recorded_at < end_ts)
        with self.engine.connect() as conn:
            self._agency(conn, agency_id)
            return [{"id": r.id, "agency_id": r.agency_id, "enterprise_id": r.enterprise_id, "note": r.note,
                     "recorded_by": r.recorded_by, "recorded_at": r.recorded_at}
                    for r in conn.execute(q.order_by(AgencyComplaint.recorded_at, AgencyComplaint.id))]

    # --- the month's facts and the rating --------------------------------------------------
    def month_facts(self, month: Month, now: float, agency_ids: Sequence[str] | None = None) -> list[AgencyMonth]:
        """The facts of every agency's month (``plans.agencies.AgencyMonth``), by id."""
        weeks = month_weeks(month)
        start, end = month.start_ts, month.end_ts
        with self.engine.connect() as conn:
            q = select(Unit.id, Unit.name).where(Unit.kind == AGENCY_KIND).order_by(Unit.id)
            if agency_ids is not None:
                q = q.where(Unit.id.in_(list(agency_ids)))
            months = {u.id: AgencyMonth(u.id, u.name) for u in conn.execute(q)}
            ids = list(months)
            if not ids:
                return []
            for r in conn.execute(select(ServiceContract.agency_id, ServiceContract.enterprise_id,
                                         ServiceContract.start_date, ServiceContract.end_date)
                                  .where(ServiceContract.agency_id.in_(ids)).order_by(ServiceContract.id)):
                months[r.agency_id].contracts.append(Contract(r.enterprise_id, r.start_date, r.end_date))
            staff: dict[str, str] = dict(conn.execute(select(Inspector.id, Inspector.unit_id)
                                                      .where(Inspector.unit_id.in_(ids))).all())
            # Plans: the first submission of each week's plan (weekly_plans.submitted_at).
            plans = conn.execute(select(WeeklyPlan.unit_id, WeeklyPlan.week, WeeklyPlan.submitted_at).where(
                WeeklyPlan.unit_id.in_(ids), WeeklyPlan.week.in_([w.key for w in weeks]))).all()
            for m in months.values():
                m.submitted = {w.key: None for w in weeks}
            for p in plans:
                months[p.unit_id].submitted[p.week] = p.submitted_at
            # The agencies' visits of the month.
            visits = conn.execute(select(Visit.id, Visit.unit_id, Visit.enterprise_id, Visit.start_ts,
                                         Visit.duplicate_of).where(
                Visit.unit_id.in_(ids), Visit.start_ts >= start, Visit.start_ts < end).order_by(Visit.start_ts, Visit.id))
            for v in visits:
                months[v.unit_id].visits.append(AgencyVisit(v.id, v.enterprise_id, v.start_ts,
                                                            local_date(v.start_ts),
                                                            v.duplicate_of is not None))
            # Hazards of the month: those an agency found, and those at the contracted enterprises
            # (filtered here rather than bound into an IN list: a city has thousands of contracts).
            contracted = set().union(*(contracted_in(m.contracts, month) for m in months.values()))
            hazards = [h for h in conn.execute(select(
                HazardRow.id, HazardRow.enterprise_id, HazardRow.reported_at, HazardRow.found_by, HazardRow.finder_id,
                HazardRow.visit_id).where(HazardRow.reported_at >= start, HazardRow.reported_at < end)
                .order_by(HazardRow.id)) if h.found_by == "agency" or h.enterprise_id in contracted]
            vids = sorted({h.visit_id for h in hazards if h.visit_id is not None})
            visit_unit: dict[int, str] = {}
            for i in range(0, len(vids), CHUNK):
                visit_unit.update(conn.execute(select(Visit.id, Visit.unit_id).where(Visit.id.in_(vids[i:i + CHUNK]))).all())
            complaints = dict(conn.execute(select(AgencyComplaint.agency_id, func.count()).where(
                AgencyComplaint.agency_id.in_(ids), AgencyComplaint.recorded_at >= start,
                AgencyComplaint.recorded_at < end).group_by(AgencyComplaint.agency_id)).all())
        for m in months.values():
            m.complaints = int(complaints.get(m.agency_id, 0))
            mine = contracted_in(m.contracts, month)
            for h in hazards:
                owner = self._finder_agency(h, staff, visit_unit, months)
                by_agency = h.found_by == "agency" and owner == m.agency_id
                if by_agency or (h.enterprise_id in mine and h.found_by == "inspector"):
                    m.hazards.append(HazardFact(h.id, h.enterprise_id, h.reported_at, by_agency,
                                                h.found_by == "inspector"))
        if self.plans is not None:
            for w in weeks:
                for m in months.values():
                    k = self.plans.actual(w.key, [m.agency_id], now)["kpis"]
                    m.plan_items += k["items"]
                    m.plan_items_done += k["done"]
        return [months[i] for i in ids]

    @staticmethod
    def _finder_agency(h, staff: dict[str, str], visit_unit: dict[int, str], months) -> str | None:
        """The agency a hazard found by an agency belongs to: its finder is the agency or one
        of its staff, or it was reported on a visit of one of the agency's staff."""
        if h.finder_id in months:
            return h.finder_id
        if h.finder_id in staff:
            return staff[h.finder_id]
        return visit_unit.get(h.visit_id) if h.visit_id is not None else None

    def ratings(self, month: Month, now: float) -> list[dict]:
        """Every agency's rating of the month, ranked (``plans.agencies.rate``)."""
        if self.plans is None:
            raise RuntimeError("AgenciesStore.ratings needs a PlansStore")
        return rate(self.month_facts(month, now), month)
