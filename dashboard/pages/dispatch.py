"""/dispatch — the dispatcher console.

Left: the alert queue, most severe first and then oldest (the store's order),
with one-click acknowledge; below it the duplicate / overlap panel with
one-click reassignment.  Middle: the map (inspectors by unit, alarms,
enterprises, and the nearest-inspector suggestions of the selected alert).
Right: the selected alert (actions, nearest inspectors to send in one click,
resolve with an outcome in one click, its history), the enterprise search and
the inspector list with status and current task.

Every action goes through ``ctx.alerts.act`` with the logged-in principal: the
lifecycle (409 on a stale click), the area scope and the audit log are the
store's.  The action callback is declared ``changes_state`` and admits only
dispatcher and admin; the gate refuses and audits anyone else.
"""

from __future__ import annotations

import heapq
import logging
import time

import dash_leaflet as dl
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from alerts.model import GAS_ALARM
from dashboard import ids, push
from dashboard.i18n import t
from dashboard.markup import Markup, button, join, tag
from dashboard.mapkit import (
    ENTERPRISE_PANE,
    CityMap,
    base_children,
    esc,
    feature_collection,
    js,
    line_positions,
    map_props,
    offline_ids,
    point,
    tiles_notice,
)
from dashboard.pages import layers
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import (
    act,
    active_alerts,
    alert_store,
    cache,
    alerts_fingerprint,
    allowed_actions,
    city,
    first_seen_ts,
    order_attr,
    fmt_age,
    fmt_distance,
    fill_html,
    fmt_time,
    guarded_layout,
    header,
    history_entries,
    html_box,
    label,
    lang,
    new_alarms_for,
    outcomes_for,
    preset,
    principal,
    push_listener,
    triggered,
    user_names,
    web,
)
from data import screen_queries
from data.streams import StreamStore

log = logging.getLogger(__name__)

PATH = "/dispatch"
ROLES = ("dispatcher", "admin")
# A dispatcher's screen: fast enough that a new alarm shows within the wall's
# latency, slow enough that a handful of consoles cost nothing.
TICK_MS = 1500
DUPLICATE_TYPES = ("duplicate_visit", "overlap_now", "approach_warning")
# Rows drawn, most urgent first; the rest are counted ("N more").  A dispatcher works
# the top of the queue, and at city scale a 200-row queue redrawn on every change
# was 200 KB a poll and slowed the browser's alarm display to seconds.
QUEUE_MAX = 50
# ...and past them still every gas alarm not yet resolved, and the selected alert, up to
# this many more: a dispatched gas alarm must not be pushed out of the queue by a wave of
# unacknowledged notices (inspectors offline, overdue inspections), which sort above it.
QUEUE_KEEP_MAX = 100
DUPLICATES_MAX = 30
INSPECTOR_ROWS_MAX = 100
# The inspector list follows the live fixes, but redraws at most this often.
INSPECTOR_LIST_EVERY_S = 5.0
# And the inspector layer: dash-leaflet redraws a GeoJSON layer whole on every
# data change (clearLayers + addData: 2,000 markers and their tooltips), which
# held the page's main thread so that a pushed alarm waited behind it.  The
# wall is the live picture; the console's map is for choosing whom to send.
INSPECTOR_LAYER_EVERY_S = 4.0
STATUS_ORDER = {"on_task": 0, "visiting": 1, "on_duty": 2, "offline": 3}
# The panels built as HTML strings: box -> the store its HTML goes into.
HTML_BOXES = {ids.DISPATCH_QUEUE: ids.DISPATCH_QUEUE_HTML,
              ids.DISPATCH_DUPLICATES: ids.DISPATCH_DUPLICATES_HTML,
              ids.DISPATCH_INSPECTOR_LIST: ids.DISPATCH_INSPECTOR_LIST_HTML,
              ids.DISPATCH_DETAIL: ids.DISPATCH_DETAIL_HTML}

cb = PageCallbacks("dispatch", ROLES)


def title(**_):
    return t("dispatch.title", lang())


