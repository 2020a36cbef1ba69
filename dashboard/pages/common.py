"""What every page shares: who is asking, in which language, the page frame,
formatting, and the adapter to the alert store.

Nothing here holds state between requests: the WebContext, the city map cache
and the tile preset hang off the Flask app (``current_app.extensions``), the
user and the language come from the request's session.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from datetime import datetime

from dash import Input, Output, State, dcc, html
from flask import current_app, g, has_request_context

from dashboard import ids
from dashboard.api import current_principal
from dashboard.auth_views import HOME_BY_ROLE, current_lang, ensure_csrf
from dashboard.i18n import has, t
from data.demo_alerts import USERNAME as DEMO_DUTY
from geo.china import CHINA_TZ
from geo.timefmt import local_dt, parse_iso_or_epoch

log = logging.getLogger(__name__)

SEVERITY_RANK = {"critical": 2, "warning": 1, "info": 0}
ACTIVE_STATES = ("open", "acknowledged", "dispatched", "on_scene")

NAV = (  # (path, catalogue key, roles)
    ("/wall", "nav.wall", ("wall", "dispatcher", "admin")),
    ("/dispatch", "nav.dispatch", ("dispatcher", "admin")),
    ("/officer", "nav.officer", ("officer", "admin")),
    ("/replay", "nav.replay", ("dispatcher", "admin")),
    ("/plans", "nav.plans", ("dispatcher", "admin", "officer")),
    ("/agencies", "nav.agencies", ("dispatcher", "admin")),
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


def label(prefix: str, value, lang_: str) -> str:
    """A vocabulary word (alert type, state, outcome...) in ``lang_``; unknown values as they are."""
    if value is None:
        return t("common.unknown", lang_)
    key = f"{prefix}.{value}"
    return t(key, lang_) if has(key) else str(value)


# --- formatting -----------------------------------------------------------------------------


def fmt_time(ts: float | None, with_date: bool = False) -> str:
    dt = local_dt(ts)
    if dt is None:
        return "—"
    return dt.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M:%S")


def fmt_age(seconds: float | None, lang_: str) -> str:
    if seconds is None or not math.isfinite(seconds):  # an odd stored time (see geo.timefmt)
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        return t("common.seconds_ago", lang_, n=s)
    if s < 3600:
        return t("common.minutes_ago", lang_, n=s // 60)
    if s < 48 * 3600:
        return t("common.hours_ago", lang_, n=round(s / 3600, 1))
    return t("common.days_ago", lang_, n=round(s / 86400, 1))  # not "88.2 hours ago"


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
        dt = dt.replace(tzinfo=CHINA_TZ)
    return dt.timestamp()


# --- alerts ------------------------------------------------------------------------------------


def alert_store():
    """``ctx.alerts``: the process's data.alert_store.AlertStore."""
    return web().alerts


def active_alerts(p=None, types: Iterable[str] | None = None, limit: int = 500) -> list[dict]:
    """Alerts not yet resolved that the principal may see, in the one queue order
    (``urgency_key``: unacknowledged, then severity, then newest).

    ``state="open"`` is the store's (and the API's) "every active state".
    """
    if p is None or p.role != "officer":
        rows = web().open_alerts(limit)  # one read for every screen of the process while nothing changes
    else:
        rows = alert_store().list(state="open", principal=p, limit=limit, most_urgent=True)
    wanted = None if types is None else set(types)
    alerts = [a for a in rows or ()
              if (wanted is None or a.get("type") in wanted)
              and a.get("state") in ACTIVE_STATES
              and (p is None or p.sees_area(a.get("street_id"), a.get("grid_id")))]
    alerts.sort(key=urgency_key)
    return alerts


def new_alarms_for(alerts: list[dict], roles) -> list[dict]:
    """The new (unacknowledged) alerts of a pushed event that the stream's user may
    see on a page for ``roles``: the page's role, and the area rule of ``active_alerts``."""
    p = principal()
    if p is None or p.role not in roles:
        return []
    return [a for a in alerts if a.get("state") == "open" and p.sees_area(a.get("street_id"), a.get("grid_id"))]


def urgency_key(a: dict):
    """The one order of alerts (``data.alert_store.queue_key``): unacknowledged
    first, then the most severe, then the newest."""
    from data.alert_store import queue_key

    return queue_key(a)


def order_attr(a: dict) -> str:
    """``urgency_key`` as a string that sorts the same way: each row of the wall's list
    and the console's queue carries it (``data-order``), so that the row of a pushed
    alarm goes where the one order puts it (assets/anjian.js, showNewRows), not on top
    of more urgent alarms."""
    handled, neg_rank, neg_first, neg_id = urgency_key(a)
    first_ms = round(min(max(-neg_first, 0.0), 9_999_999_999.0) * 1000)
    aid = min(max(-neg_id, 0), 10**12 - 1)
    return f"{handled}{neg_rank + 10:02d}{9_999_999_999_999 - first_ms:013d}{10**12 - 1 - aid:012d}"


