"""Login, logout, and the gate in front of every Dash page and callback.

* ``/login`` (GET form, POST check) and ``/logout`` (POST): Flask-served HTML in
  the catalogue's language.  A login is audited (``login``, ``login_failed``,
  ``login_throttled``, ``logout``) with ``data.audit.append``.
* Failed logins are counted per (username, address) in Redis, shared by every
  web process.  After ``settings.login_max_failures`` failures that pair is
  refused for ``settings.login_lockout_s`` without even checking the password,
  and the refusal is audited once per lockout (so a password-guessing loop
  cannot flood the audit log either).
* The gate (a ``before_request`` hook):
    - a page needs a login (else: redirect to ``/login?next=...``) and a role
      the page admits (else: 403 page);
    - ``/`` sends a logged-in user to the home page of their role;
    - Dash's own endpoints need a login (401 JSON);
    - ``/_dash-update-component`` also needs the CSRF header (double submit:
      the cookie Dash's renderer reads equals the token in the signed session)
      and a role the called callback admits (``CallbackPolicy``).  A refused
      callback answers 403 and is audited as ``access_denied``.
  The API (``/api/v1``) keeps its own checks (``dashboard.api.require``), but a
  state change (not GET/HEAD/OPTIONS) made with the login cookie rather than a bearer
  token needs the same CSRF header, or it is refused (403 ``csrf``) and audited.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, g, jsonify, redirect, render_template_string, request, session

from data import audit
from data.auth import Principal, check_password
from data.login_throttle import LoginThrottle
from dashboard.api import current_principal
from dashboard.i18n import LANGS, normalise_lang, t

log = logging.getLogger(__name__)

CSRF_COOKIE = "anjian_csrf"
CSRF_HEADER = "X-CSRFToken"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A callback answered 401 with this text in its body makes dash-renderer call its
# ``request_refresh_jwt`` hook (the text is the renderer's JWT_EXPIRED_MESSAGE); our
# hook (``SESSION_HOOKS``) reloads the page, which leads to the login page, so a
# wall whose session ended does not stay frozen on stale numbers.
SESSION_ENDED = "JWT Expired"
# Dash's renderer hooks (``dash.Dash(hooks=...)``): JavaScript, the function in
# dashboard/assets/anjian.js.
SESSION_HOOKS = {"request_refresh_jwt": "function (jwt) { return window.anjianSessionEnded(jwt); }"}
HOME_BY_ROLE = {"wall": "/wall", "dispatcher": "/dispatch", "admin": "/dispatch", "officer": "/officer",
                "enterprise": "/my"}

# Paths anyone may fetch: the login page itself, Dash's static bundles and our
# assets (CSS/JS, no data), the API (it checks credentials itself), metrics
# (likewise) and the favicon.
PUBLIC_PREFIXES = ("/api/", "/assets/", "/_dash-component-suites/", "/static/")
PUBLIC_PATHS = frozenset({"/login", "/logout", "/metrics", "/_favicon.ico", "/favicon.ico"})


def home_for(p: Principal | None) -> str:
    return "/login" if p is None else HOME_BY_ROLE.get(p.role, "/login")


def current_lang(ctx=None) -> str:
    lang = session.get("lang")
    if lang in LANGS:
        return lang
    if ctx is None:
        from flask import current_app

        ctx = current_app.extensions.get("anjian")
    return normalise_lang(getattr(getattr(ctx, "settings", None), "language", None))


# --- callback policy ------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackRule:
    page: str
    roles: tuple[str, ...]
    changes_state: bool


class CallbackPolicy:
    """Which roles may call which Dash callback, keyed as Dash keys them (its output string)."""

    def __init__(self):
        self.rules: dict[str, CallbackRule] = {}

    def add(self, key: str, rule: CallbackRule) -> None:
        self.rules[key] = rule

    def rule_for(self, key: str | None) -> CallbackRule | None:
        return self.rules.get(key or "")

    @staticmethod
    def is_router(key: str | None) -> bool:
        """Dash's own page router: any logged-in user (the page layouts check roles)."""
        if not key:
            return False
        parts = [p for p in key.strip(".").split("...") if p]
        return bool(parts) and all(p.lstrip(".").startswith("_pages_") for p in parts)

    def changing_keys(self) -> list[str]:
        return [k for k, r in self.rules.items() if r.changes_state]