def build(p, lang_: str, **_):
    c = city()
    pr = preset()
    the_map = dl.Map(
        [*base_children(pr, c, lang_, **offline_ids(ids.DISPATCH_MAP)),
         dl.Pane(dl.GeoJSON(id=ids.DISPATCH_ENTERPRISES, data=layers.EMPTY, pointToLayer=js("enterprisePoint"),
                            hideout={"pane": ENTERPRISE_PANE}),
                 name=ENTERPRISE_PANE, style={"zIndex": 350}),
         dl.GeoJSON(id=ids.DISPATCH_INSPECTORS, data=layers.EMPTY, pointToLayer=js("inspectorPoint")),
         dl.GeoJSON(id=ids.DISPATCH_ALARMS, data=layers.EMPTY, pointToLayer=js("alarmPoint")),
         dl.GeoJSON(id=ids.DISPATCH_SUGGESTION_LINES, data=layers.EMPTY, style=js("suggestionStyle"),
                    interactive=False),
         dl.GeoJSON(id=ids.DISPATCH_SUGGESTIONS, data=layers.EMPTY, pointToLayer=js("suggestionPoint")),
         dl.ScaleControl(position="bottomleft", imperial=False)],
        id=ids.DISPATCH_MAP, style={"height": "100%"}, **map_props(pr, c),
    )
    notice = tiles_notice(pr, lang_, ids.DISPATCH_MAP, **offline_ids(ids.DISPATCH_MAP))
    sound = [html.Button(t("sound.enable", lang_), id=ids.SOUND_ENABLE, className="aj-btn aj-sound-enable",
                         hidden=True, n_clicks=0),
             html.Button(t("sound.mute", lang_), id=ids.DISPATCH_MUTE, className="aj-btn aj-sound-mute", n_clicks=0)]
    return html.Div([
        header("dispatch.title", lang_, p, PATH, extra=sound),
        html.Div(id=ids.DISPATCH_ALARM_BANNER, className="aj-alarm-banner", role="alert"),
        html.Main([
            html.Section([
                html.Div([html.H2(t("dispatch.queue", lang_)),
                          html_box(ids.DISPATCH_QUEUE, HTML_BOXES[ids.DISPATCH_QUEUE])],
                         className="aj-panel", style={"flex": "3"}),
                html.Div([html.H2(t("dispatch.duplicates", lang_)),
                          html_box(ids.DISPATCH_DUPLICATES, HTML_BOXES[ids.DISPATCH_DUPLICATES])],
                         className="aj-panel", style={"flex": "1"}),
                html.Div([html.H2(t("dispatch.hazards", lang_)),
                          html.Ul(id=ids.DISPATCH_HAZARDS, className="aj-results aj-hz-list")],
                         className="aj-panel", style={"flex": "1", "overflowY": "auto"}),
                # As tall as its few lines (it kept 184 px for two), and no more than a
                # quarter of the column: the alarm queue above keeps the room (at 1080p a
                # long plan list left it three rows).
                html.Div([html.H2(t("dispatch.plan_today", lang_)),
                          html.Div(id=ids.DISPATCH_PLAN_TODAY)],
                         className="aj-panel", style={"flex": "0 1 auto", "maxHeight": "24%", "overflowY": "auto"}),
            ], className="aj-col"),
            html.Section([the_map, notice], className="aj-dispatch-map aj-map-host"),
            html.Section([
                html.Div([html.Div(id=ids.DISPATCH_FEEDBACK, className="aj-feedback", role="status"),
                          html_box(ids.DISPATCH_DETAIL, HTML_BOXES[ids.DISPATCH_DETAIL],
                                   str(_muted(t("dispatch.detail.empty", lang_))), className="aj-detail")],
                         className="aj-panel"),
                html.Div([html.H2(t("dispatch.search", lang_)),
                          dcc.Input(id=ids.DISPATCH_SEARCH, type="search", debounce=True, className="aj-input",
                                    placeholder=t("dispatch.search.placeholder", lang_)),
                          html.Ul(id=ids.DISPATCH_SEARCH_RESULTS, className="aj-results")], className="aj-panel"),
                html.Div([html.H2(t("dispatch.inspectors", lang_)),
                          html_box(ids.DISPATCH_INSPECTOR_LIST, HTML_BOXES[ids.DISPATCH_INSPECTOR_LIST])],
                         className="aj-panel", style={"flex": "1"}),
            ], className="aj-col"),
        ], className="aj-dispatch-main"),
        dcc.Interval(id=ids.DISPATCH_TICK, interval=TICK_MS),
        dcc.Interval(id=ids.DISPATCH_HAZARDS_TICK, interval=HAZARDS_TICK_MS),
        push_listener(ids.DISPATCH_PUSH),
        dcc.Store(id=ids.DISPATCH_STATE, data={}),
        dcc.Store(id=ids.DISPATCH_INSPECTOR_STATE, data={}),
        dcc.Store(id=ids.DISPATCH_ORDER, data=None),
        dcc.Store(id=ids.DISPATCH_SELECTED, data=None),
        dcc.Store(id=ids.DISPATCH_ACTION_DONE, data=0),
        dcc.Store(id=ids.DISPATCH_COMMAND, data=None),
        dcc.Store(id=ids.DISPATCH_ENT_STATE, data=None),
        dcc.Store(id=ids.DISPATCH_AFP, data=None),
        dcc.Store(id=ids.DISPATCH_ALARM, data=None),
        dcc.Store(id=ids.DISPATCH_MUTED, data=False),
        html.Div(id=ids.DISPATCH_SOUND, style={"display": "none"}),
    ], id=ids.DISPATCH_ROOT, className="aj-page aj-dispatch", lang=lang_)


layout = guarded_layout(ROLES, build)

# Hazards move by the hour: overdue and major ones are read every 15 s (shared by every console).
HAZARDS_TICK_MS = 15_000


@cb.callback(Output(ids.DISPATCH_HAZARDS, "children"), Input(ids.DISPATCH_HAZARDS_TICK, "n_intervals"))
def dispatch_hazards(n):
    """Overdue hazards and open major ones, most urgent first (major ones until closed)."""
    from dashboard.pages.hazard_panels import overdue_and_major_items

    return overdue_and_major_items(lang(), principal())


# Today's plan moves with visits: read with the hazards (every 15 s, shared by every console).
PLAN_TODAY_TTL_S = 15.0
PLAN_TODAY_SHOWN = 8


