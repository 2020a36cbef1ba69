"""The agencies' ranking in the monthly district bulletin (issue 17 §2): the archived numbers
and the table equal GET /api/v1/agencies/ratings for the same month, on SQLite and PostgreSQL;
weekly and street bulletins have no agencies section."""

from __future__ import annotations

import pytest

from dashboard import bulletins
from data import report_queries, report_store
from data.agencies_store import AgenciesStore
from data.plans_store import PlansStore
from reports import period as P
from reports.model import Anchor
from reports.sections import build
from tests.dashboard.test_api_agencies import api_client
from tests.data.test_agencies_store import _setup_month, at


@pytest.fixture
def api(settings, engine, redis_client):
    yield from api_client(settings, engine, redis_client)


def test_the_monthly_bulletin_ranks_the_agencies_as_the_api_does(api, engine, settings):
    plans = PlansStore(engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=settings.interval_days(),
                       tolerance_d=settings.plan_match_tolerance_d)
    _setup_month(engine, AgenciesStore(engine, plans))
    now = at("2026-12-01", 8)
    g = bulletins.generate(engine, settings, "monthly", "2026-11", now=now, langs=("zh-CN",))
    ranked = api("GET", "/api/v1/agencies/ratings?month=2026-11").get_json()["agencies"]
    archived = report_store.get(engine, g.id)["numbers"]["agencies"]
    assert archived == {
        "agencies": len(ranked), "best_score": ranked[0]["score"],
        "hazards_found": sum(r["parts"]["detection"]["found"] for r in ranked),
        "hazards_missed": sum(r["parts"]["detection"]["missed"] for r in ranked),
        "duplicates": sum(r["parts"]["duplicates"]["count"] for r in ranked),
        "complaints": sum(r["parts"]["complaints"]["count"] for r in ranked)}
    assert archived == {"agencies": 3, "best_score": 54.75, "hazards_found": 4, "hazards_missed": 1, "duplicates": 1,
                        "complaints": 2}
    table = g.report.section("agencies").tables[0]
    assert [(row[0], row[1], row[2]) for row in table.rows] == [(r["rank"], r["name"], f"{r['score']:g}")
                                                                 for r in ranked]
    assert table.rows[0][3:] == ["1/5", "2/4", "2/2", 2, 3, 1, 1, 2]
    html = (g.dir / g.files["zh-CN"]["html"]).read_text(encoding="utf-8")
    assert "安全技术服务机构月度评价" in html and "深圳市龙安安全技术服务有限公司" in html and "54.75" in html
    # Weekly and street bulletins leave the agencies out.
    p = P.parse("weekly", "2026-W46")
    data = report_queries.gather(engine, settings.interval_days(), since=p.start_ts, until=p.end_ts,
                                 day_starts=p.day_starts(), days=[d.isoformat() for d in p.days()], now=now)
    assert build(data, kind="weekly", period=p.key, start_ts=p.start_ts, end_ts=p.end_ts, generated_at=now,
                 anchor=Anchor(None, 0)).section("agencies") is None
