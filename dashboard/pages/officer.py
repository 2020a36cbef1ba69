"""/officer — the street officer's phone view (375 px first).

Only the gas alarms of the officer's own grids (the store filters by the
principal's scope, and ``Principal.sees_area`` filters again here).  One alarm
at a time gets four large buttons: acknowledge, on my way (assign the alarm to
myself), arrived, and resolved with an outcome.  Below them a map with the
straight line from the officer's last fix to the alarm.

The action callback is ``changes_state``: only officer and admin may call it,
and the store refuses an alarm outside the officer's grids (and audits it).
"""

from __future__ import annotations

import time

import dash_leaflet as dl
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.i18n import t
from dashboard.mapkit import (
    INSPECTOR_COLOUR,
    base_children,
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
    alerts_fingerprint,
    allowed_actions,
    city,
    first_seen_ts,
    fmt_age,
    fmt_distance,
    fmt_time,
    guarded_layout,
    header,
    label,
    lang,
    outcomes_for,
    preset,
    principal,
    push_listener,
    triggered,
    web,
)
from geo.coords import haversine_m

PATH = "/officer"
ROLES = ("officer", "admin")
# A phone on mobile data: every 2 s is prompt for a person walking to a
# restaurant, and an unchanged state answers 204 (no body).
TICK_MS = 2000
# The day's tasks change when a plan is approved or a visit ends: a minute is prompt.
TASKS_TICK_MS = 60_000
# The map is fitted to the officer and the alarm with room in pixels (Leaflet's fitBounds
# padding), whatever the distance: a pad in degrees (0.002) was a few pixels at 3 km, and
# the tiles notice lay over the alarm.  The top of the phone's map holds the zoom buttons
# (top left, to 74 px) and, with no tile server, the tiles notice (top right, to 58 px at
# three lines of 12 px, anjian.css); the alarm's marker is 34 px across.  So the points
# stay 96 px below the top (74 + 17 + 5) and 24 px from the other edges (17 + 7).
VIEW_PAD_TOP_PX = 96
VIEW_PAD_PX = 24

cb = PageCallbacks("officer", ROLES)


def title(**_):
    return t("officer.title", lang())


def build(p, lang_: str, **_):
    c = city()
    pr = preset()
    the_map = dl.Map(
        [*base_children(pr, c, lang_, **offline_ids(ids.OFFICER_MAP)),
         dl.Polyline(id=ids.OFFICER_ROUTE, positions=[], color="#30d158", weight=5, dashArray="10 8"),
         dl.GeoJSON(id=ids.OFFICER_ME, data=layers.EMPTY, pointToLayer=js("inspectorPoint")),
         dl.GeoJSON(id=ids.OFFICER_TARGET, data=layers.EMPTY, pointToLayer=js("targetPoint"))],
        id=ids.OFFICER_MAP, style={"height": "100%"}, zoomControl=True, **map_props(pr, c),
    )
    notice = tiles_notice(pr, lang_, ids.OFFICER_MAP, **offline_ids(ids.OFFICER_MAP))
    return html.Div([
        header("officer.title", lang_, p, PATH),
        html.Div([
            html.Div(id=ids.OFFICER_FEEDBACK, className="aj-feedback", role="status"),
            html.Ul(id=ids.OFFICER_LIST, className="aj-officer-list"),
            html.Div(id=ids.OFFICER_DETAIL),
            html.Div([the_map, notice], className="aj-officer-map aj-map-host"),
            html.Section(id=ids.OFFICER_TASKS, className="aj-officer-tasks"),
        ], className="aj-officer-body"),
        dcc.Interval(id=ids.OFFICER_TICK, interval=TICK_MS),
        dcc.Interval(id=ids.OFFICER_TASKS_TICK, interval=TASKS_TICK_MS),
        push_listener(ids.OFFICER_PUSH),
        dcc.Store(id=ids.OFFICER_STATE, data={}),
        dcc.Store(id=ids.OFFICER_SELECTED, data=None),
        dcc.Store(id=ids.OFFICER_ACTION_DONE, data=0),
        dcc.Store(id=ids.OFFICER_PENDING, data=None),
    ], id=ids.OFFICER_ROOT, className="aj-officer", lang=lang_)


