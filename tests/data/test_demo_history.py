"""The demo city's month of history (data/demo_history.py), on SQLite and PostgreSQL:
consistent with the enterprises' last-inspection dates, in working hours, with
duplicates that are real duplicates, past weeks' approved plans mostly done, resolved
gas alarms with their trails, visits earlier today, and written once."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from data import models
from data.demo_city import generate_city, write_city
from data.demo_history import HISTORY_DAYS, MARK, ensure_demo_history
from data.plans_store import PlansStore
from geo.china import CHINA_TZ

# 2026-12-02 (a Wednesday) 11:00 in Shanghai: the working day has begun.
NOW = dt.datetime(2026, 12, 2, 11, 0, tzinfo=CHINA_TZ).timestamp()


def test_a_month_of_history_that_agrees_with_the_city(engine, settings):
    write_city(engine, generate_city(7, "tiny", now=NOW - 60))
    assert ensure_demo_history(engine, settings, now=NOW) is True
    assert ensure_demo_history(engine, settings, now=NOW) is False  # once
    with engine.connect() as conn:
        visits = conn.execute(select(models.Visit.__table__)).all()
        last = dict(conn.execute(select(models.Enterprise.id, models.Enterprise.last_inspected_at)).all())
        due = dict(conn.execute(select(models.Enterprise.id, models.Enterprise.next_due_at)).all())
        risk = dict(conn.execute(select(models.Enterprise.id, models.Enterprise.risk)).all())
        unit_street = dict(conn.execute(select(models.Unit.id, models.Unit.kind)).all())
    assert visits and all(v.stay_key.startswith(f"{MARK}:") for v in visits)
    # Every visited enterprise's last inspection is its latest visit; next due follows its colour.
    latest: dict[str, float] = {}
    for v in visits:
        latest[v.enterprise_id] = max(latest.get(v.enterprise_id, 0.0), v.start_ts)
    intervals = settings.interval_days()
    for ent, ts in latest.items():
        assert last[ent] == ts, ent
        assert due[ent] == ts + intervals[risk[ent]] * 86400
    # Within the month, in working hours China time, never in the future.
    for v in visits:
        local = dt.datetime.fromtimestamp(v.start_ts, CHINA_TZ)
        assert NOW - HISTORY_DAYS * 86400 - 86400 <= v.start_ts < NOW and v.end_ts <= NOW
        assert dt.time(8, 30) <= local.time() <= dt.time(17, 30), local
    # Some visits earlier today, so the wall is not empty at 11 a.m.
    today = dt.datetime(2026, 12, 2, tzinfo=CHINA_TZ).timestamp()
    assert sum(1 for v in visits if v.start_ts >= today) >= 8
    # Duplicates: another unit's visit to the same enterprise within the window, earlier.
    by_id = {v.id: v for v in visits}
    dups = [v for v in visits if v.duplicate_of is not None]
    assert dups
    for v in dups:
        first = by_id[v.duplicate_of]
        assert first.enterprise_id == v.enterprise_id and first.unit_id != v.unit_id
        assert 0 < v.start_ts - first.start_ts <= settings.duplicate_window_s
    assert {unit_street[v.unit_id] for v in visits} == {"street_office", "district_section", "third_party"}

    # The agencies' contracts: every enterprise an agency visited, and a few more.
    with engine.connect() as conn:
        contracts = conn.execute(select(models.ServiceContract.__table__)).all()
    assert contracts and {unit_street[c.agency_id] for c in contracts} == {"third_party"}
    contracted = {(c.agency_id, c.enterprise_id) for c in contracts}
    assert len(contracted) == len(contracts)
    assert {(v.unit_id, v.enterprise_id) for v in visits if unit_street[v.unit_id] == "third_party"} < contracted
    today_local = dt.datetime.fromtimestamp(NOW, CHINA_TZ).date().isoformat()
    assert all(c.start_date < today_local < c.end_date for c in contracts)

    # Past weeks: approved plans, mostly done, some items undone and some visits unplanned.
    store = PlansStore(engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=intervals,
                       tolerance_d=settings.plan_match_tolerance_d)
    with engine.connect() as conn:
        weeks = sorted({w for (w,) in conn.execute(select(models.WeeklyPlan.week).distinct())})
        states = {s for (s,) in conn.execute(select(models.WeeklyPlan.state).distinct())}
    assert len(weeks) == 4 and "2026-W49" not in weeks and states == {"approved"}
    outs = [store.actual(w, None, NOW) for w in weeks]
    items = sum(o["kpis"]["items"] for o in outs)
    done = sum(o["kpis"]["done"] for o in outs)
    assert items and 0.6 <= done / items < 1.0, (done, items)
    assert sum(o["kpis"]["unplanned_visits"] for o in outs) > 0 and any(o["undone"] for o in outs)
    # Each past plan was submitted, mostly before its Monday, some late (the agencies' timeliness).
    from plans.model import week_span_ts

    with engine.connect() as conn:
        plans = conn.execute(select(models.WeeklyPlan.week, models.WeeklyPlan.submitted_at)).all()
    assert all(p.submitted_at is not None and p.submitted_at <= NOW for p in plans)
    early = sum(1 for p in plans if p.submitted_at < week_span_ts(p.week)[0])
    assert 0.6 * len(plans) <= early < len(plans), (early, len(plans))

    # Gas alarms: resolved, each with its trail open -> ack -> dispatched -> on scene -> resolved.
    with engine.connect() as conn:
        alerts = conn.execute(select(models.Alert.__table__).where(models.Alert.type == "gas_alarm")).all()
        trail = {}
        for e in conn.execute(select(models.AlertEvent.alert_id, models.AlertEvent.to_state, models.AlertEvent.at)
                              .order_by(models.AlertEvent.id)):
            trail.setdefault(e.alert_id, []).append((e.to_state, e.at))
        n_sensors = conn.execute(select(func.count()).select_from(models.Sensor)).scalar_one()
    assert len(alerts) >= 3 and len(alerts) >= n_sensors // 40
    for a in alerts:
        assert a.state == "resolved" and a.outcome in ("leak_handled", "false_alarm", "device_fault")
        states_ = [s for s, _ in trail[a.id]]
        assert states_ == ["open", "acknowledged", "dispatched", "on_scene", "resolved"]
        times = [t for _, t in trail[a.id]]
        assert times == sorted(times) and times[0] == a.first_seen and times[-1] < NOW
    # And the trail reads as the live system's does on the dispatcher's screen: no outcome
    # codes, no inspector ids, no English, no epochs (the tour saw all four in the demo's).
    from dashboard.pages.common import history_entries

    with engine.connect() as conn:
        events = conn.execute(select(models.AlertEvent.__table__).order_by(models.AlertEvent.id)).all()
    for a in alerts:
        rows = [{"action": e.action, "actor": e.actor, "to_state": e.to_state, "at_ts": e.at, "note": e.note}
                for e in events if e.alert_id == a.id]
        shown = history_entries({"history": rows, "outcome": a.outcome}, "zh-CN")
        text = " ".join(v for e in shown for k, v in e.items() if not (k == "actor" and v == "dispatcher"))
        assert not re.findall(r"[A-Za-z_]{3,}|\d{9,}", text.replace("LEL", "")), text
        assert "定位到场" in text and any(w in text for w in ("泄漏已处置", "误报", "设备故障")), text