def first_seen_ts(a: dict) -> float:
    v = a.get("first_seen_ts")
    return float(v) if v is not None else (to_ts(a.get("first_seen")) or 0.0)


def last_seen_ts(a: dict) -> float:
    v = a.get("last_seen_ts")
    return float(v) if v is not None else (to_ts(a.get("last_seen")) or 0.0)


def alerts_fingerprint(alerts: list[dict]) -> str:
    parts = [f"{a.get('id')}:{a.get('state')}:{a.get('severity')}:{a.get('count')}:{a.get('last_seen')}:"
             f"{a.get('assignee_id')}:{a.get('escalation_level')}:{a.get('peak_lel')}" for a in alerts]
    return hashlib.blake2s("|".join(parts).encode(), digest_size=8).hexdigest()


def allowed_actions(a: dict) -> list[str]:
    """The lifecycle's actions from the alert's state (the buttons to show)."""
    if a.get("allowed_actions") is not None:
        return list(a["allowed_actions"])
    from alerts.lifecycle import LIFECYCLES

    table = LIFECYCLES.get(a.get("type"), {})
    return [action for (state, action) in table if state == a.get("state")]


def outcomes_for(alert_type: str) -> tuple[str, ...]:
    from alerts.lifecycle import OUTCOMES

    return OUTCOMES.get(alert_type, ())


def act(alert_id, action: str, p, done_as: str | None = None, **kw) -> tuple[bool, str]:
    """Run one alert action through the store; (done, message for the user).  ``done_as``
    names the action in the message when the person did more than the store's step (an
    officer's takeover is an ``assign``)."""
    lang_ = lang()
    store = alert_store()
    from alerts.lifecycle import TransitionNotAllowed

    try:
        from data.alert_store import Conflict
    except ImportError:  # pragma: no cover - the store module is always there in a full install
        Conflict = TransitionNotAllowed  # noqa: N806
    kw = {k: v for k, v in kw.items() if v is not None}
    try:
        a = store.act(alert_id, action, p, **kw)
    except TransitionNotAllowed as e:
        return False, t("alert.conflict", lang_, state=label("alert.state", getattr(e, "state", None), lang_))
    except Conflict:
        current = store.get(alert_id) or {}
        return False, t("alert.conflict", lang_, state=label("alert.state", current.get("state"), lang_))
    except PermissionError as e:
        from data import audit

        audit.append(web().engine, p.username, "access_denied", f"alert:{alert_id}",
                     {"action": action, "role": p.role, "reason": str(e)[:200], "via": "dashboard"})
        return False, t("alert.denied", lang_)
    except LookupError:
        return False, t("alert.gone", lang_)
    except ValueError as e:
        return False, t("alert.failed", lang_, reason=str(e))
    return True, done_message(a, done_as or action, lang_)


def done_message(a: dict | None, action: str, lang_: str) -> str:
    """"已执行：确认 · <the alarm>": what was done, and to which alarm (on the console its
    row may have moved away, an acknowledged alarm sorting lower); ``a`` is the alert as
    the store's action left it."""
    done = t("alert.done", lang_, action=label("alert.action", action, lang_))
    if a is None:
        return done
    from dashboard.pages.layers import alert_subject

    return f"{done} · {alert_subject(a, web().registry(), city(), lang_)}"


# --- an alert's history, in the reader's language ------------------------------------------------

# A time in a note: ISO-8601 as geo.timefmt.iso_ms writes it, or the epoch seconds
# (and "None") that rows written by earlier versions hold.
_NUM = r"(-?\d+(?:\.\d+)?|None|nan|inf|never|\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d|Z)?)"


def _when(raw: str) -> str:
    at = parse_iso_or_epoch(raw)
    if at is None or at != at:
        return "—"
    return fmt_time(at, with_date=True)


def _gas_note(m, lang_: str) -> str:
    level = label("sensor", m[1], lang_)
    if m[2] is None:
        return t("note.gas", lang_, level=level)
    return t("note.gas_lel", lang_, level=level, lel=m[2])


# An officer's takeover of an alarm sent to someone else (alerts.model.takeover_note): the
# lifecycle records it as a reassign, the history names it a takeover. What the officer
# typed follows after ": ", shown as typed.
TAKEOVER_NOTE = re.compile(r"^takeover from (\S+) by (\S+)(?:: (.+))?$", re.S)


