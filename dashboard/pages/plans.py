"""/plans — this week's plans of every unit, their collisions, and plan against actual.

A week grid (units × days: planned visits per day, a cell with a collision
marked), a map of the planned visits coloured by unit (collisions ringed red),
the collision list with its one-click resolution (the suggestion: merge into a
joint task, shift, drop; dispatchers and admins), plan completion, and the
upload of a CSV/XLSX plan with every row's error shown.  The rules are
docs/plans.md's; the page calls the same store and publisher as the API
(``dashboard.api_plans``).  Officers see and upload only their own units' plans.
"""

from __future__ import annotations

import base64
import time

import dash_leaflet as dl
from dash import ALL, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.i18n import t
from dashboard.mapkit import base_children, map_props, offline_ids, tiles_notice, unit_colours
from dashboard.pages import layers
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import city, guarded_layout, header, lang, preset, principal, triggered, web

PATH = "/plans"
ROLES = ("dispatcher", "admin", "officer")
MANAGE = ("dispatcher", "admin")

cb = PageCallbacks("plans", ROLES)


def title(**_):
    return t("plans.title", lang())


def _api():
    from dashboard import api_plans

    return api_plans


def _own(p) -> list[str] | None:
    return None if p.role != "officer" else sorted(_api().store().own_units(p))


def week_now() -> str:
    from data.plans_store import week_now as wn

    return wn(time.time())


