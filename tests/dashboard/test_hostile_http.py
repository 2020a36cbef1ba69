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
