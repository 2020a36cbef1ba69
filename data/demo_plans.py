"""The demo city's weekly plans for the current week, with staged collisions (issue 15).

Written through ``PlansStore.save_plan`` like any unit's plan (validated, audited
as actor ``demo``), once per week: nothing is written when the week already has
plans.  Each street office plans enterprises of its street, the longest overdue
first; the district sections plan red and orange enterprises city-wide; the
third-party agencies plan service visits.  Staged on purpose, so that the plans
page shows every kind at once:

* ``same_week``: a district section also plans some enterprises that a street
  office plans (one of them three units deep, with an agency);
* ``recently_visited``: a street office plans enterprises visited in the last days;
* ``not_due``: a district section plans enterprises inspected lately.

Items are dated from the day it runs to the week's Friday (on a weekend, the rest of
the weekend), so that the simulated inspectors can do them.  Every plan is approved but
one street office's (submitted, waiting) and one agency's (a draft).  Deterministic for
a (seed, week, day).
"""

from __future__ import annotations

import logging
import random
import time

from sqlalchemy import Engine, func, select

from data.models import Enterprise, Inspector, Unit, Visit, WeeklyPlan
from data.plans_store import PlansStore
from plans.model import local_date, week_dates, week_of

log = logging.getLogger(__name__)

ITEMS = {"street_office": 12, "district_section": 8, "third_party": 6}
STAGED_SAME_WEEK = 6
STAGED_RECENT = 3
STAGED_NOT_DUE = 3
ACTOR = "demo"


def ensure_demo_plans(engine: Engine, settings, now: float | None = None, seed: int = 7) -> bool:
    """Write the current week's demo plans unless the week has plans already; True when written."""
    now = time.time() if now is None else now
    week = week_of(local_date(now))
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(WeeklyPlan).where(WeeklyPlan.week == week)).scalar_one():
            return False
        units = conn.execute(select(Unit.id, Unit.kind, Unit.street_id).order_by(Unit.id)).all()
        insp: dict[str, list[str]] = {}
        for i in conn.execute(select(Inspector.id, Inspector.unit_id).order_by(Inspector.id)):
            insp.setdefault(i.unit_id, []).append(i.id)
        by_street: dict[str, list[str]] = {}
        for e in conn.execute(select(Enterprise.id, Enterprise.street_id)
                              .order_by(func.coalesce(Enterprise.next_due_at, 0.0), Enterprise.id).limit(20000)):
            by_street.setdefault(e.street_id, []).append(e.id)
        high = conn.execute(select(Enterprise.id).where(Enterprise.risk.in_(["red", "orange"]))
                            .order_by(func.coalesce(Enterprise.next_due_at, 0.0), Enterprise.id).limit(400)).scalars().all()
        fresh = conn.execute(select(Enterprise.id).where(Enterprise.next_due_at > now + 14 * 86400)
                             .order_by(Enterprise.id).limit(200)).scalars().all()
        recent = conn.execute(select(Visit.enterprise_id, Visit.start_ts).where(Visit.start_ts > now - 5 * 86400)
                              .order_by(Visit.start_ts.desc()).limit(50)).all()
    if not units or not any(by_street.values()):
        return False
    rng = random.Random(f"{seed}:{week}")
    # From today on: a day already gone would hold items nobody can do any more (started on
    # a Sunday, the demo's week read 0 % done). On a weekend, the weekend's days.
    today = local_date(now)
    days = [d for d in week_dates(week)[:5] if d >= today] or [d for d in week_dates(week) if d >= today]
    plans: dict[str, list[dict]] = {u.id: [] for u in units}
    taken: dict[str, set[str]] = {u.id: set() for u in units}

    def add(unit_id: str, eid: str, purpose: str = "inspection", checks=(), date: str | None = None):
        if eid in taken[unit_id] or not insp.get(unit_id):
            return
        taken[unit_id].add(eid)
        people = insp[unit_id]
        chosen = rng.sample(people, min(len(people), 1 + (rng.random() < 0.4)))
        plans[unit_id].append({"enterprise_id": eid, "date": date or rng.choice(days), "inspector_ids": chosen,
                               "purpose": purpose, "check_items": list(checks)})

    streets = [u for u in units if u.kind == "street_office"]
    district = [u for u in units if u.kind == "district_section"]
    agencies = [u for u in units if u.kind == "third_party"]
    for u in streets:
        pool = by_street.get(u.street_id, [])[:60]
        for eid in rng.sample(pool, min(len(pool), ITEMS["street_office"])):
            add(u.id, eid, "inspection", rng.sample(["消防", "燃气", "用电", "有限空间", "危化品"], 2))
    for u in district:
        for eid in rng.sample(high, min(len(high), ITEMS["district_section"])):
            add(u.id, eid, "enforcement", ["执法检查"])
    for u in agencies:
        pool = [e for lst in by_street.values() for e in lst[60:200]]
        for eid in rng.sample(pool, min(len(pool), ITEMS["third_party"])):
            add(u.id, eid, "service", ["隐患排查"])
    # Staged same_week: a district section plans what street offices plan (one also with an agency).
    if district and streets:
        shared = [(u.id, it["enterprise_id"]) for u in streets for it in plans[u.id]]
        for k, (_, eid) in enumerate(rng.sample(shared, min(len(shared), STAGED_SAME_WEEK))):
            add(district[k % len(district)].id, eid, "inspection", ["燃气", "消防", "危化品"])
            if k == 0 and agencies:
                add(agencies[0].id, eid, "service", ["隐患排查"])
    # Staged recently_visited: a street office plans what was just visited, for a day after the visit.
    all_days = week_dates(week)
    for eid, ts in recent[:STAGED_RECENT]:
        if streets:
            after = [d for d in all_days if d > local_date(ts) and d >= today]
            add(streets[rng.randrange(len(streets))].id, eid, "inspection", (), after[0] if after else days[-1])
    # Staged not_due: a district section plans enterprises inspected lately (not enforcement).
    for eid in fresh[:STAGED_NOT_DUE]:
        if district:
            add(district[-1].id, eid, "inspection")
    st = PlansStore(engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=settings.interval_days())
    written = 0
    for u in units:
        rows = plans[u.id]
        if not rows:
            continue
        plan = st.save_plan(u.id, week, [(k + 1, r) for k, r in enumerate(rows)], ACTOR, now, source="demo")
        written += 1
        # Approved, as plans are before their week, so the simulated inspectors follow them;
        # one street office's waits for approval and one agency's is a draft, to show both.
        if agencies and u.id == agencies[-1].id:
            continue
        st.act_on_plan(plan["id"], "submit", ACTOR, now)
        if not (streets and u.id == streets[0].id):
            st.act_on_plan(plan["id"], "approve", ACTOR, now)
    log.info("demo plans for %s: %d units, %d items", week, written, sum(len(v) for v in plans.values()))
    return written > 0
