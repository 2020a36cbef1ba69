"""What every page shares: who is asking, in which language, the page frame,
formatting, and the adapter to the alert store.

Nothing here holds state between requests: the WebContext, the city map cache
and the tile preset hang off the Flask app (``current_app.extensions``), the
user and the language come from the request's session.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from dash import dcc, html
from flask import current_app, g, has_request_context, session

from dashboard import ids
from dashboard.api import current_principal
from dashboard.auth_views import HOME_BY_ROLE, current_lang, ensure_csrf
from dashboard.i18n import has, t

log = logging.getLogger(__name__)

SHANGHAI = ZoneInfo("Asia/Shanghai")
SEVERITY_RANK = {"critical": 2, "warning": 1, "info": 0}
ACTIVE_STATES = ("open", "acknowledged", "dispatched", "on_scene")

NAV = (  # (path, catalogue key, roles)
    ("/wall", "nav.wall", ("wall", "dispatcher", "admin")),
    ("/dispatch", "nav.dispatch", ("dispatcher", "admin")),
    ("/officer", "nav.officer", ("officer", "admin")),
    ("/replay", "nav.replay", ("dispatcher", "admin")),
)


# --- the request's world ------------------------------------------------------------------


def web():
    """The WebContext app.py handed to create_server()."""
    return current_app.extensions["anjian"]


def city():
    """The city map (areas, enterprise positions) in the display datum."""
    return current_app.extensions["anjian_city"].get()


def preset():
    """The tile preset in use (settings.tiles after any fallback)."""
    return current_app.extensions["anjian_tiles"]


def principal():
    p = getattr(g, "principal", None) if has_request_context() else None
    return p if p is not None else current_principal()


def lang() -> str:
    return current_lang(web())


def L(key: str, **fmt) -> str:
    """``t(key)`` in the language of the request."""
    return t(key, lang(), **fmt)


def label(prefix: str, value, lang_: str) -> str:
    """A vocabulary word (alert type, state, outcome...) in ``lang_``; unknown values as they are."""
    if value is None:
        return t("common.unknown", lang_)
    key = f"{prefix}.{value}"
    return t(key, lang_) if has(key) else str(value)


# --- formatting -----------------------------------------------------------------------------


def local(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(float(ts), SHANGHAI)


def fmt_time(ts: float | None, with_date: bool = False) -> str:
    dt = local(ts)
    if dt is None:
        return "—"
    return dt.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M:%S")


def fmt_age(seconds: float | None, lang_: str) -> str:
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return t("common.seconds_ago", lang_, n=s)
    if s < 3600:
        return t("common.minutes_ago", lang_, n=s // 60)
    return t("common.hours_ago", lang_, n=round(s / 3600, 1))


def fmt_distance(m: float | None, lang_: str) -> str:
    if m is None:
        return "—"
    if m < 1000:
        return t("common.m", lang_, n=int(round(m)))
    return t("common.km", lang_, n=round(m / 1000.0, 1))


def to_ts(value) -> float | None:
    """Epoch seconds from what the stores hand out (float, int, ISO string, datetime)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return dt.timestamp()


# --- alerts ------------------------------------------------------------------------------------


def alert_store():
    """``ctx.alerts`` (data.alert_store.AlertStore) or None while it is not wired in."""
    return getattr(web(), "alerts", None)


def active_alerts(p=None, types: Iterable[str] | None = None, limit: int = 200) -> list[dict] | None:
    """Alerts in an active state the principal may see, most urgent first; None without a store."""
    store = alert_store()
    if store is None:
        return None
    out: dict = {}
    for state in ACTIVE_STATES:
        try:
            rows = store.list(state=state, principal=p, limit=limit)
        except TypeError:  # a store without the principal filter
            rows = store.list(state=state, limit=limit)
        for a in rows or ():
            out[a.get("id")] = a
    wanted = None if types is None else set(types)
    alerts = [a for a in out.values()
              if (wanted is None or a.get("type") in wanted)
              and (p is None or p.sees_area(a.get("street_id"), a.get("grid_id")))]
    alerts.sort(key=urgency_key)
    return alerts


def urgency_key(a: dict):
    """Most severe first, then oldest first (the longest waiting)."""
    return (-SEVERITY_RANK.get(a.get("severity"), 0), to_ts(a.get("first_seen")) or 0.0, str(a.get("id")))


def alerts_fingerprint(alerts: list[dict] | None) -> str:
    if alerts is None:
        return "none"
    parts = [f"{a.get('id')}:{a.get('state')}:{a.get('severity')}:{a.get('count')}:{a.get('last_seen')}:"
             f"{a.get('assignee_id')}:{a.get('escalation_level')}:{a.get('peak_lel')}" for a in alerts]
    import hashlib

    return hashlib.blake2s("|".join(parts).encode(), digest_size=8).hexdigest()


