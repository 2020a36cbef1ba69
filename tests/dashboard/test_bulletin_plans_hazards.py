"""The bulletin's plans, hazards and red-light sections (issue 17 §1: plan completion,
duplicates avoided by planning, hazards found, closed and overdue, red-light enterprises):
the archived numbers equal the API's for the same period, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest

from dashboard import bulletins
from data import report_store
from data.agencies_store import AgenciesStore
from data.plans_store import PlansStore
from reports import period as P
from tests.dashboard.test_api_agencies import api_client
from tests.data.test_agencies_store import _setup_month


@pytest.fixture
def api(settings, engine, redis_client):
    yield from api_client(settings, engine, redis_client)


def test_the_months_plans_hazards_and_red_light_equal_the_api(api, engine, settings):
    plans = PlansStore(engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=settings.interval_days(),
                       tolerance_d=settings.plan_match_tolerance_d)
    _setup_month(engine, AgenciesStore(engine, plans))  # plans of three weeks, visits, hazards in 2026-11
    g = bulletins.generate(engine, settings, "monthly", "2026-11", now=time.time(), langs=("zh-CN",))
    numbers = report_store.get(engine, g.id)["numbers"]
    p = P.parse("monthly", "2026-11")

    # Plans: the sums of GET /api/v1/plans/actual over the month's weeks.
    weeks = bulletins.period_weeks("monthly", "2026-11")
    assert weeks == ["2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]  # the Mondays in November
    kpis = [api("GET", f"/api/v1/plans/actual?week={w}").get_json()["kpis"] for w in weeks]
    items, done = sum(k["items"] for k in kpis), sum(k["done"] for k in kpis)
    assert numbers["plans"] == {
        "plan_items": items, "plan_done": done, "plan_completion_pct": round(100.0 * done / items, 1),
        "plan_unplanned_visits": sum(k["unplanned_visits"] for k in kpis),
        "plan_duplicates_avoided": sum(k["conflicts_resolved"] for k in kpis),
        "plan_duplicates_happened": sum(k["duplicates_happened"] for k in kpis)}
    assert items == 4 and done == 2  # the fixture's known outcome (tests/data/test_agencies_store.py)

    # Hazards: counted from GET /api/v1/hazards.
    hz = api("GET", "/api/v1/hazards?limit=1000").get_json()
    in_period = [h for h in hz if p.start_ts <= h["reported_ts"] < p.end_ts]
    assert in_period, "the fixture has hazards in November"
    assert numbers["hazards"] == {
        "hazards_found": len(in_period), "hazards_found_major": sum(1 for h in in_period if h["level"] == "major"),
        "hazards_closed": sum(1 for h in hz if h["closed_ts"] and p.start_ts <= h["closed_ts"] < p.end_ts),
        "hazards_open": sum(1 for h in hz if h["state"] != "closed"),
        "hazards_overdue": sum(1 for h in hz if h["overdue"]),
        "hazards_major_open": sum(1 for h in hz if h["level"] == "major" and h["state"] != "closed")}

    # Red light: GET /api/v1/red-light, by rule.
    red = api("GET", "/api/v1/red-light").get_json()
    assert numbers["red_light"]["red_light"] == len(red) > 0
    for rule in ("no_self_inspection", "zero_hazards", "overdue_hazards"):
        assert numbers["red_light"][f"red_light_{rule}"] == sum(
            1 for r in red if rule in [x["rule"] for x in r["reasons"]])
    table = g.report.section("red_light").tables[0]
    assert [row[0] for row in table.rows] == [r["name"] for r in red][:10]

    html = (g.dir / g.files["zh-CN"]["html"]).read_text(encoding="utf-8")
    for title in ("周计划执行与计划去重", "隐患发现、销号与逾期", "红灯企业"):
        assert title in html, title