def plan_today(lang_: str) -> list:
    """Today's plan items done, and the latest unplanned visits (``PlansStore.day_summary``)."""
    from dashboard.api_plans import store as plans_store
    from plans.model import local_date

    st = plans_store()  # the cache computes outside the request: no flask globals in the lambda

    def read():
        now = time.time()
        return st.day_summary(local_date(now), now)

    d = cache().get("plan_today", PLAN_TODAY_TTL_S, read)
    reg = web().registry()
    c = city()
    rows = []
    for v in d["recent_unplanned"]:
        if len(rows) == PLAN_TODAY_SHOWN:
            break
        name, _unit, _unit_name = reg.inspectors.get(v["inspector_id"]) or (v["inspector_id"], None, v["unit_id"])
        unit_name = layers.unit_name(c, v["unit_id"], lang_, reg.short)
        rows.append(html.Li([
            html.Span(t("dispatch.plan_unplanned", lang_), className="aj-badge aj-unplanned"), " ",
            html.A(reg.short_name(v["enterprise_id"]) or v["enterprise_id"], href=f"/enterprise/{v['enterprise_id']}",
                   className="aj-data", title=reg.enterprise_names.get(v["enterprise_id"])),
            " · ", html.Span(f"{name}（{unit_name}）" if lang_ == "zh-CN" else f"{name} ({unit_name})",
                             className="aj-data"),
            " · ", fmt_time(v["start_ts"])], className="aj-plan-unplanned", **{"data-visit": str(v["visit_id"])}))
    return [html.P(t("dispatch.plan_today_summary", lang_, n=d["items"], done=d["done"],
                     unplanned=d["unplanned_visits"]), className="aj-plan-summary"),
            html.Ul(rows or [html.Li(t("dispatch.plan_unplanned_none", lang_), className="aj-muted")],
                    className="aj-results")]


@cb.callback(Output(ids.DISPATCH_PLAN_TODAY, "children"), Input(ids.DISPATCH_HAZARDS_TICK, "n_intervals"))
def dispatch_plan_today(n):
    return plan_today(lang())


# --- pieces ------------------------------------------------------------------------------------
# Each panel is one HTML string (dashboard/markup.py): a Dash component per cell
# and a pattern-matching id per button made the console's main thread the
# bottleneck of alarm latency.  A button names the store its click goes to:
# DISPATCH_SELECTED (an alert id) or DISPATCH_COMMAND (an action, checked on
# the server by dispatch_act).


def _select_button(a: dict, text, cls: str = "aj-link", **attrs):
    return button(text, ids.DISPATCH_SELECTED, a["id"], class_=cls, **attrs)


def _action_button(a: dict, action: str, text: str, cls: str = "aj-btn", outcome: str = "",
                   confirm: str | None = None):
    return button(text, ids.DISPATCH_COMMAND, {"type": ids.ALERT_ACTION_TYPE, "alert": a["id"], "action": action,
                                               "outcome": outcome}, class_=cls, data_aj_confirm=confirm)


def _near_m(m: float | None) -> float | None:
    """A suggestion's distance to 50 m: it moves with the inspector, and a panel that
    changed every second replaced its buttons under the dispatcher's pointer."""
    return None if m is None else max(50.0, round(m / 50.0) * 50.0)


def _reassign_button(a: dict, lang_: str):
    return button(t("dispatch.reassign_one_click", lang_), ids.DISPATCH_COMMAND,
                  {"type": ids.REASSIGN_TYPE, "alert": a["id"]}, class_="aj-btn aj-btn-primary")


def _muted(text):
    return tag("p", text, class_="aj-muted")


def _more(n_all: int, n_shown: int, lang_: str):
    return _muted(t("common.more", lang_, n=n_all - n_shown)) if n_all > n_shown else None


def queue_rows(alerts: list[dict], selected) -> list[dict]:
    """The alerts the queue draws, in the given (queue) order: the first QUEUE_MAX, then
    past them the gas alarms and the selected alert (at most QUEUE_KEEP_MAX)."""
    shown = list(alerts[:QUEUE_MAX])
    kept = [a for a in alerts[QUEUE_MAX:] if a.get("type") == GAS_ALARM or a.get("id") == selected]
    return shown + kept[:QUEUE_KEEP_MAX]


def queue_table(alerts: list[dict], reg, c, lang_: str, now: float, selected) -> Markup:
    if not alerts:
        return _muted(t("dispatch.queue.empty", lang_))
    drawn = queue_rows(alerts, selected)
    head = tag("thead", tag("tr", *[tag("th", t(k, lang_)) for k in (
        "dispatch.col.severity", "dispatch.col.alert", "dispatch.col.where", "dispatch.col.age",
        "dispatch.col.state", "dispatch.col.actions")]))
    rows = [queue_row(a, reg, c, lang_, now, selected) for a in drawn]
    table = tag("table", head, tag("tbody", *rows), class_="aj-queue")
    return join([table, _more(len(alerts), len(drawn), lang_)])


