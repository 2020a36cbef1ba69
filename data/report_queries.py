"""SQL reads for bulletins (``reports/``): one ``gather`` per report, plain data out.

The snapshot numbers (coverage, overdue) are ``data.geo_queries``' own
functions, called with the same ``now``, so a bulletin equals
``GET /api/v1/coverage`` and ``/api/v1/overdue/counts`` taken at its ``as_of``.
Period numbers count what *started* in ``[start, end)``: visits by
``start_ts`` (as ``GET /api/v1/visits?since=&until=`` does), alerts by
``first_seen``.  A street bulletin keeps what belongs to the street: visits
and enterprises by the enterprise's registered street, alerts by their
``street_id``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from alerts.model import APPROACH_WARNING, DUPLICATE_VISIT, GAS_ALARM, OVERLAP_NOW
from data import geo_queries
from data.models import Alert, AlertEvent, AuditEntry, Enterprise, Inspector, Sensor, Street, Unit, Visit

# The map draws at most this many overdue enterprises (highest risk first) and
# says how many it left out: a PDF page cannot show 100,000 dots usefully.
MAP_POINTS_MAX = 4000


def _day_index(ts: float, day_starts: list[float]) -> int:
    return max(0, bisect.bisect_right(day_starts, ts) - 1)


def _visits(engine: Engine, since: float, until: float, street: str | None) -> list:
    """Visits that started in ``[since, until)`` (of the street's enterprises).  No join
    with ``enterprises`` per row: at city scale the row lookups cost seconds."""
    stmt = (select(Visit.unit_id, Visit.enterprise_id, Visit.start_ts, Visit.duplicate_of, Visit.same_unit_repeat_of)
            .where(Visit.start_ts >= since, Visit.start_ts < until))
    if street is not None:
        stmt = stmt.where(Visit.enterprise_id.in_(select(Enterprise.id).where(Enterprise.street_id == street)))
    with engine.connect() as conn:
        return conn.execute(stmt).all()


def _streets_of(engine: Engine, enterprise_ids: set[str]) -> dict[str, str | None]:
    ids = sorted(enterprise_ids)
    out: dict[str, str | None] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), 900):
            out.update(conn.execute(select(Enterprise.id, Enterprise.street_id)
                                    .where(Enterprise.id.in_(ids[i:i + 900]))).all())
    return out


def inspections(engine: Engine, since: float, until: float, day_starts: list[float], street: str | None,
                rows: list | None = None) -> dict:
    rows = _visits(engine, since, until, street) if rows is None else rows
    with engine.connect() as conn:
        q = select(Unit.id, Unit.name, Unit.kind, Unit.street_id)
        units = {u.id: {"id": u.id, "name": u.name, "kind": u.kind, "visits": 0, "duplicates": 0,
                        "same_unit_repeats": 0, "enterprises": set()}
                 for u in conn.execute(q).all() if street is None or u.street_id in (None, street)}
    daily_v = [0] * len(day_starts)
    daily_d = [0] * len(day_starts)
    for r in rows:
        u = units.setdefault(r.unit_id, {"id": r.unit_id, "name": None, "kind": None, "visits": 0, "duplicates": 0,
                                         "same_unit_repeats": 0, "enterprises": set()})
        u["visits"] += 1
        u["duplicates"] += r.duplicate_of is not None
        u["same_unit_repeats"] += r.same_unit_repeat_of is not None
        u["enterprises"].add(r.enterprise_id)
        i = _day_index(r.start_ts, day_starts)
        daily_v[i] += 1
        daily_d[i] += r.duplicate_of is not None
    out_units = [{**u, "enterprises": len(u["enterprises"])} for u in units.values()]
    return {"units": out_units, "total": len(rows), "enterprises": len({r.enterprise_id for r in rows}),
            "daily_visits": daily_v, "daily_duplicates": daily_d}


def duplicates(engine: Engine, since: float, until: float, street: str | None, rows: list | None = None) -> dict:
    rows = _visits(engine, since, until, street) if rows is None else rows
    dup_rows = [r for r in rows if r.duplicate_of is not None]
    street_of = _streets_of(engine, {r.enterprise_id for r in dup_rows})
    by_street: dict[str, int] = {}
    for r in dup_rows:
        sid = street_of.get(r.enterprise_id)
        if sid is not None:
            by_street[sid] = by_street.get(sid, 0) + 1
    stmt = (select(Alert.type, Alert.outcome, func.count())
            .where(Alert.type.in_((DUPLICATE_VISIT, OVERLAP_NOW, APPROACH_WARNING)),
                   Alert.first_seen >= since, Alert.first_seen < until)
            .group_by(Alert.type, Alert.outcome))
    if street is not None:
        stmt = stmt.where(Alert.street_id == street)
    with engine.connect() as conn:
        counts = conn.execute(stmt).all()
    return {
        "duplicates": len(dup_rows),
        "same_unit_repeats": sum(1 for r in rows if r.same_unit_repeat_of is not None),
        "caught_live": sum(n for t, _o, n in counts if t in (DUPLICATE_VISIT, OVERLAP_NOW)),
        "warned_live": sum(n for t, _o, n in counts if t == APPROACH_WARNING),
        "reassigned": sum(n for _t, o, n in counts if o == "reassigned"),
        "by_street": by_street,
    }


def coverage(engine: Engine, intervals_d: Mapping[str, float], now: float, street: str | None) -> dict:
    area = {"street": street} if street is not None else {}
    cov = geo_queries.coverage(engine, intervals_d, now, **area)
    overdue = geo_queries.overdue_by_colour(engine, intervals_d, now, **area)
    stmt = select(Enterprise.risk, func.count()).group_by(Enterprise.risk)
    if street is not None:
        stmt = stmt.where(Enterprise.street_id == street)
    with engine.connect() as conn:
        per_colour = {r: n for r, n in conn.execute(stmt).all()}
    return {**cov, "overdue_by_colour": overdue,
            "enterprises_by_colour": {c: per_colour.get(c, 0) for c in dict.fromkeys([*overdue, *per_colour])}}


def alarms(engine: Engine, since: float, until: float, day_starts: list[float], street: str | None) -> dict:
    """Gas alarms that started in the period, each with its seconds from first seen to the first
    acknowledgement and to the first arrival on scene (None when it never happened)."""
    stmt = (select(Alert.id, Alert.first_seen, Alert.street_id, Alert.assignee_id, Sensor.lat, Sensor.lon)
            .select_from(Alert.__table__.outerjoin(Sensor, Sensor.id == Alert.sensor_id))
            .where(Alert.type == GAS_ALARM, Alert.first_seen >= since, Alert.first_seen < until))
    if street is not None:
        stmt = stmt.where(Alert.street_id == street)
    with engine.connect() as conn:
        alerts = conn.execute(stmt.order_by(Alert.id)).all()
        ids = [a.id for a in alerts]
        firsts: dict[tuple[int, str], float] = {}
        for i in range(0, len(ids), 500):
            ev = conn.execute(select(AlertEvent.alert_id, AlertEvent.to_state, func.min(AlertEvent.at))
                              .where(AlertEvent.alert_id.in_(ids[i:i + 500]),
                                     AlertEvent.to_state.in_(("acknowledged", "on_scene")))
                              .group_by(AlertEvent.alert_id, AlertEvent.to_state)).all()
            firsts.update({(a, s): at for a, s, at in ev})
        unit_of = dict(conn.execute(select(Inspector.id, Inspector.unit_id)).all())
    rows, daily = [], [0] * len(day_starts)
    for a in alerts:
        ack, arr = firsts.get((a.id, "acknowledged")), firsts.get((a.id, "on_scene"))
        rows.append({"id": a.id, "street_id": a.street_id, "unit_id": unit_of.get(a.assignee_id),
                     "ack_s": None if ack is None else max(0.0, ack - a.first_seen),
                     "arrive_s": None if arr is None else max(0.0, arr - a.first_seen),
                     "lat": a.lat, "lon": a.lon})
        daily[_day_index(a.first_seen, day_starts)] += 1
    return {"rows": rows, "daily": daily}


def area_map(engine: Engine, intervals_d: Mapping[str, float], now: float, street: str | None,
             alarm_rows: list[dict]) -> dict:
    """Overdue enterprises (at most ``MAP_POINTS_MAX``, highest risk first; due dates as
    ``geo_queries.due_dates`` computes them for the API), the street outlines, the alarms."""
    stmt = select(Enterprise.lat, Enterprise.lon, Enterprise.risk, Enterprise.last_inspected_at,
                  Enterprise.next_due_at)
    if street is not None:
        stmt = stmt.where(Enterprise.street_id == street)
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        st = select(Street.id, Street.geometry)
        if street is not None:
            st = st.where(Street.id == street)
        streets = [{"id": s, "geometry": g} for s, g in conn.execute(st.order_by(Street.id)).all()]
    if rows:
        lat, lon, risk, last, nxt = (np.array(c, dtype=object) for c in zip(*rows))
        due = geo_queries.due_dates(np.array(last, dtype=np.float64), np.array(nxt, dtype=np.float64),
                                    risk, intervals_d)
        late = np.flatnonzero(now > due)
    else:
        late = np.array([], dtype=np.int64)
    order = {c: i for i, c in enumerate(("red", "orange", "yellow", "blue"))}
    pick = sorted(late.tolist(), key=lambda i: (order.get(risk[i], 9), i))[:MAP_POINTS_MAX]
    points = [{"lat": float(lat[i]), "lon": float(lon[i]), "risk": risk[i]} for i in pick]
    alarms_xy = [{"lat": r["lat"], "lon": r["lon"]} for r in alarm_rows if r.get("lat") is not None]
    return {"streets": streets, "points": points, "alarms": alarms_xy, "overdue_total": int(late.size)}


def streets(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [{"id": i, "name": n, "name_en": e}
                for i, n, e in conn.execute(select(Street.id, Street.name, Street.name_en).order_by(Street.id))]


def audit_anchor(engine: Engine, until: float) -> tuple[str | None, int]:
    """The audit chain as it stood at ``until``: (hash of its newest entry written before
    ``until``, how many entries the chain had then).  Entries are appended in id order."""
    with engine.connect() as conn:
        last_id = conn.execute(select(func.max(AuditEntry.id)).where(AuditEntry.at < until)).scalar()
        if last_id is None:
            return None, 0
        h = conn.execute(select(AuditEntry.hash).where(AuditEntry.id == last_id)).scalar_one()
        n = conn.execute(select(func.count()).select_from(AuditEntry).where(AuditEntry.id <= last_id)).scalar_one()
    return h, int(n)


class UnknownStreet(LookupError):
    pass


def agency_ratings(engine: Engine, intervals_d: Mapping[str, float], month: str, now: float,
                   plan_tolerance_d: int = 1) -> list[dict]:
    """The agencies' rating of ``month`` (``YYYY-MM``), exactly as ``GET /api/v1/agencies/ratings`` answers it."""
    from data.agencies_store import AgenciesStore
    from data.plans_store import PlansStore
    from plans.agencies import parse_month

    # The duplicate window only serves the plans' collision check, which the rating does not read.
    plans = PlansStore(engine, duplicate_window_s=0.0, intervals_d=dict(intervals_d), tolerance_d=plan_tolerance_d)
    return AgenciesStore(engine, plans).ratings(parse_month(month), now)


def plans_summary(engine: Engine, intervals_d: Mapping[str, float], weeks: list[str], now: float,
                  tolerance_d: int = 1, street: str | None = None) -> dict[str, Any]:
    """Plan against actual over ``weeks`` (the period's ISO weeks), each week exactly as
    ``GET /api/v1/plans/actual?week=`` answers it (for a street: the units of that street),
    and their sums."""
    from data.plans_store import PlansStore

    plans = PlansStore(engine, duplicate_window_s=0.0, intervals_d=dict(intervals_d), tolerance_d=tolerance_d)
    units = None
    if street is not None:
        with engine.connect() as conn:
            units = list(conn.execute(select(Unit.id).where(Unit.street_id == street)).scalars())
    per = []
    for w in weeks:
        a = plans.actual(w, units, now)
        per.append({"week": w, **a["kpis"], "completion_pct": a["completion_pct"]})
    total = {k: sum(x[k] for x in per) for k in ("items", "done", "unplanned_visits", "conflicts_resolved",
                                                 "duplicates_happened")}
    total["completion_pct"] = round(100.0 * total["done"] / total["items"], 1) if total["items"] else None
    return {"weeks": per, **total}


def hazards_summary(engine: Engine, since: float, until: float, day_starts: list[float], now: float,
                    street: str | None = None) -> dict[str, Any]:
    """Hazards found and closed in ``[since, until)`` (by level, and found per day), and as
    of ``now`` the open ones, the overdue ones (rectifying past the deadline) and the open
    major ones."""
    from data.models import HazardRow as H

    where = [H.street_id == street] if street is not None else []
    with engine.connect() as conn:
        rows = conn.execute(select(H.level, H.state, H.reported_at, H.closed_at, H.deadline).where(*where)).all()
    found = [r for r in rows if since <= r.reported_at < until]
    daily = [0] * len(day_starts)
    for r in found:
        k = bisect.bisect_right(day_starts, r.reported_at) - 1
        if 0 <= k < len(daily):
            daily[k] += 1
    open_now = [r for r in rows if r.reported_at <= now and r.state != "closed"]
    return {
        "found": len(found), "found_major": sum(1 for r in found if r.level == "major"),
        "closed": sum(1 for r in rows if r.closed_at is not None and since <= r.closed_at < until),
        "open": len(open_now),
        "overdue": sum(1 for r in open_now if r.state == "rectifying" and r.deadline is not None and r.deadline < now),
        "major_open": sum(1 for r in open_now if r.level == "major"),
        "daily_found": daily,
    }


def red_light_summary(engine: Engine, settings, now: float, street: str | None = None, top: int = 10) -> dict:
    """The red-light enterprises as of ``now`` (``GET /api/v1/red-light``): how many, by rule,
    and the first ``top`` with their reasons."""
    from data.hazards_store import HazardStore

    rows = HazardStore(engine, settings).red_light(now, streets=[street] if street is not None else None)
    by_rule: dict[str, int] = {}
    for r in rows:
        for reason in r["reasons"]:
            by_rule[reason["rule"]] = by_rule.get(reason["rule"], 0) + 1
    return {"count": len(rows), "by_rule": by_rule,
            "top": [{"enterprise_id": r["enterprise_id"], "name": r["name"], "street_id": r["street_id"],
                     "rules": [x["rule"] for x in r["reasons"]]} for r in rows[:top]]}


def gather(engine: Engine, intervals_d: Mapping[str, float], *, since: float, until: float,
           day_starts: list[float], days: list[str], now: float, street: str | None = None,
           agency_month: str | None = None, plan_tolerance_d: int = 1, plan_weeks: list[str] | None = None,
           settings=None) -> dict[str, Any]:
    """Everything a bulletin's section builders read (``reports.sections``), for ``[since, until)``;
    the snapshot numbers as of ``now``.  ``agency_month`` (``YYYY-MM``, monthly district
    bulletins): the agencies' rating of that month, under the key ``agencies``."""
    all_streets = streets(engine)
    name = name_en = None
    if street is not None:
        match = [s for s in all_streets if s["id"] == street]
        if not match:
            raise UnknownStreet(street)
        name, name_en = match[0]["name"], match[0]["name_en"]
    al = alarms(engine, since, until, day_starts, street)
    visit_rows = _visits(engine, since, until, street)
    out = {
        "street_id": street, "street_name": name, "street_name_en": name_en, "as_of": now,
        "days": days, "streets": all_streets,
        "inspections": inspections(engine, since, until, day_starts, street, visit_rows),
        "duplicates": duplicates(engine, since, until, street, visit_rows),
        "coverage": coverage(engine, intervals_d, now, street),
        "alarms": al,
        "map": area_map(engine, intervals_d, now, street, al["rows"]),
    }
    if agency_month is not None:
        out["agencies"] = agency_ratings(engine, intervals_d, agency_month, now, plan_tolerance_d)
    if plan_weeks:
        out["plans"] = plans_summary(engine, intervals_d, plan_weeks, now, plan_tolerance_d, street)
    out["hazards"] = hazards_summary(engine, since, until, day_starts, now, street)
    if settings is not None:
        out["red_light"] = red_light_summary(engine, settings, now, street)
    return out