def allowed_actions(a: dict) -> list[str]:
    """The lifecycle's actions from the alert's state (the buttons to show)."""
    from alerts.lifecycle import LIFECYCLES

    table = LIFECYCLES.get(a.get("type"), {})
    return [action for (state, action) in table if state == a.get("state")]


def outcomes_for(alert_type: str) -> tuple[str, ...]:
    from alerts.lifecycle import OUTCOMES

    return OUTCOMES.get(alert_type, ())


def act(alert_id, action: str, p, **kw) -> tuple[bool, str]:
    """Run one alert action through the store; (done, message for the user)."""
    lang_ = lang()
    store = alert_store()
    if store is None:
        return False, t("common.no_alert_store", lang_)
    from alerts.lifecycle import TransitionNotAllowed

    kw = {k: v for k, v in kw.items() if v is not None}
    try:
        store.act(alert_id, action, p, **kw)
    except TransitionNotAllowed as e:
        return False, t("alert.conflict", lang_, state=label("alert.state", getattr(e, "state", None), lang_))
    except PermissionError:
        return False, t("alert.denied", lang_)
    except LookupError:
        return False, t("alert.gone", lang_)
    except ValueError as e:
        return False, t("alert.failed", lang_, reason=str(e))
    return True, t("alert.done", lang_, action=label("alert.action", action, lang_))


def audit_action(p, action: str, target: str, detail: dict | None = None) -> None:
    """Screens audit nothing themselves: the store records every transition.  This is
    for refusals the screen decides before reaching the store."""
    from data import audit

    audit.append(web().engine, p.username, action, target, detail or {})


# --- frame -------------------------------------------------------------------------------------


def lang_toggle(lang_: str) -> html.A:
    other = "en" if lang_ != "en" else "zh-CN"
    return html.A(t("lang.switch", lang_), href=f"?lang={other}", id=ids.LANG_TOGGLE,
                  className="aj-lang", title=t("lang.switch_title", lang_))


def logout_form(lang_: str) -> html.Form:
    return html.Form([
        dcc.Input(type="hidden", name="csrf", value=ensure_csrf()),
        html.Button(t("auth.logout", lang_), id=ids.LOGOUT_BUTTON, type="submit", className="aj-logout"),
    ], method="POST", action="/logout", className="aj-logout-form")


def nav_links(p, lang_: str, current: str) -> list:
    links = []
    for path, key, roles in NAV:
        if p is not None and p.role in roles:
            cls = "aj-nav-link aj-current" if path == current else "aj-nav-link"
            links.append(html.A(t(key, lang_), href=path, className=cls))
    return links


def header(title_key: str, lang_: str, p, current: str, extra: list | None = None,
           class_name: str = "aj-head") -> html.Header:
    who = (p.display_name or p.username) if p else ""
    return html.Header([
        html.Div([html.Span(t("app.name", lang_), className="aj-brand"),
                  html.H1(t(title_key, lang_), className="aj-title")], className="aj-head-left"),
        html.Nav(nav_links(p, lang_, current), className="aj-nav"),
        html.Div([*(extra or []),
                  html.Span([html.Span(who, className="aj-data"), " · ",
                             t(f"role.{p.role}", lang_) if p else ""], id=ids.USER_BADGE, className="aj-user"),
                  lang_toggle(lang_), logout_form(lang_)], className="aj-head-right"),
    ], className=class_name)


def forbidden(lang_: str, p) -> html.Div:
    role = t(f"role.{p.role}", lang_) if p else ""
    home = HOME_BY_ROLE.get(p.role, "/login") if p else "/login"
    return html.Div([
        html.H1(t("auth.forbidden_title", lang_)),
        html.P(t("auth.forbidden_body", lang_, role=role)),
        html.A(t("auth.home", lang_), href=home),
    ], className="aj-forbidden")


def guarded_layout(roles: tuple[str, ...], build: Callable) -> Callable:
    """A page layout that is built only for a logged-in principal of ``roles``.

    Dash's page router is a callback any logged-in user may call; the role
    check of the layout itself runs here, on the server.
    """

    def layout(**kwargs):
        p = principal()
        lang_ = lang()
        if p is None or p.role not in roles:
            return forbidden(lang_, p)
        return build(p, lang_, **kwargs)

    layout.__name__ = getattr(build, "__name__", "layout")
    layout.__doc__ = build.__doc__
    return layout


def now() -> float:
    return time.time()