def queue_row(a: dict, reg, c, lang_: str, now: float, selected, extra_class: str = "") -> Markup:
    """One alert's row of the queue (also the row the event stream carries: ``new_rows``)."""
    acts = allowed_actions(a)
    buttons = []
    if "ack" in acts:
        buttons.append(_action_button(a, "ack", t("alert.action.ack", lang_), "aj-btn aj-btn-primary"))
    if "assign" in acts:
        buttons.append(_select_button(a, t("alert.action.reassign" if a.get("assignee_id") else "alert.action.assign",
                                           lang_) + "…", "aj-btn"))
    if "resolve" in acts:
        buttons.append(_select_button(a, t("alert.action.resolve", lang_) + "…", "aj-btn"))
    if "arrive" in acts:
        buttons.append(_action_button(a, "arrive", t("alert.action.arrive", lang_)))
    sev = a.get("severity")
    state = a.get("state")
    subject = layers.alert_subject(a, reg, c, lang_)
    full_name = layers.alert_subject(a, reg, c, lang_, full=True)
    area = layers.area_name(a, c, lang_)
    if area == subject:  # an area's alert (overdue inspections) is named by its area already
        area = ""
    return tag(
        "tr",
        tag("td", tag("span", label("alert.severity", sev, lang_), class_=f"aj-badge aj-sev-{sev}")),
        tag("td", tag("div", label("alert.type", a.get("type"), lang_), class_="aj-muted"),
            _select_button(a, tag("span", subject, class_="aj-data"), title=full_name), class_="aj-clip"),
        tag("td", area, class_="aj-data aj-clip", title=area),
        tag("td", tag("div", fmt_age(now - first_seen_ts(a), lang_)),
            tag("div", fmt_time(first_seen_ts(a)), class_="aj-muted")),
        tag("td", label("alert.state", state, lang_), class_=f"aj-state aj-state-{state}"),
        tag("td", *buttons),
        class_=f"aj-row-{sev}" + (" aj-selected" if selected == a["id"] else "") + extra_class,
        id=f"queue-row-{a['id']}", data_order=order_attr(a))


def new_rows(alerts: list[dict]) -> list[dict]:
    """The queue rows of new alarms an alert event carries (``dashboard.push``): the
    page puts each in at once where the one order puts it (``order``), until the tick's
    queue replaces it."""
    lang_ = lang()
    seen = [a for a in new_alarms_for(alerts, ROLES) if a.get("type") not in DUPLICATE_TYPES]
    if not seen:
        return []
    reg, c, now = web().registry(), city(), time.time()
    return [{"id": a["id"], "order": order_attr(a),
             "html": str(queue_row(a, reg, c, lang_, now, None, " aj-provisional"))} for a in seen]


push.register_preview("dispatch", new_rows)


def duplicates_list(alerts: list[dict], reg, c, lang_: str) -> Markup:
    if not alerts:
        # aj-empty-panel: the panel collapses to its title and this line (anjian.css).
        return tag("ul", tag("li", t("dispatch.duplicates.empty", lang_), class_="aj-muted"),
                   class_="aj-results aj-empty-panel")
    out = []
    for a in alerts[:DUPLICATES_MAX]:
        who = reg.inspectors.get(a.get("inspector_id"), (a.get("inspector_id") or "",))[0]
        sugg = (a.get("details") or {}).get("suggestion") or {}
        acts = allowed_actions(a)
        item = [tag("div", tag("span", label("alert.type", a.get("type"), lang_), class_="aj-badge aj-sev-info"),
                    " ", tag("span", layers.alert_subject(a, reg, c, lang_), class_="aj-data")),
                tag("div", tag("span", who, class_="aj-data"), f" → {sugg.get('name')}" if sugg.get("name") else "",
                    class_="aj-muted")]
        if "reassign" in acts and a.get("inspector_id"):
            item.append(_reassign_button(a, lang_))
        out.append(tag("li", *item))
    if len(alerts) > DUPLICATES_MAX:
        out.append(tag("li", t("common.more", lang_, n=len(alerts) - DUPLICATES_MAX), class_="aj-muted"))
    return tag("ul", *out, class_="aj-results")


def live_badge(stream: dict | None, lang_: str):
    """A small "live" link to the remote review of the visit the inspector is streaming (远程点评)."""
    if not stream or not stream.get("visit_id"):
        return None
    return tag("a", t("review.live_badge", lang_), href=f"/review/{stream['visit_id']}", class_="aj-live-badge",
               title=t("review.live_badge_title", lang_), data_inspector=stream["inspector_id"])