# --- the login page ---------------------------------------------------------------------

LOGIN_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t('login.title') }} · {{ t('app.name') }}</title>
<link rel="stylesheet" href="/assets/anjian.css">
</head>
<body class="aj-login-body">
<main class="aj-login">
  <h1 id="login-title">{{ t('app.name') }}</h1>
  <p class="aj-login-sub">{{ t('app.district') }}</p>
  {% if message %}<p class="aj-login-msg {{ message_class }}" id="login-message" role="alert">{{ message }}</p>{% endif %}
  <form method="post" action="/login" autocomplete="on">
    <input type="hidden" name="csrf" value="{{ csrf }}">
    <input type="hidden" name="next" value="{{ next }}">
    <input type="hidden" name="lang" value="{{ lang }}">
    <label for="username">{{ t('login.username') }}</label>
    <input id="username" name="username" value="{{ username }}" autocomplete="username" required autofocus>
    <label for="password">{{ t('login.password') }}</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>
    <button type="submit" id="login-submit">{{ t('login.submit') }}</button>
  </form>
  <p class="aj-login-lang"><a id="lang-toggle" href="/login?lang={{ other_lang }}{% if next %}&amp;next={{ next|urlencode }}{% endif %}"
     title="{{ t('lang.switch_title') }}">{{ t('lang.switch') }}</a></p>
</main>
</body>
</html>
"""

FORBIDDEN_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ t('auth.forbidden_title') }}</title><link rel="stylesheet" href="/assets/anjian.css"></head>
<body class="aj-login-body"><main class="aj-login"><h1>{{ t('auth.forbidden_title') }}</h1>
<p id="forbidden-message">{{ t('auth.forbidden_body', role=role) }}</p>
<p><a href="{{ home }}">{{ t('auth.home') }}</a></p></main></body></html>
"""


def safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host, no //): no open redirect."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if parts.path in ("/login", "/logout"):
        return None
    return target


def client_address() -> str:
    # The direct peer.  Behind a reverse proxy, configure werkzeug's ProxyFix in
    # the deployment so this is the real client; never trust X-Forwarded-For here.
    return request.remote_addr or "?"


def ensure_csrf() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


# --- install ---------------------------------------------------------------------------