layout = guarded_layout(ROLES, build)


# --- pieces --------------------------------------------------------------------------------------


def my_alarms(p) -> list[dict]:
    """Active gas alarms in the principal's grids, most urgent first."""
    return active_alerts(p, types=("gas_alarm",))


def inspector_name(reg, inspector_id: str | None) -> str:
    return (reg.inspectors.get(inspector_id) or (None,))[0] or inspector_id or ""


def alarm_card(a: dict, reg, c, lang_: str, now: float, selected: bool):
    sev = a.get("severity")
    lel = a.get("peak_lel")
    assignee = a.get("assignee_id")
    return html.Li(html.Button([
        html.Span([html.Span(label("alert.severity", sev, lang_), className=f"aj-badge aj-sev-{sev}"), " ",
                   label("alert.state", a.get("state"), lang_)]),
        html.Span(layers.alert_subject(a, reg, c, lang_), className="aj-name aj-data"),
        html.Span(layers.area_name(a, c, lang_), className="aj-muted aj-data"),
        html.Span(" · ".join(x for x in (
            t("alert.peak", lang_, n=round(float(lel))) if lel is not None else "",
            fmt_time(first_seen_ts(a)), fmt_age(now - first_seen_ts(a), lang_)) if x)),
        *([html.Span(named("officer.on_scene_person" if a.get("state") == "on_scene" else "officer.assignee",
                           lang_, inspector_name(reg, assignee)), className="aj-assignee")] if assignee else []),
    ], id={"type": ids.OFFICER_SELECT_TYPE, "alert": a["id"]}, n_clicks=0,
        className=f"aj-officer-card aj-sev-{sev}" + (" aj-selected" if selected else ""),
        **({"aria-current": "true"} if selected else {})))


def named(key: str, lang_: str, name: str) -> list:
    """A catalogue text with a person's name in it, the name kept whole on one line (a
    narrow button broke "谢芳兴" after its second character)."""
    before, _, after = t(key, lang_, name="\0").partition("\0")
    return [before, html.Span(name, className="aj-nowrap aj-data"), after]


def _big(a: dict, action: str, text: str, cls: str, enabled: bool, outcome: str = ""):
    return html.Button(text, id={"type": ids.OFFICER_ACTION_TYPE, "alert": a["id"], "action": action,
                                 "outcome": outcome},
                       className=f"aj-big {cls}", disabled=not enabled, n_clicks=0)


def confirm_box(a: dict, pending: dict, p, reg, lang_: str):
    """The question a takeover or an outcome asks before anything changes."""
    if pending.get("action") == "takeover":
        text = t("officer.confirm_takeover", lang_, other=inspector_name(reg, a.get("assignee_id")),
                 me=inspector_name(reg, p.inspector_id))
    else:
        text = t("officer.confirm_resolve", lang_, outcome=label("alert.outcome", pending.get("outcome"), lang_))
        other = a.get("assignee_id")
        if other and other != p.inspector_id:  # someone else's alarm: the question says whose
            text = t("officer.confirm_resolve_other", lang_, other=inspector_name(reg, other)) + text
    return html.Div([
        html.P(text, className="aj-confirm-text"),
        html.Div([_big(a, "confirm", t("officer.confirm", lang_), "aj-big-confirm", True,
                       pending.get("outcome") or ""),
                  _big(a, "cancel", t("officer.cancel", lang_), "aj-big-cancel", True)],
                 className="aj-big-buttons"),
    ], className="aj-confirm", role="alertdialog")


