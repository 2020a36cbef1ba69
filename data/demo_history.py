"""Thirty days of history for the demo city, so that every screen, KPI and the first
bulletin are full from the first minute (issue 15 item 9, issue 17 "Demo city").

Written once, right after the demo city (``data.demo_city.ensure_demo_city``), from the
city's own facts, so that the history and the enterprises agree:

* **Visits.** Every enterprise whose ``last_inspected_at`` falls in the last
  ``HISTORY_DAYS`` days gets its visit at that moment, moved into working hours
  (08:30-17:30 China time) of the same day (the enterprise's ``last_inspected_at`` and
  ``next_due_at`` move with it).  A share of them were visited once more earlier in the
  month, and a few twice by different units within the duplicate window: the later
  visit then carries ``duplicate_of``.  A few enterprises are visited earlier today, so
  the wall's "visits today" is not 0 at 9 a.m.  Inspectors come from the enterprise's
  street office (most), a district section or a service agency.
* **Plans.** The ``PLAN_WEEKS`` ISO weeks before this one each have an approved plan per
  unit that worked that week: most of the unit's visits were planned (the item on the
  visit's day, its inspector), a few items were left undone, and a few visits were
  unplanned, as the practice goes.
* **Gas alarms.** About one alarm per ``SENSORS_PER_ALARM`` sensors over the month, each
  with its whole trail in ``alert_events`` (opened, acknowledged, dispatched, on scene,
  resolved with an outcome) and realistic response times, so the bulletin's response
  percentiles have data.
* **Agency contracts.** Each service agency (unit kind ``third_party``) has a
  year's service contract with every enterprise it visited this month and with a few it
  did not (``CONTRACT_EXTRA_SHARE``, none of them another agency's), so the agencies' monthly
  rating (docs/agencies.md) has its service part.  The demo's past plans carry no
  submission in the audit chain, so their timeliness part shows them as not submitted.

The rows are marked (visits' ``stay_key`` and alerts' ``details`` start with / carry
``demo-history``), are written in one transaction, and never twice.  They are seed data
of a simulated city, like the city itself: they are not entries of the audit chain.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from sqlalchemy import Engine, bindparam, insert, select

from alerts.model import gps_arrival_note
from data import models
from geo.china import CHINA_UTC_OFFSET_S
from plans.model import week_span_ts

log = logging.getLogger(__name__)

HISTORY_DAYS = 30
PLAN_WEEKS = 4
DAY_S = 86400.0
WORK_START_S, WORK_END_S = 8.5 * 3600, 17.5 * 3600  # China local time of day
EARLIER_VISIT_SHARE = 0.25  # enterprises visited once more earlier in the month
DUPLICATE_SHARE = 0.04  # enterprises a second unit also visited within the duplicate window
TODAY_SHARE = 0.004  # enterprises visited earlier today (at least TODAY_MIN)
TODAY_MIN = 8
PLANNED_SHARE = 0.85  # of a unit's visits in a past week, the planned ones
# Past weeks' plans submitted after their Monday (the agencies' timeliness has both to show).
LATE_PLAN_SHARE = 0.15
UNDONE_SHARE = 0.08  # planned items nobody did, relative to the unit's visits
SENSORS_PER_ALARM = 40
UNIT_KIND_WEIGHT = {"street_office": 0.6, "district_section": 0.3, "third_party": 0.1}
PURPOSE = {"street_office": "inspection", "district_section": "enforcement", "third_party": "service"}
MARK = "demo-history"
CONTRACT_EXTRA_SHARE = 0.3  # an agency's contracted enterprises it did not visit this month, relative to those it did
CONTRACT_MIN_EXTRA = 3


def _local_day_start(ts: np.ndarray | float):
    return np.floor((np.asarray(ts) + CHINA_UTC_OFFSET_S) / DAY_S) * DAY_S - CHINA_UTC_OFFSET_S


def _in_working_hours(rng, ts: np.ndarray, now: float) -> np.ndarray:
    """The same China day at a working hour, never later than 10 minutes ago."""
    day = _local_day_start(ts)
    hi = np.minimum(day + WORK_END_S, now - 600)
    early = hi <= day + WORK_START_S  # today, before work began: the day before
    day = np.where(early, day - DAY_S, day)
    hi = np.where(early, day + WORK_END_S, hi)
    return np.round(day + WORK_START_S + rng.random(ts.size) * (hi - day - WORK_START_S))


def _iso_week(ts: float) -> tuple[str, str]:
    """(ISO week, China date) of a moment."""
    import datetime as dt

    from geo.china import CHINA_TZ

    d = dt.datetime.fromtimestamp(ts, CHINA_TZ).date()
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}", d.isoformat()


def has_history(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(models.Visit.id).where(models.Visit.stay_key.like(f"{MARK}:%")).limit(1)).first() \
            is not None


def ensure_demo_history(engine: Engine, settings, now: float | None = None, seed: int = 7) -> bool:
    """Write the month of history once; True when it wrote it."""
    if has_history(engine):
        return False
    now = time.time() if now is None else float(now)
    rng = np.random.default_rng(seed + 30)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        ents = conn.execute(select(models.Enterprise.id, models.Enterprise.street_id, models.Enterprise.risk,
                                   models.Enterprise.last_inspected_at).order_by(models.Enterprise.id)).all()
        units = conn.execute(select(models.Unit.id, models.Unit.kind, models.Unit.street_id)).all()
        insp = conn.execute(select(models.Inspector.id, models.Inspector.unit_id).order_by(models.Inspector.id)).all()
        sensors = conn.execute(select(models.Sensor.id, models.Sensor.enterprise_id, models.Sensor.street_id,
                                      models.Sensor.grid_id).order_by(models.Sensor.id)).all()
        if not ents or not insp:
            return False
        intervals = settings.interval_days()
        by_unit: dict[str, list[str]] = {}
        for i in insp:
            by_unit.setdefault(i.unit_id, []).append(i.id)
        kind = {u.id: u.kind for u in units if u.id in by_unit}
        office = {u.street_id: u.id for u in units if u.kind == "street_office" and u.id in by_unit}
        sections = [u.id for u in units if u.kind == "district_section" and u.id in by_unit]
        agencies = [u.id for u in units if u.kind == "third_party" and u.id in by_unit]

        def pick_unit(street_id: str | None, not_unit: str | None = None) -> str:
            choices, weights = [], []
            for k, pool in (("street_office", [office.get(street_id)] if office.get(street_id) else []),
                            ("district_section", sections), ("third_party", agencies)):
                pool = [u for u in pool if u != not_unit]
                if pool:
                    choices.append(pool[int(rng.integers(len(pool)))])
                    weights.append(UNIT_KIND_WEIGHT[k])
            w = np.asarray(weights) / sum(weights)
            return choices[int(rng.choice(len(choices), p=w))]

        def pick_inspector(unit: str) -> str:
            pool = by_unit[unit]
            return pool[int(rng.integers(len(pool)))]

        ids = np.array([e.id for e in ents])
        last = np.array([np.nan if e.last_inspected_at is None else e.last_inspected_at for e in ents], dtype=float)
        since = now - HISTORY_DAYS * DAY_S
        # A few enterprises were visited earlier today (when the working day has begun).
        today = float(_local_day_start(now))
        if now - 600 > today + WORK_START_S:
            n_today = max(TODAY_MIN, int(len(ents) * TODAY_SHARE))
            chosen = rng.choice(len(ents), size=min(n_today, len(ents)), replace=False)
            last[chosen] = rng.uniform(today + WORK_START_S, min(now - 600, today + WORK_END_S), chosen.size)
        recent = np.flatnonzero(~np.isnan(last) & (last >= since))
        last[recent] = _in_working_hours(rng, last[recent], now)
        recent = recent[last[recent] >= since]
        # The enterprises' facts move with their visits.
        interval_s = np.array([intervals[ents[k].risk] * DAY_S for k in recent])
        table = models.Enterprise.__table__
        if recent.size:
            conn.execute(table.update().where(table.c.id == bindparam("eid")).values(
                last_inspected_at=bindparam("last"), next_due_at=bindparam("due")),
                [{"eid": str(ids[k]), "last": float(last[k]), "due": float(last[k] + iv)}
                 for k, iv in zip(recent, interval_s)])

        visits = []  # (enterprise, street, start, unit, inspector, duplicate_of index or None)
        for k in recent:
            e = ents[k]
            unit = pick_unit(e.street_id)
            final = (e.id, e.street_id, float(last[k]), unit, pick_inspector(unit), None)
            r = rng.random()
            if r < DUPLICATE_SHARE:
                earlier = float(last[k]) - float(rng.uniform(1, 5)) * DAY_S
                if earlier >= since:
                    other = pick_unit(e.street_id, not_unit=unit)
                    visits.append((e.id, e.street_id, float(_in_working_hours(rng, np.array([earlier]), now)[0]), other,
                                   pick_inspector(other), None))
                    final = final[:5] + (len(visits) - 1,)
            elif r < DUPLICATE_SHARE + EARLIER_VISIT_SHARE:
                earlier = float(last[k]) - float(rng.uniform(8, 25)) * DAY_S
                if earlier >= since:
                    visits.append((e.id, e.street_id, float(_in_working_hours(rng, np.array([earlier]), now)[0]), unit,
                                   pick_inspector(unit), None))
            visits.append(final)
        keys = [f"{MARK}:{iid}|{ent}|{start:.0f}|{j}" for j, (ent, _s, start, _u, iid, _d) in enumerate(visits)]
        rows = [{"enterprise_id": ent, "inspector_id": iid, "unit_id": unit, "start_ts": start,
                 "end_ts": min(now, start + float(rng.uniform(15, 50)) * 60), "ended": True, "stay_key": keys[j]}
                for j, (ent, _street, start, unit, iid, _dup) in sorted(enumerate(visits), key=lambda jv: jv[1][2])]
        for i in range(0, len(rows), 5000):
            conn.execute(insert(models.Visit), rows[i:i + 5000])
        dups = [(j, v[5]) for j, v in enumerate(visits) if v[5] is not None]
        if dups:
            vid = dict(conn.execute(select(models.Visit.stay_key, models.Visit.id).where(
                models.Visit.stay_key.in_([keys[j] for pair in dups for j in pair]))).all())
            vt = models.Visit.__table__
            conn.execute(vt.update().where(vt.c.id == bindparam("vid")).values(duplicate_of=bindparam("of")),
                         [{"vid": vid[keys[j]], "of": vid[keys[d]]} for j, d in dups])

        n_items = _plans(conn, rng, visits, ents, kind, by_unit, now)
        n_alarms = _alarms(conn, rng, sensors, by_unit, office, now, since)
        n_contracts = _contracts(conn, np.random.default_rng(seed + 31), visits, ents, agencies, since, now)
    log.info("demo history: %d visits, %d plan items over %d weeks, %d gas alarms, %d agency contracts in %.1f s",
             len(visits), n_items, PLAN_WEEKS, n_alarms, n_contracts, time.perf_counter() - t0)
    return True


def _plans(conn, rng, visits, ents, kind, by_unit, now) -> int:
    """Approved plans of the PLAN_WEEKS weeks before this one, from the visits of those weeks."""
    this_week, _ = _iso_week(now)
    per: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for ent, street, start, unit, iid, _dup in visits:
        week, date = _iso_week(start)
        if week != this_week:
            per.setdefault((unit, week), []).append((ent, date, iid, street))
    weeks = sorted({w for _u, w in per}, reverse=True)[:PLAN_WEEKS]
    by_street: dict[str, list[str]] = {}
    for e in ents:
        by_street.setdefault(e.street_id, []).append(e.id)
    everyone = [e.id for e in ents]
    n = 0
    for (unit, week), rows in sorted(per.items()):
        if week not in weeks:
            continue
        # Submitted 1-4 days before the week's Monday, or (LATE_PLAN_SHARE) a day or two into it.
        monday = week_span_ts(week)[0]
        late = rng.random() < LATE_PLAN_SHARE
        submitted = monday + (rng.uniform(0.2, 2.0) if late else -rng.uniform(1.0, 4.0)) * DAY_S
        pid = conn.execute(insert(models.WeeklyPlan).values(
            unit_id=unit, week=week, state="approved", created_at=now, created_by="demo", updated_at=now,
            submitted_at=min(submitted, now))
        ).inserted_primary_key[0]
        items = []
        seen = set()
        for ent, date, iid, _street in rows:
            if rng.random() < PLANNED_SHARE and (ent, date) not in seen:
                seen.add((ent, date))
                items.append({"plan_id": pid, "enterprise_id": ent, "date": date, "inspector_ids": [iid],
                              "purpose": PURPOSE.get(kind.get(unit), "inspection"), "check_items": [], "state": "planned"})
        for _ in range(int(rng.binomial(len(rows), UNDONE_SHARE))):
            ent, date, _iid, street = rows[int(rng.integers(len(rows)))]
            pool = by_street.get(street) or everyone
            other = pool[int(rng.integers(len(pool)))]
            if (other, date) not in seen:
                seen.add((other, date))
                items.append({"plan_id": pid, "enterprise_id": other, "date": date,
                              "inspector_ids": [by_unit[unit][int(rng.integers(len(by_unit[unit])))]],
                              "purpose": PURPOSE.get(kind.get(unit), "inspection"), "check_items": [], "state": "planned"})
        if items:
            conn.execute(insert(models.PlanItemRow), items)
            n += len(items)
    return n


def _contracts(conn, rng, visits, ents, agencies, since, now) -> int:
    """Service contracts of the agencies (docs/agencies.md): one for every enterprise an
    agency visited this month, and some it did not visit, each a year from two months
    before the history began (so the whole month is under contract)."""
    start = _iso_week(since - 60 * DAY_S)[1]
    end = _iso_week(since + 305 * DAY_S)[1]
    everyone = [e.id for e in ents]
    rows = []
    taken: set[str] = set()  # the extra ones: not another agency's
    for unit in agencies:
        served = sorted({ent for ent, _s, _t, u, _i, _d in visits if u == unit})
        n_extra = max(CONTRACT_MIN_EXTRA, int(len(served) * CONTRACT_EXTRA_SHARE))
        pool = [e for e in everyone if e not in taken and e not in served]
        extra = [pool[int(k)] for k in rng.choice(len(pool), size=min(n_extra, len(pool)), replace=False)] if pool else []
        for ent in [*served, *extra]:
            taken.add(ent)
            rows.append({"agency_id": unit, "enterprise_id": ent, "start_date": start, "end_date": end,
                         "created_by": "demo", "created_at": now})
    if rows:
        conn.execute(insert(models.ServiceContract), rows)
    return len(rows)


def _alarms(conn, rng, sensors, by_unit, office, now, since) -> int:
    """Resolved gas alarms over the month, each with its trail of events."""
    if not sensors:
        return 0
    n = max(3, len(sensors) // SENSORS_PER_ALARM)
    chosen = rng.choice(len(sensors), size=min(n, len(sensors)), replace=False)
    outcomes = ("leak_handled", "false_alarm", "device_fault")
    count = 0
    for k in chosen:
        s = sensors[int(k)]
        first = float(rng.uniform(since, now - 2 * 3600))
        ack = first + float(rng.lognormal(np.log(90), 0.6))  # about 1.5 minutes
        unit = office.get(s.street_id) or next(iter(by_unit))
        assignee = by_unit[unit][int(rng.integers(len(by_unit[unit])))]
        dispatched = ack + float(rng.uniform(20, 120))
        arrive = dispatched + float(rng.lognormal(np.log(11 * 60), 0.4))  # about 11 minutes
        resolved = arrive + float(rng.uniform(8, 35)) * 60
        outcome = outcomes[int(rng.choice(3, p=[0.55, 0.35, 0.10]))]
        peak = float(np.round(rng.uniform(22, 85), 1))
        aid = conn.execute(insert(models.Alert).values(
            type="gas_alarm", subject=f"sensor:{s.id}", severity="critical", state="resolved",
            enterprise_id=s.enterprise_id, sensor_id=s.id, street_id=s.street_id, grid_id=s.grid_id,
            assignee_id=assignee, count=int(rng.integers(1, 6)), peak_lel=peak, last_value_lel=0.0,
            returned_to_normal_at=resolved - 300, escalation_level=0, escalate_at=None, outcome=outcome,
            first_seen=first, last_seen=resolved - 300, created_at=first, updated_at=resolved, version=5,
            details={MARK: True})).inserted_primary_key[0]
        conn.execute(insert(models.AlertEvent), [
            {"alert_id": aid, "from_state": None, "to_state": "open", "action": "open", "actor": "system",
             "at": first, "note": None},
            {"alert_id": aid, "from_state": "open", "to_state": "acknowledged", "action": "ack",
             "actor": "dispatcher", "at": ack, "note": None},
            # The trail as the live system writes it (the screens render these forms through
            # the catalogue): the dispatcher assigns (the assignee is the alert's), the alert
            # engine records the GPS arrival, the dispatcher resolves on the officer's report
            # (the outcome is the alert's).
            {"alert_id": aid, "from_state": "acknowledged", "to_state": "dispatched", "action": "assign",
             "actor": "dispatcher", "at": dispatched, "note": None},
            {"alert_id": aid, "from_state": "dispatched", "to_state": "on_scene", "action": "arrive",
             "actor": "system", "at": arrive,
             "note": gps_arrival_note(float(rng.uniform(8, 60)), arrive)},
            {"alert_id": aid, "from_state": "on_scene", "to_state": "resolved", "action": "resolve",
             "actor": "dispatcher", "at": resolved, "note": None},
        ])
        count += 1
    return count