def inspector_table(rows: list[dict], alerts: list[dict], reg, lang_: str, now: float,
                    live: dict | None = None, c: CityMap | None = None) -> Markup:
    """The console's inspector list; ``c`` names the units in ``lang_`` (without it, the
    rows' registered unit names)."""
    if not rows:
        return _muted(t("dispatch.inspectors.empty", lang_))
    tasks = {a.get("assignee_id"): a for a in alerts if a.get("assignee_id") and a.get("state") in ("dispatched", "on_scene")}

    def unit_label(d, short=lambda name: name):
        if c is None:
            return short(d.get("unit_name")) or ""
        return layers.unit_name(c, d.get("unit"), lang_, short, d.get("unit_name"))

    body = []

    def status_of(d):
        return "on_task" if d["id"] in tasks and d.get("status") != "offline" else d.get("status")

    # sorted(...)[:n] without sorting all of them (20,000 at ten times a city)
    first = heapq.nsmallest(INSPECTOR_ROWS_MAX, rows, key=lambda d: (STATUS_ORDER.get(status_of(d), 9), d.get("name") or ""))
    for d in first:
        st = status_of(d)
        task = tasks.get(d["id"])
        if task is not None:
            what = f"{label('alert.type', task.get('type'), lang_)}: {reg.short_name(task.get('enterprise_id')) or task.get('subject')}"
        else:
            what = reg.short(d.get("visiting_enterprise")) or ""
        body.append(tag(
            "tr",
            tag("td", d.get("name"), live_badge((live or {}).get(d["id"]), lang_), class_="aj-data"),
            tag("td", unit_label(d, reg.short), class_="aj-data aj-clip", title=unit_label(d)),
            tag("td", label("status", st, lang_), class_=f"aj-status-{st}"),
            tag("td", what, class_="aj-data aj-clip", title=what),
            tag("td", fmt_age(now - (d.get("last_fix_ts") or now), lang_), class_="aj-muted"),
        ))
    head = tag("thead", tag("tr", *[tag("th", t(k, lang_)) for k in (
        "dispatch.col.name", "dispatch.col.unit", "dispatch.col.status", "dispatch.col.task", "dispatch.col.last_fix")]))
    table = tag("table", head, tag("tbody", *body), class_="aj-table")
    return join([table, _more(len(rows), INSPECTOR_ROWS_MAX, lang_)])


# --- the poll ---------------------------------------------------------------------------------

TICK_OUTPUTS = {
    "queue": Output(ids.DISPATCH_QUEUE_HTML, "data"),
    "duplicates": Output(ids.DISPATCH_DUPLICATES_HTML, "data"),
    "alarms": Output(ids.DISPATCH_ALARMS, "data"),
    "afp": Output(ids.DISPATCH_AFP, "data"),
    "state": Output(ids.DISPATCH_STATE, "data"),
    "alarm": Output(ids.DISPATCH_ALARM, "data"),
    "banner": Output(ids.DISPATCH_ALARM_BANNER, "children"),
    "banner_class": Output(ids.DISPATCH_ALARM_BANNER, "className"),
}

INSPECTOR_OUTPUTS = {
    "inspectors": Output(ids.DISPATCH_INSPECTORS, "data"),
    "order": Output(ids.DISPATCH_ORDER, "data"),
    "inspector_list": Output(ids.DISPATCH_INSPECTOR_LIST_HTML, "data"),
    "state": Output(ids.DISPATCH_INSPECTOR_STATE, "data"),
}


def unacknowledged_critical(alerts: list[dict]) -> list[dict]:
    """What sounds and flashes on the console: critical alerts nobody acknowledged yet."""
    return [a for a in alerts if a.get("severity") == "critical" and a.get("state") == "open"]


def alarm_banner(alerts: list[dict], reg, c, lang_: str) -> tuple[list, str, dict]:
    """(children, className, store) of the banner that flashes until every critical alarm is acknowledged."""
    crit = unacknowledged_critical(alerts)
    store = {"ids": [a["id"] for a in crit]}
    if not crit:
        return [], "aj-alarm-banner", store
    first = crit[0]
    return ([html.Span(t("dispatch.alarm.banner", lang_, n=len(crit)), className="aj-alarm-banner-count"),
             html.Span(f"{label('alert.type', first.get('type'), lang_)} · ", className="aj-nowrap"),
             html.Span(layers.alert_subject(first, reg, c, lang_), className="aj-data aj-nowrap")],
            "aj-alarm-banner aj-show aj-flash", store)


@cb.callback(output=TICK_OUTPUTS,
             inputs={"n": Input(ids.DISPATCH_TICK, "n_intervals"), "done": Input(ids.DISPATCH_ACTION_DONE, "data"),
                     "selected": Input(ids.DISPATCH_SELECTED, "data"), "push": Input(ids.DISPATCH_PUSH, "data")},
             state={"state": State(ids.DISPATCH_STATE, "data")})
def dispatch_tick(n, done, selected, state, push=None):
    """The alarm queue, the duplicates, the alarms on the map and the banner: on the 1 s
    poll, after an action, on a selection, and at once on an alert event pushed to the
    page; nothing (204) when nothing changed.  The inspectors are a callback of their
    own (``dispatch_inspectors``), for the wall's reason (wall.wall_inspectors)."""
    ctx = web()
    state = dict(state or {})
    version = ctx.live.version()
    if version == state.get("v") and done == state.get("done") and selected == state.get("selected"):
        raise PreventUpdate
    alerts = active_alerts(principal())
    afp = alerts_fingerprint(alerts)
    if triggered()[0] == ids.DISPATCH_PUSH and afp == state.get("afp"):
        raise PreventUpdate  # an event that changed nothing this caller sees
    lang_ = lang()
    c = city()
    snap = ctx.snapshot()
    out = dict.fromkeys(TICK_OUTPUTS, no_update)
    if afp != state.get("afp") or done != state.get("done") or selected != state.get("selected"):
        queue = [a for a in alerts if a.get("type") not in DUPLICATE_TYPES]
        dups = [a for a in alerts if a.get("type") in DUPLICATE_TYPES]
        # Each panel only when its own alerts changed: a new gas alarm does not
        # re-send (and the browser re-render) the duplicate panel's buttons.
        qfp, dfp = alerts_fingerprint(queue), alerts_fingerprint(dups)
        every = done != state.get("done") or selected != state.get("selected")
        if every or qfp != state.get("qfp"):
            out["queue"] = str(queue_table(queue, snap.reg, c, lang_, time.time(), selected))
            out["alarms"] = layers.alarm_features(alerts, snap.reg, c)
        if every or dfp != state.get("dfp"):
            out["duplicates"] = str(duplicates_list(dups, snap.reg, c, lang_))
        state.update(qfp=qfp, dfp=dfp)
        out["banner"], out["banner_class"], out["alarm"] = alarm_banner(queue + dups, snap.reg, c, lang_)
    if afp != state.get("afp"):
        out["afp"] = afp
    state.update({"v": version, "afp": afp, "done": done, "selected": selected})
    out["state"] = state
    return out


