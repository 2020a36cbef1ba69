"""The agencies API (dashboard/api_agencies.py) through Flask's test client, on SQLite and
PostgreSQL: the agencies with their contracts, contracts and complaints (roles, 400s, audit),
and the month's ranking with every part equal to the known values."""

from __future__ import annotations

import pytest

from dashboard.context import WebContext
from dashboard.server import create_server
from data import audit
from data.agencies_store import AgenciesStore
from data.auth import create_token, create_user
from data.plans_store import PlansStore
from tests.conftest import TEST_MQTT_URL
from tests.data.test_agencies_store import _setup_month, write_agencies


def api_client(settings, engine, redis_client):
    """Yields ``call(method, path, role="dispatcher", **kw)``: the API as each role."""
    ctx = WebContext(settings, engine, redis_client, TEST_MQTT_URL)
    app = create_server(ctx)
    app.config["TESTING"] = True
    client = app.test_client()
    tokens = {r: create_token(engine, r)[0] for r in ("dispatcher", "admin", "wall")}
    create_user(engine, "office-st1", None, "officer", streets=["ST1"], grids=["G1"])
    tokens["officer"] = create_token(engine, "officer", username="office-st1")[0]

    def call(method, path, role="dispatcher", **kw):
        return client.open(path, method=method, headers={"Authorization": f"Bearer {tokens[role]}"}, **kw)

    yield call
    ctx.feed.stop()


@pytest.fixture
def api(settings, engine, redis_client):
    yield from api_client(settings, engine, redis_client)


def test_the_months_ranking_shows_every_part(api, engine, settings):
    plans = PlansStore(engine, duplicate_window_s=settings.duplicate_window_s, intervals_d=settings.interval_days(),
                       tolerance_d=settings.plan_match_tolerance_d)
    _setup_month(engine, AgenciesStore(engine, plans))
    r = api("GET", "/api/v1/agencies/ratings?month=2026-11", role="wall")
    assert r.status_code == 200, r.get_data(as_text=True)
    out = r.get_json()
    assert out["month"] == "2026-11"
    assert [(a["id"], a["rank"], a["score"]) for a in out["agencies"]] == [("A1", 1, 54.75), ("A2", 2, 35.0),
                                                                          ("A3", 3, 0.0)]
    parts = out["agencies"][0]["parts"]
    assert {k: v["points"] for k, v in parts.items()} == {"timeliness": 3.0, "completion": 12.5, "service": 25.0,
                                                          "detection": 26.25, "duplicates": -2.0,
                                                          "complaints": -10.0}
    assert (parts["detection"]["found"], parts["detection"]["missed"]) == (3, 1)
    listed = {a["id"]: a for a in api("GET", "/api/v1/agencies").get_json()["agencies"]}
    assert (listed["A1"]["kind"], listed["A1"]["contracts"], listed["A2"]["contracts"]) == ("agency", 4, 0)
    for odd in ("2026-13", "0001-01", "9999-12", "١٢٣٤-01"):
        bad = api("GET", f"/api/v1/agencies/ratings?month={odd}")
        assert bad.status_code == 400 and bad.get_json()["error"] == "bad_parameter", (odd, bad.get_json())
        assert bad.get_json()["message"].startswith("month must be a month YYYY-MM")
    assert api("GET", "/api/v1/agencies/ratings?month=2026-11", role="officer").status_code == 403


def test_contracts_and_complaints_roles_errors_and_audit(api, engine):
    write_agencies(engine)
    body = {"enterprise_id": "E1", "start_date": "2026-11-01", "end_date": "2027-10-31"}
    r = api("POST", "/api/v1/agencies/A1/contracts", role="wall", json=body)
    assert r.status_code == 403
    assert api("POST", "/api/v1/agencies/A1/contracts", role="officer", json=body).status_code == 403
    r = api("POST", "/api/v1/agencies/A1/contracts", role="admin", json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    c = r.get_json()
    assert (c["agency_id"], c["enterprise_id"], c["created_by"]) == ("A1", "E1", "api-admin-1")
    assert c["created_at"].endswith("+08:00")
    got = api("GET", "/api/v1/agencies/A1/contracts", role="wall").get_json()
    assert got["contracts"] == [c]
    r = api("POST", "/api/v1/agencies/A1/contracts", json={"enterprise_id": "E9", "start_date": "2026-11",
                                                           "end_date": "2026-11-30"})
    assert r.status_code == 400
    assert {(e["field"], e["reason"]) for e in r.get_json()["errors"]} == {
        ("enterprise_id", "no such enterprise"), ("start_date", "required, a date YYYY-MM-DD")}
    assert api("POST", "/api/v1/agencies/U1/contracts", json=body).status_code == 404
    assert api("GET", "/api/v1/agencies/NOPE/contracts").status_code == 404
    assert api("POST", "/api/v1/agencies/A1/contracts", data="[1]", content_type="application/json").status_code == 400

    r = api("POST", "/api/v1/agencies/A1/complaints", json={"note": "报告与现场不符", "enterprise_id": "E2"})
    assert r.status_code == 201 and r.get_json()["recorded_by"].startswith("api-dispatcher")
    r = api("POST", "/api/v1/agencies/A1/complaints", json={"note": ""})
    assert r.status_code == 400 and r.get_json()["errors"][0]["field"] == "note"
    assert api("POST", "/api/v1/agencies/A1/complaints", role="wall", json={"note": "x"}).status_code == 403
    notes = api("GET", "/api/v1/agencies/A1/complaints", role="admin").get_json()["complaints"]
    assert [n["note"] for n in notes] == ["报告与现场不符"]

    actions = [e.action for e in audit.entries(engine)]
    assert actions.count("agency_contract_create") == 1 and actions.count("agency_complaint") == 1
    assert actions.count("access_denied") == 3
    assert audit.verify(engine) is None
