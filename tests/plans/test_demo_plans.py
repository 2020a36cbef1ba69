"""The demo city's plans for the current week: every unit plans, and every conflict kind is staged."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import insert, select

from data import audit
from data.city_frames import day_plans
from data.demo_city import ensure_demo_city, generate_city, write_city
from data.demo_plans import ensure_demo_plans
from data.models import Enterprise, Inspector, Visit
from data.plans_store import PlansStore
from geo.china import CHINA_TZ
from plans.model import local_date, week_of


def test_demo_week_has_plans_and_staged_conflicts(sqlite_engine, settings):
    now = time.time()
    write_city(sqlite_engine, generate_city(7, "tiny", now=now))
    # a visit yesterday, for the staged recently_visited conflict
    with sqlite_engine.begin() as conn:
        e = conn.execute(select(Enterprise.id).order_by(Enterprise.id)).scalars().first()
        i = conn.execute(select(Inspector.id, Inspector.unit_id).order_by(Inspector.id)).first()
        conn.execute(insert(Visit).values(enterprise_id=e, inspector_id=i.id, unit_id=i.unit_id, start_ts=now - 86400,
                                          end_ts=now - 85000, stay_key="demo-test", ended=True))
    assert ensure_demo_plans(sqlite_engine, settings, now=now) is True
    assert ensure_demo_plans(sqlite_engine, settings, now=now) is False  # once per week
    week = week_of(local_date(now))
    st = PlansStore(sqlite_engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=settings.interval_days())
    plans = st.list_plans(week)
    assert len(plans) >= 8 and {p["state"] for p in plans} == {"draft", "submitted", "approved"}
    kinds = {c["kind"] for c in st.conflicts(week, now)}
    assert kinds == {"same_week", "recently_visited", "not_due"}
    assert any(e.actor == "demo" and e.action == "plan_create" for e in audit.entries(sqlite_engine))
    # Every item from today on, and the approved ones are what the simulated inspectors
    # follow today (a demo started on a Sunday had the week's items on days gone: 0 % done).
    today = local_date(now)
    assert all(i["date"] >= today for p in plans for i in p["items"])
    assert sum(p["state"] == "approved" for p in plans) >= len(plans) - 2
    assert day_plans(sqlite_engine, today), "nobody has a plan to follow today"
    # On a Sunday: its own items, for the weekend.
    sunday = now + (6 - datetime.fromtimestamp(now, CHINA_TZ).weekday()) * 86400 + 7 * 86400
    assert ensure_demo_plans(sqlite_engine, settings, now=sunday) is True
    later = [i for p in st.list_plans(week_of(local_date(sunday))) for i in p["items"]]
    assert later and {i["date"] for i in later} == {local_date(sunday)}
    assert day_plans(sqlite_engine, local_date(sunday))
    # the generator's own entry point adds them to an existing demo city in a new week
    assert ensure_demo_city(sqlite_engine, settings) is False
