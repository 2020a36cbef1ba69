"""What a hostile-input sweep of the running demo sent the web server, answered as
docs/api.md says: JSON errors with a reason under /api/, 4xx for the caller's
mistakes, and no traceback in the log for a request anyone can make."""

from __future__ import annotations

import logging

from tests.dashboard import webkit

DEEP = "[" * 5000 + "]" * 5000


def test_a_script_dash_does_not_serve_is_404_for_anyone_without_a_traceback(web, caplog):
    _ctx, server, _app, _users = web
    client = server.test_client()  # nobody logged in
    caplog.set_level(logging.INFO)
    for path in ("/_dash-component-suites/dash/nope.js", "/_dash-component-suites/nope/x.js",
                 "/_dash-component-suites/dash/dcc/../../etc/passwd"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.status_code)
        assert "registered" not in r.get_data(as_text=True), "the answer lists the registered scripts"
    assert not [x for x in caplog.records if x.exc_info or x.levelno >= logging.ERROR], \
        [x.getMessage()[:200] for x in caplog.records if x.exc_info or x.levelno >= logging.ERROR]


def test_api_errors_are_json_with_a_reason(web, client_as):
    _ctx, server, _app, _users = web
    c = client_as("dispatcher")
    cases = [
        (c.get("/api/v1/no-such-route"), 404, "not_found"),
        (c.post("/api/v1/alerts/1/ack", data=DEEP, content_type="application/json"), 400, "bad_json"),
        # A JSON body over 1 MB is refused before it is parsed.
        (c.post("/api/v1/alerts/1/ack", data=b'{"note": "' + b"x" * (1024 * 1024) + b'"}',
                content_type="application/json"), 413, "too_large"),
    ]
    for r, status, code in cases:
        assert r.status_code == status and r.is_json, (r.status_code, r.get_data(as_text=True)[:200])
        assert r.get_json()["error"] == code and r.get_json()["message"]


def test_any_body_over_the_limit_is_refused_unread(web, client_as):
    from dashboard.server import MAX_BODY_BYTES

    c = client_as("dispatcher")
    r = c.post("/api/v1/plans/import", data=b"x" * (MAX_BODY_BYTES + 1), content_type="application/octet-stream")
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"


def test_a_callback_nested_too_deeply_is_refused_not_a_server_error(web, client_as):
    """The gate reads the body to find the callback (RecursionError, a 500, before);
    unreadable, it names no callback the role may call."""
    c = client_as("dispatcher")
    r = c.post("/_dash-update-component", data=DEEP, content_type="application/json",
               headers={webkit.CSRF_HEADER: webkit.csrf_of(c)})
    assert r.status_code == 403 and r.is_json


def test_weeks_months_and_dates_past_the_calendar_are_refused_not_a_server_error(web, client_as):
    """The sweep's OverflowError/ValueError 500s: a week, a month or a date at the
    calendar's edges (9999-W52 ends in the year 10000).  Each is a 400 naming the
    parameter; so are digits that are not ASCII and a trailing newline."""
    c = client_as("admin")
    posts = [
        ("/api/v1/plans", {"unit_id": "U1", "week": "9999-W52", "items": []}),
        ("/api/v1/plans", {"unit_id": "U1", "week": "0001-W01", "items": []}),
        ("/api/v1/reports", {"kind": "weekly", "period": "9999-W52"}),
        ("/api/v1/reports", {"kind": "weekly", "period": "0001-W01"}),
        ("/api/v1/reports", {"kind": "monthly", "period": "9999-12"}),
        ("/api/v1/reports", {"kind": "monthly", "period": "٢٠٢٦-11"}),
    ]
    for path, body in posts:
        r = c.post(path, json=body)
        assert r.status_code == 400 and r.is_json, (path, body, r.status_code, r.get_data(as_text=True)[:300])
    gets = ["/api/v1/plans/conflicts?week=9999-W52", "/api/v1/plans/conflicts?week=2026-W49%0A",
            "/api/v1/agencies/ratings?month=0001-01", "/api/v1/tasks?date=0001-01-01&inspector=I1",
            "/api/v1/tasks?date=9999-12-31&inspector=I1", "/api/v1/alerts?since=nan",
            "/api/v1/alerts?limit=%EF%BC%91%EF%BC%92", "/api/v1/alerts?limit=5_0", "/api/v1/alerts?limit=+5"]
    for path in gets:
        r = c.get(path)
        assert r.status_code == 400 and r.get_json()["error"] == "bad_parameter", \
            (path, r.status_code, r.get_data(as_text=True)[:300])
    assert c.get("/api/v1/alerts?limit=12&since=1718000000.5").status_code == 200


def test_a_hazard_takes_only_a_deadline_it_can_show_and_text_without_nul(web, client_as):
    """The sweep set a deadline of 1e300 (answered as null: the hazard could never fall
    overdue) and stored "a\\u0000b" as "a"."""
    c = client_as("dispatcher")
    r = c.post("/api/v1/hazards", json={"enterprise_id": "E1", "category": "SC01", "level": "major",
                                        "description": "a\u0000b"})
    assert r.status_code == 400 and {"field": "description", "reason": "control_character"} in r.get_json()["errors"]
    r = c.post("/api/v1/hazards", json={"enterprise_id": "E1", "category": "SC01", "level": "major",
                                        "description": "燃气管道\n老化"})
    assert r.status_code == 201, r.get_data(as_text=True)[:300]
    h = r.get_json()
    for odd in (1e300, 1e15, "9999-12-31", "0001-01-01", -1, "２０２７-01-01"):
        r = c.post(f"/api/v1/hazards/{h['id']}/assign", json={"deadline": odd})
        assert r.status_code == 400 and r.get_json()["errors"][0]["field"] == "deadline", (odd, r.get_json())
    r = c.post(f"/api/v1/hazards/{h['id']}/assign", json={"deadline": "2027-01-31"})
    assert r.status_code == 200 and r.get_json()["deadline"].startswith("2027-01-31T23:59:59")


def test_a_missing_enterprise_is_a_bad_request_not_a_404(web, client_as):
    c = client_as("admin")
    r = c.get("/api/v1/self-inspections")
    assert (r.status_code, r.get_json()["error"]) == (400, "missing_field")
    r = c.post("/api/v1/self-inspections", json={"items": [{"code": "SC01", "ok": True}], "enterprise_id": [1]})
    assert (r.status_code, r.get_json()["error"]) == (400, "missing_field")
    assert c.get("/api/v1/self-inspections?enterprise_id=E1").status_code == 200