def action_buttons(a: dict, p, lang_: str, reg=None, pending: dict | None = None):
    acts = allowed_actions(a)
    me = p.inspector_id
    assignee = a.get("assignee_id")
    mine = bool(me) and assignee == me
    outcomes = outcomes_for("gas_alarm")
    if pending and pending.get("alert") == a["id"]:
        return confirm_box(a, pending, p, reg, lang_)
    if assignee and not mine and me:
        go_text = named("officer.take_over", lang_, inspector_name(reg, assignee) if reg else assignee)
    else:
        go_text = t("officer.on_my_way", lang_)
    parts = [
        # Which alarm the buttons act on: with several in the list they sit under all the cards.
        html.Div(named("officer.acting_on", lang_, layers.alert_subject(a, reg, city(), lang_) if reg else str(a["id"])),
                 className="aj-acting-on", id=ids.OFFICER_ACTING_ON),
        html.Div([
            _big(a, "ack", t("officer.ack", lang_), "aj-big-ack", "ack" in acts),
            _big(a, "go", go_text, "aj-big-go", "assign" in acts and not mine and bool(me)),
            # Arrival is the sent officer's to report; anyone else takes the alarm over first.
            _big(a, "arrive", t("officer.arrived", lang_), "aj-big-arrive", "arrive" in acts and mine),
        ], className="aj-big-buttons"),
        html.Div([html.Div(t("officer.resolved", lang_), className="aj-resolve-label"),
                  *[_big(a, "resolve", label("alert.outcome", o, lang_), "aj-big-resolve", "resolve" in acts, o)
                    for o in outcomes]], className="aj-resolve-row", style={"marginTop": "10px"}),
    ]
    if not me:
        parts.insert(1, html.P(t("officer.cannot_take", lang_), className="aj-muted"))
    return html.Div(parts)


def route_of(a: dict | None, p, reg, c, lang_: str):
    """(route positions, me layer, target layer, distance text, view) for the selected alarm."""
    target = layers.alarm_position(a, reg, c) if a else None
    me = None
    iid = p.inspector_id
    if iid:
        fix = web().live.inspector_fixes([iid]).get(iid)
        if fix is not None:
            me = (fix.lat, fix.lon)
    tgt_layer = feature_collection([])
    me_layer = feature_collection([])
    if target:
        x, y = c.projector.lonlat([target[1]], [target[0]])
        tgt_layer = feature_collection([point(float(x[0]), float(y[0]), {"id": str(a["id"])})])
    if me:
        x, y = c.projector.lonlat([me[1]], [me[0]])
        me_layer = feature_collection([point(float(x[0]), float(y[0]), {"id": iid, "c": INSPECTOR_COLOUR, "s": "on_duty"})])
    route = line_positions([me, target], c.projector) if (me and target) else []
    if me and target:
        dist = t("officer.distance", lang_, d=fmt_distance(haversine_m(me[1], me[0], target[1], target[0]), lang_))
    elif target and iid:
        dist = t("officer.no_fix", lang_)
    else:
        # No inspector: the line above the buttons says so (officer.cannot_take); here it
        # was said a second time.
        dist = ""
    pts = [q for q in (me, target) if q]
    view = no_update
    if pts:
        shown = line_positions(pts, c.projector)
        lats = [q[0] for q in shown]
        lons = [q[1] for q in shown]
        view = {"bounds": [[min(lats), min(lons)], [max(lats), max(lons)]], "transition": "fitBounds",
                "options": {"maxZoom": 17, "paddingTopLeft": [VIEW_PAD_PX, VIEW_PAD_TOP_PX],
                            "paddingBottomRight": [VIEW_PAD_PX, VIEW_PAD_PX]}}
    return route, me_layer, tgt_layer, dist, view