def body(p, lang_: str, week: str):
    from plans.model import week_dates

    st = _api().store()
    own = _own(p)
    plans = st.list_plans(week, own)
    conflicts = st.conflicts(week, time.time())
    mine = {i["id"] for pl in plans for i in pl["items"]}
    if own is not None:
        conflicts = [c for c in conflicts if mine & set(c["item_ids"])]
    in_conflict = {i for c in conflicts if not c["resolved"] for i in c["item_ids"]}
    days = week_dates(week)
    c = city()
    unit_names = {uid: layers.unit_name(c, uid, lang_, registered=name) for uid, name in st.units()}
    # Every item of the week by id, whoever planned it: a collision names the units and days
    # that meet (not the items' numbers).
    where = {i["id"]: (pl["unit_id"], i["date"]) for pl in st.list_plans(week, None) for i in pl["items"]}
    # --- the week grid: units x days
    head = html.Thead(html.Tr([html.Th(t("plans.col.unit", lang_)),
                               *[html.Th(d[5:]) for d in days], html.Th(t("plans.col.state", lang_))]))
    rows = []
    for pl in plans:
        cells = []
        for d in days:
            its = [i for i in pl["items"] if i["date"] == d and i["state"] != "dropped"]
            hot = any(i["id"] in in_conflict for i in its)
            cells.append(html.Td(str(len(its)) if its else "", className="aj-plan-cell aj-plan-conflict" if hot
                                 else "aj-plan-cell"))
        rows.append(html.Tr([html.Td(unit_names.get(pl["unit_id"], pl["unit_id"]), className="aj-data aj-clip",
                                     title=unit_names.get(pl["unit_id"], pl["unit_id"])), *cells,
                             html.Td(t(f"plans.state.{pl['state']}", lang_))]))
    grid = (html.Table([head, html.Tbody(rows)], className="aj-table", id=ids.PLANS_GRID) if plans
            else html.P(t("plans.empty", lang_), className="aj-muted", id=ids.PLANS_GRID))
    # --- the map of planned visits, coloured by unit
    items = [(pl["unit_id"], i) for pl in plans for i in pl["items"] if i["state"] != "dropped"]
    places = st.enterprise_places(i["enterprise_id"] for _, i in items)
    colours = unit_colours(pl["unit_id"] for pl in plans)
    c = city()
    marks = []
    for unit, i in items:
        pl = places.get(i["enterprise_id"])
        if pl is None:
            continue
        x, y = c.projector.lonlat([pl[2]], [pl[1]])
        hot = i["id"] in in_conflict
        marks.append(dl.CircleMarker(center=[float(y[0]), float(x[0])], radius=8 if hot else 5,
                                     color="#c9a0ff" if hot else colours.get(unit, "#4aa3ff"), weight=3 if hot else 1,
                                     fillColor=colours.get(unit, "#4aa3ff"), fillOpacity=0.8,
                                     children=dl.Tooltip(f"{pl[0]} · {unit_names.get(unit, unit)} · {i['date']}")))
    pr = preset()
    the_map = dl.Map([*base_children(pr, c, lang_, **offline_ids(ids.PLANS_MAP)), *marks], id=ids.PLANS_MAP,
                     style={"height": "420px"}, **map_props(pr, c))
    notice = tiles_notice(pr, lang_, ids.PLANS_MAP, **offline_ids(ids.PLANS_MAP))
    # --- the collisions and their resolution
    can_resolve = p.role in MANAGE
    lis = []
    for cf in conflicts:
        name = places.get(cf["enterprise_id"], (cf["enterprise_id"],))[0]
        parts = [html.Span(t(f"plans.kind.{cf['kind']}", lang_), className=f"aj-badge aj-conflict-{cf['kind']}"), " ",
                 html.Span(name, className="aj-data"), " ",
                 html.Span(" · ".join(f"{unit_names.get(u, u)} {d[5:]}" for u, d in
                                      (where[i] for i in cf["item_ids"] if i in where)), className="aj-muted aj-data")]
        if cf["resolved"]:
            parts.append(html.Span(" · " + t(f"plans.resolved.{cf['resolution']}", lang_), className="aj-muted"))
        elif can_resolve and not (cf["kind"] == "same_week" and cf["suggestion"] != "joint"):
            parts.append(html.Button(t(f"plans.action.{cf['suggestion']}", lang_), className="aj-btn",
                                     id={"type": ids.PLANS_RESOLVE_TYPE, "conflict": cf["id"],
                                         "action": cf["suggestion"]}))
        lis.append(html.Li(parts, className="aj-conflict-done" if cf["resolved"] else "aj-conflict-open"))
    conflict_list = html.Ul(lis, id=ids.PLANS_CONFLICTS) if lis else html.P(
        t("plans.no_conflicts", lang_), className="aj-muted", id=ids.PLANS_CONFLICTS)
    actual = st.actual(week, own, time.time())
    kpi = t("plans.kpi", lang_, pct=actual["completion_pct"], done=actual["kpis"]["done"],
            items=actual["kpis"]["items"], unplanned=actual["kpis"]["unplanned_visits"],
            avoided=actual["kpis"]["conflicts_resolved"], dups=actual["kpis"]["duplicates_happened"])
    return [
        html.Div([html.H2(t("plans.week", lang_, week=week)), html.P(kpi, id=ids.PLANS_KPI), grid], className="aj-panel"),
        html.Div([html.H2(t("plans.conflicts", lang_)), conflict_list], className="aj-panel"),
        html.Div([the_map, notice], className="aj-panel aj-map-host"),
    ]


def upload_panel(p, lang_: str):
    own = _own(p)
    options = [{"label": name, "value": uid} for uid, name in _api().store().units()
               if own is None or uid in own]
    return html.Div([
        html.H2(t("plans.upload", lang_)),
        dcc.Dropdown(options=options, value=options[0]["value"] if options else None, id=ids.PLANS_UNIT,
                     clearable=False),
        dcc.Upload(html.Div(t("plans.upload.hint", lang_)), id=ids.PLANS_UPLOAD, className="aj-upload",
                   accept=".csv,.xlsx"),
        html.Div(id=ids.PLANS_UPLOAD_RESULT),
    ], className="aj-panel")


