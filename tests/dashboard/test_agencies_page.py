"""The /agencies page renders the month's ranking with every part, and the contracts, in
both languages (page functions called as the router and callbacks call them), and the
page is served to a dispatcher and refused to an officer."""

from __future__ import annotations

import json

from dashboard import ids
from dashboard.pages import agencies as page
from data.agencies_store import AgenciesStore
from tests.dashboard.webkit import as_user
from tests.data.test_agencies_store import _setup_month


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), default=str, ensure_ascii=False)


def test_the_agencies_page_shows_the_ranking_and_contracts(web, client_as):
    ctx, server, _app, users = web
    with server.app_context():
        _setup_month(ctx.engine, AgenciesStore(ctx.engine, page._api().plans_store()), city=False)
    with as_user(server, users["dispatcher"], lang="en"):
        shown = _text(page.ranking("2026-11", "en"))
        assert "54.75" in shown and "1/5 weeks on time, 1 late, 3 missing" in shown
        assert "3 found, 1 missed" in shown and "2/2 served, 2 visits" in shown and "-10 pts: 2" in shown
        root = _text(page.build(users["dispatcher"], "zh-CN"))
        assert ids.AGENCIES_RANKING in root and ids.AGENCIES_CONTRACTS in root
        assert "安全技术服务机构" in root
        # A contract's dates, each in a span that never breaks (a phone broke "2027-09-" / "07").
        assert "Span(children='2026-10-01', className='aj-nowrap')" in root, root
        assert "Span(children='2026-12-31', className='aj-nowrap')" in root
        assert "合同 4 份" in root
        # Contracts by the enterprise's name, linked to its profile; no unit or enterprise codes.
        contracts = _text(page.contracts("zh-CN"))
        assert "深圳市龙华区老王餐饮店" in contracts and "/enterprise/E1" in contracts
        assert "'E1 ·" not in contracts and "(A1)" not in contracts and not any(
            f"({u})" in contracts for u in ("U1", "U2", "A1", "A2")), contracts
    assert client_as("dispatcher").get("/agencies").status_code == 200
    assert client_as("officer").get("/agencies").status_code in (302, 403)