def task_list(tasks: list[dict], unit_names: dict, lang_: str, short=lambda name: name):
    """The day's tasks (``PlansStore.day_tasks``): what is left first, each with its
    enterprise, purpose, joint lead and whether a visit has done it.  ``short`` leaves
    out the city and district all names share (``Registry.short``), as the alarm cards
    above do; the full name is the link's title."""
    done = sum(1 for x in tasks if x["done"])
    rows = []
    for x in tasks:
        what = [label("task.purpose", x.get("purpose"), lang_)]
        if x["kind"] == "joint":
            lead = x.get("lead_unit_id")
            what.append(t("officer.task_joint", lang_, lead=unit_names.get(lead, lead)))
        rows.append(html.Li([
            html.Span(t("officer.task_done" if x["done"] else "officer.task_todo", lang_),
                      className="aj-badge " + ("aj-task-done" if x["done"] else "aj-task-todo")),
            html.A(short(x["name"]) or x["name"], href=f"/enterprise/{x['enterprise_id']}", title=x["name"],
                   className="aj-name aj-data"),
            html.Span(" · ".join(what), className="aj-muted"),
        ], className="aj-task" + (" aj-task-is-done" if x["done"] else ""), **{"data-task": x["task_id"]}))
    return [html.H2(t("officer.tasks", lang_)),
            html.P(t("officer.tasks_count", lang_, n=len(tasks), done=done), className="aj-muted"),
            html.Ul(rows, className="aj-task-list")]


@cb.callback(Output(ids.OFFICER_TASKS, "children"), Input(ids.OFFICER_TASKS_TICK, "n_intervals"))
def officer_tasks(_n):
    from dashboard.api_plans import store as plans_store
    from plans.model import local_date

    p = principal()
    lang_ = lang()
    if not p.inspector_id:
        return [html.H2(t("officer.tasks", lang_)), html.P(t("officer.tasks_no_inspector", lang_), className="aj-muted")]
    now = time.time()
    store = plans_store()
    tasks = store.day_tasks(p.inspector_id, local_date(now), now)
    if not tasks:
        return [html.H2(t("officer.tasks", lang_)), html.P(t("officer.tasks_none", lang_), className="aj-empty")]
    c = city()
    names = {uid: layers.unit_name(c, uid, lang_, registered=name) for uid, name in store.units()}
    return task_list(tasks, names, lang_, web().registry().short)


# --- the poll --------------------------------------------------------------------------------

TICK_OUTPUTS = {
    "list": Output(ids.OFFICER_LIST, "children"),
    "detail": Output(ids.OFFICER_DETAIL, "children"),
    "route": Output(ids.OFFICER_ROUTE, "positions"),
    "me": Output(ids.OFFICER_ME, "data"),
    "target": Output(ids.OFFICER_TARGET, "data"),
    "view": Output(ids.OFFICER_MAP, "viewport"),
    "state": Output(ids.OFFICER_STATE, "data"),
}


@cb.callback(output=TICK_OUTPUTS,
             inputs={"n": Input(ids.OFFICER_TICK, "n_intervals"), "done": Input(ids.OFFICER_ACTION_DONE, "data"),
                     "selected": Input(ids.OFFICER_SELECTED, "data"), "push": Input(ids.OFFICER_PUSH, "data"),
                     "pending": Input(ids.OFFICER_PENDING, "data")},
             state={"state": State(ids.OFFICER_STATE, "data")})
def officer_tick(n, done, selected, state, push=None, pending=None):
    ctx = web()
    state = dict(state or {})
    version = ctx.live.version()
    if (version == state.get("v") and done == state.get("done") and selected == state.get("selected")
            and pending == state.get("pending")):
        raise PreventUpdate
    p = principal()
    lang_ = lang()
    c = city()
    reg = ctx.registry()
    now = time.time()
    alarms = my_alarms(p)
    current = next((a for a in alarms if a["id"] == selected), alarms[0] if alarms else None)
    route, me_layer, tgt_layer, dist, view = route_of(current, p, reg, c, lang_)
    fp = alerts_fingerprint(alarms) + f":{current['id'] if current else ''}:{route}"
    out = dict.fromkeys(TICK_OUTPUTS, no_update)
    if fp != state.get("fp") or done != state.get("done") or pending != state.get("pending"):
        if not alarms:
            out["list"] = [html.Li(t("officer.empty", lang_), className="aj-empty")]
            out["detail"] = []
        else:
            out["list"] = [alarm_card(a, reg, c, lang_, now, current is a) for a in alarms]
            out["detail"] = [action_buttons(current, p, lang_, reg, pending), html.P(dist, className="aj-muted")]
        out["route"], out["me"], out["target"] = route, me_layer, tgt_layer
        focus = current["id"] if current else None
        if focus != state.get("focus"):
            out["view"] = view
    state.update({"v": version, "done": done, "selected": selected, "fp": fp, "pending": pending,
                  "focus": current["id"] if current else None})
    out["state"] = state
    return out