def draw_panel(p, lang_: str):
    """Run a public draw (dispatchers, admins) and verify any draw by id (everyone on the page)."""
    parts = [html.H2(t("plans.draw", lang_))]
    if p.role in MANAGE:
        parts += [
            dcc.Input(id=ids.PLANS_DRAW_SEED, type="text", placeholder=t("plans.draw.seed", lang_), maxLength=256),
            dcc.Input(id=ids.PLANS_DRAW_COUNT, type="number", min=1, max=1000, value=10),
            html.Button(t("plans.draw.run", lang_), id=ids.PLANS_DRAW_RUN, className="aj-btn"),
        ]
    parts += [
        dcc.Input(id=ids.PLANS_DRAW_ID, type="number", min=1, placeholder=t("plans.draw.id", lang_)),
        html.Button(t("plans.draw.verify", lang_), id=ids.PLANS_DRAW_VERIFY, className="aj-btn"),
        html.Div(id=ids.PLANS_DRAW_RESULT),
    ]
    return html.Div(parts, className="aj-panel")


def run_draw(seed, count, p, lang_: str):
    from plans.draw import DrawParams, MAX_SEED_LEN

    if p.role not in MANAGE:
        return None, html.P(t("plans.denied", lang_))
    if not isinstance(seed, str) or not seed.strip() or len(seed) > MAX_SEED_LEN:
        return None, html.P(t("plans.draw.need_seed", lang_))
    try:
        n = int(count)
    except (TypeError, ValueError):
        n = 0
    if not 1 <= n <= 1000:
        return None, html.P(t("plans.draw.bad_count", lang_))
    d = _api().store().create_draw(seed, {"exclude_planned": True}, DrawParams(n), p.username, time.time())
    reg = web().registry()

    def person(iid):
        return (reg.inspectors.get(iid) or (iid,))[0] or iid

    return d["id"], html.Div([
        html.P(t("plans.draw.done", lang_, id=d["id"], seed=d["seed"]), id=ids.PLANS_DRAW_SUMMARY),
        html.P(t("plans.draw.hash", lang_, hash=d["pool_hash"]), className="aj-data"),
        html.Ol([html.Li([html.A(reg.enterprise_names.get(x["enterprise_id"], x["enterprise_id"]),
                                 href=f"/enterprise/{x['enterprise_id']}"),
                          " · ", "、".join(person(i) for i in x["inspector_ids"])], className="aj-data")
                 for x in d["picks"]]),
    ])


def verify_draw(draw_id, lang_: str):
    try:
        r = _api().store().verify_draw(int(draw_id))
    except (TypeError, ValueError, LookupError):
        return html.P(t("plans.draw.none", lang_))
    return html.P(t("plans.draw.ok" if r["ok"] else "plans.draw.bad", lang_, id=r["id"]),
                  className="aj-ok" if r["ok"] else "aj-dup", id=ids.PLANS_DRAW_VERDICT)


@cb.callback(output={"result": Output(ids.PLANS_DRAW_RESULT, "children"), "id": Output(ids.PLANS_DRAW_ID, "value")},
             inputs={"n": Input(ids.PLANS_DRAW_RUN, "n_clicks")},
             state={"seed": State(ids.PLANS_DRAW_SEED, "value"), "count": State(ids.PLANS_DRAW_COUNT, "value")},
             roles=MANAGE, changes_state=True, prevent_initial_call=True)
def plans_draw(n, seed, count):
    if not n:
        raise PreventUpdate
    did, shown = run_draw(seed, count, principal(), lang())
    return {"result": shown, "id": did}


@cb.callback(Output(ids.PLANS_DRAW_RESULT, "children", allow_duplicate=True), Input(ids.PLANS_DRAW_VERIFY, "n_clicks"),
             State(ids.PLANS_DRAW_ID, "value"), prevent_initial_call=True)
def plans_draw_verify(n, draw_id):
    if not n:
        raise PreventUpdate
    return verify_draw(draw_id, lang())


def build(p, lang_: str, **_):
    week = week_now()
    return html.Div([
        header("plans.title", lang_, p, PATH),
        html.Main([
            html.Section(body(p, lang_, week), id=ids.PLANS_BODY, className="aj-col"),
            html.Section([upload_panel(p, lang_), html.Div(id=ids.PLANS_FEEDBACK, className="aj-feedback"),
                          draw_panel(p, lang_)],
                         className="aj-col"),
        ], className="aj-plans"),
        dcc.Store(id=ids.PLANS_WEEK, data=week),
        dcc.Store(id=ids.PLANS_CHANGED, data=0),
    ], id=ids.PLANS_ROOT, className="aj-page", lang=lang_)