@cb.callback(output=INSPECTOR_OUTPUTS,
             inputs={"n": Input(ids.DISPATCH_TICK, "n_intervals")},
             state={"afp": State(ids.DISPATCH_AFP, "data"), "state": State(ids.DISPATCH_INSPECTOR_STATE, "data"),
                    "order": State(ids.DISPATCH_ORDER, "data"),
                    "zoom": State(ids.DISPATCH_MAP, "zoom"), "bounds": State(ids.DISPATCH_MAP, "bounds")})
def dispatch_inspectors(n, afp, state, order, zoom=None, bounds=None):
    """The inspector layer (at most every INSPECTOR_LAYER_EVERY_S, at once when the view
    left what was drawn) and the inspector list (every INSPECTOR_LIST_EVERY_S when
    anything moved, at once when the alerts the queue shows changed: ``afp``, its
    fingerprint; the list names each inspector's task); nothing (204) when neither is
    due.  Apart from the queue's callback, which every pushed alert event calls: Dash
    drops the answer of a callback still running when the same callback is called again."""
    ctx = web()
    state = dict(state or {})
    now = time.time()
    version = ctx.live.version()
    left = layers.view_left(state, zoom, bounds)
    moved = version != state.get("v") or layers.roll_due(state, now)
    layer_due = order is None or left or (moved and now - (state.get("t") or 0) >= INSPECTOR_LAYER_EVERY_S)
    list_due = (order is None or afp != state.get("list_afp")
                or (version != state.get("list_v") and now - (state.get("il_at") or 0) >= INSPECTOR_LIST_EVERY_S))
    if not layer_due and not list_due:
        raise PreventUpdate
    lang_ = lang()
    c = city()
    snap = ctx.snapshot()
    rows = snap.inspectors_json()
    out = dict.fromkeys(INSPECTOR_OUTPUTS, no_update)
    if layer_due:
        out["inspectors"], out["order"], news = layers.inspectors_update(
            ctx, c, rows, state, order, version, now, lang_, tooltips=True, view=(zoom, bounds))
        state.update(news)
    if list_due:  # every inspector's row (20,000 at ten times a city): only when due
        out["inspector_list"] = str(inspector_table(layers.shown_inspectors(rows, now), active_alerts(principal()),
                                                    snap.reg, lang_, now, StreamStore(ctx.engine).live(), c))
        state.update({"il_at": now, "list_v": version, "list_afp": afp})
    out["state"] = state
    return out


# --- selection and the detail panel -------------------------------------------------------------


def suggestions_layers(alert: dict, nearest: list[dict], reg, c) -> tuple[dict, dict, dict | None]:
    """Numbered markers for the suggested inspectors, dashed lines to the alarm, and a view of both."""
    pos = layers.alarm_position(alert, reg, c)
    marks, lines = [], []
    pts = [pos] if pos else []
    for k, s in enumerate(nearest, 1):
        if s.get("lat") is None or s.get("lon") is None:
            continue
        x, y = c.projector.lonlat([s["lon"]], [s["lat"]])
        marks.append(point(float(x[0]), float(y[0]), {"rank": k, "id": s.get("id"),
                                                      "tooltip": esc(s.get("name") or s.get("id"))}))
        pts.append((s["lat"], s["lon"]))
        if pos:
            ll = line_positions([(s["lat"], s["lon"]), pos], c.projector)
            lines.append({"type": "Feature", "geometry": {"type": "LineString",
                                                          "coordinates": [[lo, la] for la, lo in ll]},
                          "properties": {}})
    view = None
    if pts:
        shown = line_positions(pts, c.projector)
        lats = [q[0] for q in shown]
        lons = [q[1] for q in shown]
        pad = 0.003
        view = {"bounds": [[min(lats) - pad, min(lons) - pad], [max(lats) + pad, max(lons) + pad]],
                "transition": "flyToBounds", "options": {"duration": 1.2, "maxZoom": 16}}
    return feature_collection(marks), feature_collection(lines), view