@cb.callback(Output(ids.OFFICER_SELECTED, "data"),
             Input({"type": ids.OFFICER_SELECT_TYPE, "alert": ALL}, "n_clicks"), prevent_initial_call=True)
def officer_select(clicks):
    trig, value = triggered()
    if not isinstance(trig, dict) or not value:
        raise PreventUpdate
    return trig["alert"]


def perform(trigger: dict, p, pending: dict | None = None) -> tuple[bool | None, str, dict | None]:
    """(done, message, what now waits for a confirmation).  A takeover of an alarm
    assigned to someone else and every outcome ask first (``done`` None: nothing
    changed yet); ``confirm`` runs what was asked, ``cancel`` drops it."""
    alert_id = trigger.get("alert")
    action = trigger.get("action")
    if action == "cancel":
        return None, "", None
    if action == "go":
        if not p.inspector_id:
            return False, t("officer.cannot_take", lang()), None
        store = alert_store()
        a = store.get(alert_id)
        if a is not None and a.get("assignee_id") and a["assignee_id"] != p.inspector_id:
            return None, "", {"alert": alert_id, "action": "takeover", "outcome": ""}
        # The store's action is an assign; the officer set off (我已出发).
        ok, msg = act(alert_id, "assign", p, done_as="go", assignee_id=p.inspector_id)
        return ok, msg, None
    if action in ("ack", "arrive"):
        ok, msg = act(alert_id, action, p)  # the store refuses an arrival not sent to p (audited)
        if not ok and action == "arrive":
            a = alert_store().get(alert_id) or {}
            if a.get("assignee_id") and a["assignee_id"] != p.inspector_id:  # say who was sent
                msg = t("officer.arrive_not_mine", lang(), name=inspector_name(web().registry(), a["assignee_id"]))
        return ok, msg, None
    if action == "resolve":
        return None, "", {"alert": alert_id, "action": "resolve", "outcome": trigger.get("outcome") or ""}
    if action == "confirm" and pending and pending.get("alert") == alert_id:
        if pending.get("action") == "takeover":
            # The store's action is an assign; the officer did a takeover.
            ok, msg = act(alert_id, "assign", p, done_as="takeover", assignee_id=p.inspector_id, take_over=True)
        elif pending.get("action") == "resolve":
            ok, msg = act(alert_id, "resolve", p, outcome=pending.get("outcome") or None)
        else:
            ok, msg = False, t("alert.denied", lang())
        return ok, msg, None
    return False, t("alert.denied", lang()), None


@cb.callback(output={"feedback": Output(ids.OFFICER_FEEDBACK, "children"),
                     "cls": Output(ids.OFFICER_FEEDBACK, "className"),
                     "done": Output(ids.OFFICER_ACTION_DONE, "data"),
                     "pending": Output(ids.OFFICER_PENDING, "data")},
             inputs={"clicks": Input({"type": ids.OFFICER_ACTION_TYPE, "alert": ALL, "action": ALL, "outcome": ALL},
                                     "n_clicks")},
             state={"done": State(ids.OFFICER_ACTION_DONE, "data"), "pending": State(ids.OFFICER_PENDING, "data")},
             changes_state=True, prevent_initial_call=True)
def officer_act(clicks, done, pending=None):
    trig, value = triggered()
    if not isinstance(trig, dict) or not value:
        raise PreventUpdate
    ok, message, new_pending = perform(dict(trig), principal(), pending)
    return {"feedback": message, "cls": "aj-feedback aj-ok" if ok else "aj-feedback", "done": (done or 0) + 1,
            "pending": new_pending}