def install(server: Flask, ctx, policy: CallbackPolicy, page_roles: Mapping[str, Iterable[str]],
            dash_prefix: str = "/") -> None:
    """Add /login, /logout and the gate to ``server``.

    ``page_roles``: page path (``/wall``; ``/enterprise`` covers ``/enterprise/...``) -> roles.
    """
    settings = ctx.settings
    throttle = LoginThrottle(ctx.redis, settings.redis_prefix, settings.login_max_failures,
                             settings.login_lockout_s)
    server.extensions["anjian_throttle"] = throttle
    page_roles = {path.rstrip("/") or "/": tuple(roles) for path, roles in page_roles.items()}
    update_path = f"{dash_prefix}_dash-update-component"
    dash_internal = tuple(f"{dash_prefix}{p}" for p in ("_dash-", "_reload-hash", "_alive_"))

    def lang_of_request() -> str:
        wanted = request.values.get("lang")
        if wanted:
            lang = normalise_lang(wanted)
            session["lang"] = lang
            return lang
        return current_lang(ctx)

    def render_login(message: str | None = None, message_class: str = "", status: int = 200,
                     username: str = "", next_path: str | None = None):
        lang = lang_of_request()
        token = secrets.token_urlsafe(24)
        session["login_csrf"] = token
        body = render_template_string(
            LOGIN_TEMPLATE, lang=lang, t=lambda k, **kw: t(k, lang, **kw), csrf=token,
            next=next_path or "", username=username, message=message, message_class=message_class,
            other_lang="en" if lang != "en" else "zh-CN",
        )
        return body, status, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}

    @server.route("/login", methods=["GET", "POST"])
    def login():
        if request.method == "GET":
            p = current_principal()
            nxt = safe_next(request.args.get("next"))
            if p is not None and "lang" not in request.args:
                return redirect(nxt or home_for(p))
            msg = t("login.logged_out", current_lang(ctx)) if request.args.get("bye") else None
            return render_login(msg, next_path=nxt)
        lang = lang_of_request()
        username = (request.form.get("username") or "").strip()[:64]
        password = request.form.get("password") or ""
        nxt = safe_next(request.form.get("next"))
        expected = session.pop("login_csrf", None)
        if not expected or not hmac.compare_digest(expected, request.form.get("csrf") or ""):
            return render_login(t("login.expired", lang), "aj-error", 400, username, nxt)
        addr = client_address()
        wait_s = throttle.retry_after_s(username, addr)
        if wait_s:
            if throttle.mark_refusal_audited(username, addr):
                audit.append(ctx.engine, username or "?", "login_throttled", username or None,
                             {"address": addr, "retry_after_s": wait_s})
            body, _, headers = render_login(t("login.throttled", lang, minutes=max(1, round(wait_s / 60))),
                                            "aj-error", 429, username, nxt)
            headers["Retry-After"] = str(wait_s)
            return body, 429, headers
        p = check_password(ctx.engine, username, password) if username and password else None
        if p is None:
            n = throttle.fail(username, addr)
            audit.append(ctx.engine, username or "?", "login_failed", username or None,
                         {"address": addr, "failures": n})
            return render_login(t("login.failed", lang), "aj-error", 401, username, nxt)
        throttle.reset(username, addr)
        session.clear()  # no session fixation: a fresh session for the new login
        session["uid"] = p.user_id
        session["lang"] = lang
        csrf = ensure_csrf()
        audit.append(ctx.engine, p.username, "login", p.username, {"address": addr, "role": p.role})
        resp = redirect(nxt if nxt and _may_see(p, urlsplit(nxt).path) else home_for(p))
        resp.set_cookie(CSRF_COOKIE, csrf, httponly=False, samesite="Strict",
                        secure=server.config.get("SESSION_COOKIE_SECURE", False))
        return resp

    @server.route("/logout", methods=["POST"])
    def logout():
        p = current_principal()
        token = session.get("csrf")
        if token and not hmac.compare_digest(token, request.form.get("csrf") or ""):
            if p is not None:
                audit.append(ctx.engine, p.username, "access_denied", "/logout",
                             {"method": request.method, "role": p.role, "reason": "csrf"})
            return jsonify({"error": "csrf", "message": "bad or missing CSRF token"}), 400
        lang = current_lang(ctx)
        if p is not None and session.get("uid") is not None:
            audit.append(ctx.engine, p.username, "logout", p.username, {"address": client_address()})
        session.clear()
        session["lang"] = lang
        resp = redirect("/login?bye=1")
        resp.delete_cookie(CSRF_COOKIE)
        return resp

    def _page_rule(path: str) -> tuple[str, ...] | None:
        path = path.rstrip("/") or "/"
        if path in page_roles:
            return page_roles[path]
        for prefix, roles in page_roles.items():
            if prefix != "/" and path.startswith(prefix + "/"):
                return roles
        return None

    def _may_see(p: Principal, path: str) -> bool:
        roles = _page_rule(path)
        return roles is None or p.role in roles

    server.extensions["anjian_may_see"] = _may_see

    def forbidden_page(p: Principal):
        lang = current_lang(ctx)
        body = render_template_string(FORBIDDEN_TEMPLATE, lang=lang, t=lambda k, **kw: t(k, lang, **kw),
                                      role=t(f"role.{p.role}", lang), home=home_for(p))
        return body, 403, {"Content-Type": "text/html; charset=utf-8"}

    def deny_callback(p: Principal, key: str | None, reason: str):
        audit.append(ctx.engine, p.username, "access_denied", update_path,
                     {"method": request.method, "role": p.role, "callback": (key or "")[:500], "reason": reason})
        return jsonify({"error": "forbidden", "message": f"role {p.role} may not call this callback"}), 403

    def _by_session(p: Principal | None) -> bool:
        return p is not None and not request.headers.get("Authorization", "").lower().startswith("bearer ")

    def _csrf_refusal(p: Principal, path: str):
        """None when the CSRF header matches the session's token (double submit), else the 403."""
        token = session.get("csrf")
        sent = request.headers.get(CSRF_HEADER, "")
        if token and hmac.compare_digest(token, sent):
            return None
        # Audited like a role refusal: a forged request is as interesting as a forbidden one.
        audit.append(ctx.engine, p.username, "access_denied", path,
                     {"method": request.method, "role": p.role, "reason": "csrf",
                      "origin": (request.headers.get("Origin") or "")[:200]})
        return jsonify({"error": "csrf", "message": f"missing or wrong CSRF token (header {CSRF_HEADER})"}), 403

    @server.before_request
    def gate():
        path = request.path
        if path.startswith("/api/") and (request.url_rule is None or "<path:" in request.url_rule.rule):
            # Dash's catch-all page route would answer an unknown API path with
            # its HTML shell (200): an API client gets a 404 in JSON instead.
            return jsonify({"error": "not_found", "message": f"no route {path}"}), 404
        if path.startswith("/api/") and request.method not in SAFE_METHODS:
            # A state change made with the login cookie alone could come from any page the
            # user has open (a form on another port of the same host is "same site" to the
            # browser, so SameSite=Lax lets the cookie through): it needs the CSRF header,
            # which only a page of ours can read from the cookie and send.
            p = current_principal()
            if _by_session(p):
                refused = _csrf_refusal(p, path)
                if refused is not None:
                    return refused
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        p = current_principal()
        if path == update_path:
            if p is None:
                return jsonify({"error": "unauthorized", "message": "log in first", "dash": SESSION_ENDED}), 401
            if _by_session(p):
                refused = _csrf_refusal(p, update_path)
                if refused is not None:
                    return refused
            body = request.get_json(silent=True) or {}
            key = body.get("output") if isinstance(body, dict) else None
            rule = policy.rule_for(key)
            if rule is None:
                if policy.is_router(key):
                    g.principal = p
                    return None
                return deny_callback(p, key, "unknown_callback")
            if p.role not in rule.roles:
                return deny_callback(p, key, "role")
            g.principal = p
            return None
        if path.startswith(dash_internal):
            if p is None:
                return jsonify({"error": "unauthorized", "message": "log in first"}), 401
            return None
        # A page.
        if request.method not in ("GET", "HEAD"):
            return None if p is not None else (jsonify({"error": "unauthorized"}), 401)
        if "lang" in request.args:
            session["lang"] = normalise_lang(request.args.get("lang"))
        if p is None:
            nxt = request.full_path.rstrip("?") if request.query_string else path
            return redirect(f"/login?next={_quote(nxt)}")
        if path in ("", "/"):
            return redirect(home_for(p))
        if not _may_see(p, path):
            return forbidden_page(p)
        g.principal = p
        ensure_csrf()
        return None

    @server.after_request
    def csrf_cookie(resp):
        # Keep Dash's CSRF cookie in step with the session (e.g. after a server
        # restart with the same secret, or a login from another tab).
        token = session.get("csrf") if session.get("uid") is not None else None
        if token and request.cookies.get(CSRF_COOKIE) != token and resp.mimetype == "text/html":
            resp.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="Strict",
                            secure=server.config.get("SESSION_COOKIE_SECURE", False))
        return resp


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