def _takeover(m, lang_: str, names: Callable[[str], str]) -> str:
    if m[3]:
        return t("note.takeover_typed", lang_, from_name=names(m[1]), to_name=names(m[2]), typed=m[3])
    return t("note.takeover", lang_, from_name=names(m[1]), to_name=names(m[2]))


# The notes the system writes (alerts/rules.py, escalation.py, overdue.py, lifecycle.py)
# are English machine text; each known form is rewritten through the catalogue.
_NOTES = (
    (re.compile(r"^implied by (\w+)$"),
     lambda m, lang_, names: t("note.implied", lang_, action=label("alert.action", m[1], lang_))),
    (re.compile(r"^last will; last seen " + _NUM + r"$"),
     lambda m, lang_, names: t("note.offline.last_will", lang_, time=_when(m[1]))),
    (re.compile(r"^silent; last seen " + _NUM + r"$"),
     lambda m, lang_, names: t("note.offline.silent", lang_, time=_when(m[1]))),
    (re.compile(r"^level \d+: district \(hazard (\d+) ([\d.]+) d overdue\)$"),
     lambda m, lang_, names: t("note.hazard_escalated", lang_, id=m[1], days=m[2])),
    (re.compile(r"^hazard (\d+) ([\d.]+) d past its deadline$"),
     lambda m, lang_, names: t("note.hazard_overdue", lang_, id=m[1], days=m[2])),
    (re.compile(r"^the hazard is no longer overdue$"), lambda m, lang_, names: t("note.hazard_no_longer", lang_)),
    (re.compile(r"^superseded by the roll-up of (\d{4}-\d{2}-\d{2})$"),
     lambda m, lang_, names: t("note.overdue_superseded", lang_, day=m[1])),
    (re.compile(r"^level (\d+):.*$"), lambda m, lang_, names: t("note.escalated", lang_, n=m[1])),
    (re.compile(r"^(normal|low|high|fault|tamper|test)(?: (-?[\d.]+) % LEL)?$"),
     lambda m, lang_, names: _gas_note(m, lang_)),
    (re.compile(r"^(\d+) overdue$"), lambda m, lang_, names: t("note.overdue", lang_, n=m[1])),
    (re.compile(r"^GPS: (\d+) m from the enterprise at " + _NUM + r"$"),
     lambda m, lang_, names: t("note.gps_arrival", lang_, m=m[1], time=_when(m[2]))),
    (TAKEOVER_NOTE, _takeover),
    (re.compile(r"^→ (\S+)(?: .*)?$"), lambda m, lang_, names: t("note.reassign_to", lang_, name=names(m[1]))),
    (re.compile(r"^sent (\S+) instead of (\S+)$"),
     lambda m, lang_, names: t("note.sent_instead", lang_, name=names(m[1]), other=names(m[2]))),
    (re.compile(r"^sent (\S+)$"), lambda m, lang_, names: t("note.sent", lang_, name=names(m[1]))),
)


def history_note(note: str | None, lang_: str, names: Callable[[str], str] = str, typed: bool | None = None) -> str:
    """A history note for people: the system's own notes through the catalogue; what a
    person typed stays as typed (``typed``: the history entry's ``note_typed``; a note a
    person typed as "sent I0103" is not shown as a dispatch)."""
    if not note:
        return ""
    if typed:
        return note
    for pattern, render in _NOTES:
        m = pattern.match(note.strip())
        if m:
            return render(m, lang_, names)
    return note


def history_actor(actor: str | None, lang_: str, names: Callable[[str], str] = str,
                  users: dict | None = None) -> str:
    """``system`` and ``gps:<inspector>`` through the catalogue; an account by its display
    name (``users``: username -> name), else its username."""
    if not actor or actor == "system":
        return t("actor.system", lang_)
    if actor.startswith("gps:"):
        return t("actor.gps", lang_, name=names(actor[4:]))
    if actor == DEMO_DUTY:  # the demo's simulated dispatcher: a role, named in the page's language
        return t("actor.demo_duty", lang_)
    return (users or {}).get(actor) or actor


USER_NAMES_TTL_S = 60.0


def user_names() -> dict:
    """username -> display name of every account (for the people in a history), read once
    a minute per process."""
    from data.auth import display_names

    engine = web().engine  # the cache refreshes outside the request: no flask globals in the lambda
    return cache().get("user_names", USER_NAMES_TTL_S, lambda: display_names(engine))