def detail_panel(a: dict, nearest: list[dict] | None, reg, c, lang_: str, now: float) -> Markup:
    acts = allowed_actions(a)
    assignee = a.get("assignee_id")
    assignee_name = reg.inspectors.get(assignee, (assignee,))[0] if assignee else None
    facts = [label("alert.type", a.get("type"), lang_), label("alert.severity", a.get("severity"), lang_),
             label("alert.state", a.get("state"), lang_), layers.area_name(a, c, lang_),
             fmt_age(now - first_seen_ts(a), lang_)]
    if a.get("count") and a["count"] > 1:
        facts.append(t("alert.count", lang_, n=a["count"]))
    if a.get("peak_lel") is not None:
        facts.append(t("alert.peak", lang_, n=round(float(a["peak_lel"]))))
    if a.get("escalation_level"):
        facts.append(t("alert.escalated", lang_, n=a["escalation_level"]))
    if assignee_name:
        facts.append(t("alert.assignee", lang_, name=assignee_name))
    parts = [tag("h3", layers.alert_subject(a, reg, c, lang_, full=True), class_="aj-data"),
             tag("div", " · ".join(f for f in facts if f), class_="aj-meta")]
    if a.get("enterprise_id"):
        parts.append(tag("a", t("common.open_profile", lang_), href=f"/enterprise/{a['enterprise_id']}"))
    buttons = []
    if "ack" in acts:
        buttons.append(_action_button(a, "ack", t("alert.action.ack", lang_), "aj-btn aj-btn-primary"))
    if "arrive" in acts:
        buttons.append(_action_button(a, "arrive", t("alert.action.arrive", lang_)))
    if "close" in acts:
        buttons.append(_action_button(a, "close", t("alert.action.close", lang_)))
    if buttons:
        parts.append(tag("div", *buttons))
    if "assign" in acts:
        parts.append(tag("h2", t("dispatch.nearest", lang_)))
        if nearest is None:
            parts.append(_muted(t("dispatch.nearest.unavailable", lang_)))
        elif not nearest:
            parts.append(_muted(t("dispatch.nearest.empty", lang_)))
        else:
            items = []
            for k, s in enumerate(nearest, 1):
                who = s.get("name") or s.get("id")
                text = (f"{k}. {t('dispatch.send', lang_, name=who)} · "
                        f"{fmt_distance(_near_m(s.get('distance_m')), lang_)} · "
                        f"{t('dispatch.eta', lang_, n=max(1, round((s.get('eta_s') or 0) / 60)))}")
                # Someone else is on the way: sending another asks first, naming both.
                ask = (t("dispatch.confirm_reassign", lang_, other=assignee_name, name=who)
                       if assignee and s["id"] != assignee else None)
                items.append(tag("li", button(text, ids.DISPATCH_COMMAND,
                                              {"type": ids.ASSIGN_TYPE, "alert": a["id"], "inspector": s["id"]},
                                              class_="aj-btn aj-btn-ok", disabled=s["id"] == assignee,
                                              data_aj_confirm=ask)))
            parts.append(tag("ul", *items, class_="aj-suggestions"))
    if "resolve" in acts:
        parts.append(tag("h2", t("dispatch.resolve_as", lang_)))
        # Closing an alarm asks first, as on the officer's phone.
        parts.append(tag("div", *[_action_button(
            a, "resolve", label("alert.outcome", o, lang_), "aj-btn", outcome=o,
            confirm=t("officer.confirm_resolve", lang_, outcome=label("alert.outcome", o, lang_)))
            for o in outcomes_for(a.get("type"))]))
    if "reassign" in acts and a.get("inspector_id"):
        parts.append(_reassign_button(a, lang_))
    history = history_entries(a, lang_, names_of(reg), users=user_names())
    if history:
        parts.append(tag("h2", t("dispatch.history", lang_)))
        parts.append(tag("ul", *[tag("li", tag("span", h["time"], class_="aj-muted"), " ",
                                     tag("span", h["actor"], class_="aj-data"), " · ",
                                     f"{h['action']} → {h['state']}",
                                     tag("span", f" · {h['note']}", class_="aj-history-note") if h["note"] else "")
                                 for h in history], class_="aj-history"))
    return join(parts)


def names_of(reg):
    """Inspector or enterprise id -> its name (for history notes); unknown ids as they are."""
    def name(i: str) -> str:
        return (reg.inspectors.get(i) or (None,))[0] or reg.enterprise_names.get(i) or i
    return name


@cb.callback(output={"detail": Output(ids.DISPATCH_DETAIL_HTML, "data"),
                     "marks": Output(ids.DISPATCH_SUGGESTIONS, "data"),
                     "lines": Output(ids.DISPATCH_SUGGESTION_LINES, "data"),
                     "view": Output(ids.DISPATCH_MAP, "viewport")},
             inputs={"selected": Input(ids.DISPATCH_SELECTED, "data"), "afp": Input(ids.DISPATCH_AFP, "data"),
                     "done": Input(ids.DISPATCH_ACTION_DONE, "data")},
             prevent_initial_call=True)
def dispatch_detail(selected, afp, done):
    if selected is None:
        raise PreventUpdate
    store = alert_store()
    lang_ = lang()
    p = principal()
    a = store.get(selected)
    if a is None or not p.sees_area(a.get("street_id"), a.get("grid_id")):
        return {"detail": str(_muted(t("alert.gone", lang_))), "marks": layers.EMPTY,
                "lines": layers.EMPTY, "view": no_update}
    c = city()
    reg = web().registry()
    nearest = None
    if "assign" in allowed_actions(a):
        try:
            nearest = store.nearest(a["id"], k=5)
        except Exception:  # noqa: BLE001 - suggestions are help, not a precondition
            log.exception("nearest inspectors for alert %s failed", a["id"])
    marks, lines, view = suggestions_layers(a, nearest or [], reg, c)
    trig, _value = triggered()
    move = trig in (ids.DISPATCH_SELECTED, None)
    return {"detail": str(detail_panel(a, nearest, reg, c, lang_, time.time())), "marks": marks, "lines": lines,
            "view": view if (move and view) else no_update}