layout = guarded_layout(ROLES, build)


def resolve(conflict_id: int, action: str, p) -> tuple[bool, str]:
    """One click: the conflict's suggestion (a joint task reaches its inspectors' phones)."""
    from plans.lifecycle import TransitionNotAllowed

    if p.role not in MANAGE or action not in ("joint", "shift", "drop"):
        return False, t("plans.denied", lang())
    try:
        out = _api().resolve_and_publish(int(conflict_id), action, p.username)
    except (LookupError, TransitionNotAllowed, ValueError) as e:
        return False, t("plans.failed", lang(), reason=str(e))
    if out.get("joint_task_id"):
        return True, t("plans.merged", lang(), id=out["joint_task_id"])
    return True, t(f"plans.resolved.{action}", lang())


@cb.callback(output={"feedback": Output(ids.PLANS_FEEDBACK, "children"),
                     "changed": Output(ids.PLANS_CHANGED, "data")},
             inputs={"clicks": Input({"type": ids.PLANS_RESOLVE_TYPE, "conflict": ALL, "action": ALL}, "n_clicks")},
             state={"changed": State(ids.PLANS_CHANGED, "data")},
             roles=MANAGE, changes_state=True, prevent_initial_call=True)
def plans_resolve(clicks, changed):
    trigger, value = triggered()
    if not isinstance(trigger, dict) or not value:
        raise PreventUpdate
    ok, message = resolve(trigger.get("conflict"), trigger.get("action"), principal())
    return {"feedback": message, "changed": (changed or 0) + 1}


def upload(contents: str, filename: str, unit_id: str, week: str, p, lang_: str):
    """Store an uploaded plan file for ``unit_id``; (ok, children to show)."""
    from data.plans_store import RowErrors, read_plan_file
    from plans.lifecycle import TransitionNotAllowed

    own = _own(p)
    if not unit_id or (own is not None and unit_id not in own):
        return False, html.P(t("plans.denied", lang_))
    try:
        data = base64.b64decode(contents.split(",", 1)[1])
        plan = _api().store().save_plan(unit_id, week, read_plan_file(filename or "", data), p.username, time.time(),
                                        source=f"page:{(filename or '')[:100]}")
    except RowErrors as e:
        return False, html.Div([html.P(t("plans.upload.errors", lang_, n=len(e.errors))),
                                html.Ul([html.Li(t("plans.upload.row", lang_, row=x["row"], reason=x["reason"],
                                                   detail=x.get("detail", ""))) for x in e.errors],
                                        id=ids.PLANS_UPLOAD_ERRORS)])
    except (TransitionNotAllowed, LookupError, ValueError, IndexError) as e:
        return False, html.P(t("plans.failed", lang_, reason=str(e)))
    return True, html.P(t("plans.upload.ok", lang_, n=len(plan["items"]), unit=unit_id))


@cb.callback(output={"result": Output(ids.PLANS_UPLOAD_RESULT, "children"),
                     "changed": Output(ids.PLANS_CHANGED, "data", allow_duplicate=True)},
             inputs={"contents": Input(ids.PLANS_UPLOAD, "contents")},
             state={"filename": State(ids.PLANS_UPLOAD, "filename"), "unit_id": State(ids.PLANS_UNIT, "value"),
                    "week": State(ids.PLANS_WEEK, "data"), "changed": State(ids.PLANS_CHANGED, "data")},
             changes_state=True, prevent_initial_call=True)
def plans_upload(contents, filename, unit_id, week, changed):
    if not contents:
        raise PreventUpdate
    _ok, shown = upload(contents, filename, unit_id, week, principal(), lang())
    return {"result": shown, "changed": (changed or 0) + 1}


@cb.callback(Output(ids.PLANS_BODY, "children"), Input(ids.PLANS_CHANGED, "data"), State(ids.PLANS_WEEK, "data"),
             prevent_initial_call=True)
def plans_refresh(changed, week):
    return body(principal(), lang(), week or week_now())