def history_entries(a: dict, lang_: str, names: Callable[[str], str] = str, last: int = 12,
                    users: dict | None = None) -> list[dict]:
    """An alert's history as the screens show it: time, actor, action, state, note, all in
    ``lang_`` and through the one time formatter; a resolve names its outcome, and an
    officer's takeover is named so (the store records a reassign)."""
    out = []
    for h in (a.get("history") or [])[-last:]:
        action = h.get("action")
        if (action in ("assign", "reassign") and not h.get("note_typed")
                and TAKEOVER_NOTE.match((h.get("note") or "").strip())):
            action = "takeover"  # an officer took it over: not the dispatcher's reassignment (改派)
        note = history_note(h.get("note"), lang_, names, typed=h.get("note_typed"))
        if action in ("resolve", "reassign") and a.get("outcome") and h.get("to_state") == "resolved":
            outcome = t("alert.history.outcome", lang_, outcome=label("alert.outcome", a["outcome"], lang_))
            note = f"{outcome} · {note}" if note else outcome
        out.append({"time": fmt_time(h.get("at_ts", to_ts(h.get("at"))), with_date=True),
                    "actor": history_actor(h.get("actor"), lang_, names, users),
                    "action": label("alert.action", action, lang_),
                    "state": label("alert.state", h.get("to_state"), lang_), "note": note})
    return out


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


def html_box(box_id: str, store_id: str, initial: str | None = None, **div) -> html.Div:
    """A box whose content is an HTML string (dashboard/markup.py) that callbacks
    put into ``store_id``; ``fill_html`` makes the browser write it in."""
    return html.Div([dcc.Store(id=store_id, data=initial), html.Div(id=box_id, **div)])


def fill_html(cb, box_id: str, store_id: str) -> None:
    """Register ``dash_clientside.anjian.fillHtml``: the store's HTML into the box.
    React renders the box empty and never touches what the script put in it."""
    cb.clientside("fillHtml", Output(box_id, "data-filled"), Input(store_id, "data"), State(box_id, "id"))


def push_listener(store_id: str) -> html.Div:
    """Where the page's script puts alert events pushed by ``/api/v1/events``
    (``assets/anjian.js``): the store's data changes, and the page's tick
    callback, which takes it as an input, runs at once instead of at its next
    poll.  The wrapper tells the script which store this page has."""
    return html.Div(dcc.Store(id=store_id, data=None), className="aj-push", **{"data-store": store_id})


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


def guard_callback(fn: Callable, roles: tuple[str, ...], changes_state: bool) -> Callable:
    """The role check inside every server callback (the gate in auth_views checks first;
    this holds even if a callback is reached some other way)."""
    import functools

    from flask import abort, request

    name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        p = principal()
        if p is None:
            abort(401)
        if p.role not in roles:
            from data import audit

            audit.append(web().engine, p.username, "access_denied", request.path,
                         {"method": request.method, "role": p.role, "callback": fn.__name__,
                          "changes_state": changes_state, "reason": "role"})
            abort(403)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            # Read by dashboard.server: a Server-Timing header and the callback histogram.
            g.anjian_callback = (name, time.perf_counter() - t0)

    return wrapper


def triggered() -> tuple:
    """(id, value) of what fired the running callback; (None, None) outside one (plain calls in tests)."""
    from dash import callback_context
    from dash.exceptions import MissingCallbackContextException

    try:
        trig = callback_context.triggered
        if not trig:
            return None, None
        return callback_context.triggered_id, trig[0].get("value")
    except MissingCallbackContextException:
        return None, None


class TTLCache:
    """Answers shared by every screen of this process for a few seconds (read-only data:
    KPIs, heat layers), so ten walls polling cost one query, not ten.

    Stale while revalidating: once an answer is older than its ``ttl_s`` the next
    caller still gets it at once, and one background thread computes the new one
    (at city scale the KPIs take a second of SQL, which no poll should wait for).
    Only the first call for a key, or one for an answer older than ``max_stale``
    times its ttl, waits for ``compute``; ``compute`` must therefore not need the
    request (no flask globals)."""

    MAX_STALE = 6.0

    def __init__(self):
        import threading

        self._data: dict = {}
        self._refreshing: set = set()
        self._lock = threading.Lock()

    def get(self, key, ttl_s: float, compute: Callable):
        import threading

        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and now - hit[0] < ttl_s:
                return hit[1]
            if hit is not None and now - hit[0] < ttl_s * self.MAX_STALE:
                if key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key, compute), name="cache-refresh",
                                     daemon=True).start()
                return hit[1]
        value = compute()
        self._put(key, now, value)
        return value

    def _refresh(self, key, compute: Callable) -> None:
        try:
            t0 = time.monotonic()
            self._put(key, t0, compute())
        except Exception:  # noqa: BLE001 - keep the old answer; the next call tries again
            log.warning("background refresh of %r failed", key, exc_info=True)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _put(self, key, at: float, value) -> None:
        with self._lock:
            if len(self._data) > 256:
                self._data.clear()
            self._data[key] = (at, value)


def cache() -> TTLCache:
    return current_app.extensions["anjian_cache"]
