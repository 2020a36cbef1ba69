"""Login, logout, throttling, the page gate, and the role check on Dash's callback
endpoint (a crafted request from a wall account is refused and audited)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from data import audit
from data.models import Alert
from tests.dashboard import webkit


def audit_actions(engine, action):
    return [r for r in audit.entries(engine, action=action)]


# --- pages need a login ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/wall", "/dispatch", "/officer", "/replay", "/enterprise/E1", "/"])
def test_pages_redirect_to_login(web, path):
    _ctx, server, _app, _users = web
    resp = server.test_client().get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/login")


@pytest.mark.parametrize("path", ["/_dash-layout", "/_dash-dependencies"])
def test_dash_endpoints_need_a_login(web, path):
    _ctx, server, _app, _users = web
    assert server.test_client().get(path).status_code == 401


def test_callbacks_need_a_login(web):
    _ctx, server, _app, _users = web
    body = webkit.callback_body(webkit.key_of(server, "wall", "wall_alerts"),
                                [{"id": "wall-tick", "property": "n_intervals", "value": 1}])
    assert webkit.call_callback(server.test_client(), body, csrf=None).status_code == 401


def test_an_unknown_api_path_is_a_json_404_not_the_page_shell(web):
    _ctx, server, _app, _users = web
    resp = server.test_client().get("/api/v1/no-such-route")
    assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"


def test_login_page_is_public_and_bilingual(web):
    _ctx, server, _app, _users = web
    c = server.test_client()
    zh = c.get("/login").get_data(as_text=True)
    assert "登录" in zh and 'lang="zh-CN"' in zh
    en = c.get("/login?lang=en").get_data(as_text=True)
    assert "Log in" in en and "登录" not in en and 'lang="en"' in en


# --- login ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role,home", [("wall", "/wall"), ("dispatcher", "/dispatch"), ("admin", "/dispatch"),
                                       ("officer", "/officer")])
def test_login_redirects_by_role(web, role, home):
    ctx, server, _app, _users = web
    c = server.test_client()
    resp = webkit.login(c, webkit.USERNAMES[role])
    assert resp.status_code == 302 and resp.headers["Location"] == home
    assert c.get(home).status_code == 200
    assert c.get("/").headers["Location"] == home
    entry = audit_actions(ctx.engine, "login")[-1]
    assert entry.actor == webkit.USERNAMES[role] and json.loads(entry.detail)["role"] == role


def test_session_cookie_is_httponly_and_samesite(web):
    _ctx, server, _app, _users = web
    resp = webkit.login(server.test_client(), "disp1")
    cookies = resp.headers.getlist("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("anjian_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    csrf_cookie = next(c for c in cookies if c.startswith("anjian_csrf="))
    assert "SameSite=Strict" in csrf_cookie  # read by Dash's renderer, so not HttpOnly


def test_next_is_followed_only_on_this_site(web):
    _ctx, server, _app, _users = web
    c = server.test_client()
    page = c.get("/login?next=/replay")
    token = page.get_data(as_text=True).split('name="csrf" value="')[1].split('"')[0]
    resp = c.post("/login", data={"username": "disp1", "password": webkit.PASSWORD, "csrf": token, "next": "/replay"})
    assert resp.headers["Location"] == "/replay"
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        c = server.test_client()
        page = c.get("/login")
        token = page.get_data(as_text=True).split('name="csrf" value="')[1].split('"')[0]
        resp = c.post("/login", data={"username": "disp1", "password": webkit.PASSWORD, "csrf": token, "next": evil})
        assert resp.headers["Location"] == "/dispatch", evil


def test_login_form_needs_its_token(web):
    _ctx, server, _app, _users = web
    resp = server.test_client().post("/login", data={"username": "disp1", "password": webkit.PASSWORD})
    assert resp.status_code == 400


def test_failed_logins_are_throttled_per_user_and_address(web):
    ctx, server, _app, _users = web
    c = server.test_client()
    for _ in range(3):  # web_settings: login_max_failures = 3
        assert webkit.login(c, "disp1", "wrong").status_code == 401
    resp = webkit.login(c, "disp1")  # the right password, but locked now
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert webkit.login(c, "disp1").status_code == 429
    # The same user from another address, and another user from this one, are not locked.
    other = server.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.9.8.7"
    assert webkit.login(other, "disp1").status_code == 302
    assert webkit.login(server.test_client(), "wall1").status_code == 302
    failed = audit_actions(ctx.engine, "login_failed")
    assert len(failed) == 3 and all(f.target == "disp1" for f in failed)
    assert len(audit_actions(ctx.engine, "login_throttled")) == 1  # audited once per lockout


def test_logout(web, client_as):
    ctx, _server, _app, _users = web
    c = client_as("dispatcher")
    assert c.get("/dispatch").status_code == 200
    assert c.post("/logout", data={"csrf": "wrong"}).status_code == 400
    resp = c.post("/logout", data={"csrf": webkit.csrf_of(c)})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    assert c.get("/dispatch").status_code == 302
    assert audit_actions(ctx.engine, "logout")[-1].actor == "disp1"


@pytest.mark.parametrize("role,path", [("officer", "/wall"), ("wall", "/dispatch"), ("wall", "/officer"),
                                       ("officer", "/dispatch"), ("wall", "/replay"), ("wall", "/enterprise/E1"),
                                       ("dispatcher", "/officer")])
def test_a_page_refuses_a_role_it_does_not_admit(client_as, role, path):
    c = client_as(role)
    resp = c.get(path)
    assert resp.status_code == 403
    assert "无权访问" in resp.get_data(as_text=True)


def test_language_choice_sticks_to_the_session(client_as):
    c = client_as("dispatcher")
    c.get("/dispatch?lang=en")
    with c.session_transaction() as s:
        assert s["lang"] == "en"


# --- the callback endpoint -----------------------------------------------------------------------


def _ack_body(server, alert_id: int) -> dict:
    # What the console's ack button puts into its command store (anjian.js).
    command = {"type": "alert-action", "alert": alert_id, "action": "ack", "outcome": "", "n": 1}
    key = webkit.key_of(server, "dispatch", "dispatch_act")
    return {
        "output": key,
        "outputs": [{"id": "dispatch-feedback", "property": "children"},
                    {"id": "dispatch-feedback", "property": "className"},
                    {"id": "dispatch-action-done", "property": "data"}],
        "inputs": [{"id": "dispatch-command", "property": "data", "value": command}],
        "state": [{"id": "dispatch-action-done", "property": "data", "value": 0}],
        "changedPropIds": ["dispatch-command.data"],
    }


def test_a_crafted_ack_from_a_wall_account_is_refused_and_audited(web, client_as):
    ctx, server, _app, _users = web
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    c = client_as("wall")
    resp = webkit.call_callback(c, _ack_body(server, alert_id))
    assert resp.status_code == 403
    with ctx.engine.connect() as conn:
        assert conn.execute(select(Alert.state).where(Alert.id == alert_id)).scalar_one() == "open"
    denied = audit_actions(ctx.engine, "access_denied")
    assert denied and denied[-1].actor == "wall1"
    detail = json.loads(denied[-1].detail)
    assert detail["role"] == "wall" and "dispatch-feedback" in detail["callback"]
    assert audit.verify(ctx.engine) is None


def test_the_same_ack_from_a_dispatcher_works(web, client_as):
    ctx, server, _app, _users = web
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    resp = webkit.call_callback(client_as("dispatcher"), _ack_body(server, alert_id))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    with ctx.engine.connect() as conn:
        assert conn.execute(select(Alert.state).where(Alert.id == alert_id)).scalar_one() == "acknowledged"
    # The store audits the transition itself, with the person who did it.
    assert any(e.actor == "disp1" for e in audit.entries(ctx.engine) if e.action.startswith("alert"))


def test_officers_cannot_use_the_dispatch_console(web, client_as):
    ctx, server, _app, _users = web
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    assert webkit.call_callback(client_as("officer"), _ack_body(server, alert_id)).status_code == 403


def test_a_callback_needs_the_csrf_header(web, client_as):
    ctx, server, _app, _users = web
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    c = server.test_client()
    assert webkit.login(c, "disp1").status_code == 302  # the cookie alone, no header
    resp = webkit.call_callback(c, _ack_body(server, alert_id), csrf=None)
    assert resp.status_code == 403 and resp.get_json()["error"] == "csrf"
    assert webkit.call_callback(c, _ack_body(server, alert_id), csrf="forged").status_code == 403
    with ctx.engine.connect() as conn:
        assert conn.execute(select(Alert.state).where(Alert.id == alert_id)).scalar_one() == "open"


def test_an_unknown_callback_is_refused(client_as):
    body = webkit.callback_body("..made-up.children..", [{"id": "x", "property": "n_clicks", "value": 1}])
    assert webkit.call_callback(client_as("admin"), body).status_code == 403


def test_no_wall_role_on_any_callback_that_changes_state(web):
    _ctx, server, _app, _users = web
    policy = server.extensions["anjian_policy"]
    changing = policy.changing_keys()
    assert len(changing) >= 2  # dispatch and officer actions
    for key in changing:
        assert "wall" not in policy.rules[key].roles, key


def test_the_page_router_builds_no_layout_for_a_role_the_page_does_not_admit(client_as):
    body = {"output": "..\u005fpages_content.children...\u005fpages_store.data..",
            "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
            "inputs": [{"id": "_pages_location", "property": "pathname", "value": "/dispatch"},
                       {"id": "_pages_location", "property": "search", "value": ""}],
            "changedPropIds": ["_pages_location.pathname"], "state": []}
    resp = webkit.call_callback(client_as("wall"), body)
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert "dispatch-queue" not in text and "aj-forbidden" in text
    resp = webkit.call_callback(client_as("dispatcher"), body)
    assert "dispatch-queue" in resp.get_data(as_text=True)