# --- actions (the only callback here that changes state) -------------------------------------------


def perform(trigger: dict, p) -> tuple[bool, str]:
    """Run the action a clicked button names: ``trigger`` is the value its click put
    into DISPATCH_COMMAND (``{"type", "alert", ...}``), as the browser sent it."""
    if not isinstance(trigger, dict):
        return False, t("alert.denied", lang())
    kind = trigger.get("type")
    alert_id = trigger.get("alert")
    if kind == ids.ASSIGN_TYPE:
        return act(alert_id, "assign", p, assignee_id=str(trigger.get("inspector")))
    if kind == ids.REASSIGN_TYPE:
        store = alert_store()
        a = store.get(alert_id)
        if a is None:
            return False, t("alert.gone", lang())
        # Where the second team goes instead: the store's suggestion (the nearest
        # overdue enterprise of its own unit); the dispatch goes there over MQTT.
        sugg = store.reassignment(alert_id) or {}
        if not sugg.get("enterprise_id"):
            return False, t("alert.denied", lang())
        note = f"→ {sugg['enterprise_id']} {sugg.get('name') or ''}".strip()
        return act(alert_id, "reassign", p, assignee_id=sugg.get("inspector_id") or a.get("inspector_id"),
                   target_enterprise_id=sugg["enterprise_id"], note=note)
    if kind == ids.ALERT_ACTION_TYPE:
        action = trigger.get("action")
        if action not in ("ack", "arrive", "resolve", "close"):
            return False, t("alert.denied", lang())
        return act(alert_id, action, p, outcome=trigger.get("outcome") or None)
    return False, t("alert.denied", lang())


@cb.callback(output={"feedback": Output(ids.DISPATCH_FEEDBACK, "children"),
                     "cls": Output(ids.DISPATCH_FEEDBACK, "className"),
                     "done": Output(ids.DISPATCH_ACTION_DONE, "data")},
             inputs={"command": Input(ids.DISPATCH_COMMAND, "data")},
             state={"done": State(ids.DISPATCH_ACTION_DONE, "data")},
             changes_state=True, prevent_initial_call=True)
def dispatch_act(command, done):
    if not command:
        raise PreventUpdate
    ok, message = perform(command, principal())
    return {"feedback": message, "cls": "aj-feedback aj-ok" if ok else "aj-feedback", "done": (done or 0) + 1}


# --- the alarm sound: muting is one click, and audited --------------------------------------------


@cb.callback(output={"muted": Output(ids.DISPATCH_MUTED, "data"), "label": Output(ids.DISPATCH_MUTE, "children")},
             inputs={"clicks": Input(ids.DISPATCH_MUTE, "n_clicks")}, state={"muted": State(ids.DISPATCH_MUTED, "data")},
             changes_state=True, prevent_initial_call=True)
def dispatch_mute(clicks, muted):
    """Mute or unmute this console's alarm sound; the audit log says who and when."""
    if not clicks:
        raise PreventUpdate
    from data import audit

    p = principal()
    now_muted = not bool(muted)
    audit.append(web().engine, p.username, "alarm_sound_muted" if now_muted else "alarm_sound_unmuted", PATH,
                 {"role": p.role})
    return {"muted": now_muted, "label": t("sound.unmute" if now_muted else "sound.mute", lang())}


cb.clientside("consoleAlarm", Output(ids.DISPATCH_SOUND, "children"), Input(ids.DISPATCH_ALARM, "data"),
              Input(ids.DISPATCH_MUTED, "data"))


# --- search and the enterprise layer ----------------------------------------------------------------


@cb.callback(Output(ids.DISPATCH_SEARCH_RESULTS, "children"), Input(ids.DISPATCH_SEARCH, "value"),
             prevent_initial_call=True)
def dispatch_search(query):
    lang_ = lang()
    if not query or not query.strip():
        return []
    rows = screen_queries.search_enterprises(web().engine, query)
    if not rows:
        return [html.Li(t("dispatch.search.empty", lang_), className="aj-muted")]
    return [html.Li([html.Span(t(f"risk.{r['risk']}", lang_) if r.get("risk") else "",
                               className=f"aj-risk-chip aj-risk-{r.get('risk')}"), " ",
                     html.A(r["name"], href=f"/enterprise/{r['id']}", className="aj-data"),
                     html.Div(r.get("credit_code") or "", className="aj-muted aj-data")]) for r in rows]


@cb.callback(output={"data": Output(ids.DISPATCH_ENTERPRISES, "data"), "last": Output(ids.DISPATCH_ENT_STATE, "data")},
             inputs={"zoom": Input(ids.DISPATCH_MAP, "zoom"), "bounds": Input(ids.DISPATCH_MAP, "bounds")},
             state={"last": State(ids.DISPATCH_ENT_STATE, "data")})
def dispatch_enterprises(zoom, bounds, last):
    data, new_last = layers.enterprises_update(city(), zoom, bounds, last, lang())
    return {"data": data, "last": new_last}


for _box, _store in HTML_BOXES.items():
    fill_html(cb, _box, _store)
