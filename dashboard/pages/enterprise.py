"""/enterprise/<id> — one enterprise at a glance (一键全知道).

Risk colour, registration facts, last inspection and next due date (overdue
flagged), its gas detectors and their live state, every visit (who, which
unit, when, how long, and which were duplicates of another unit's visit), and
its alerts.  Detectors and alerts refresh every 5 s; the rest is history.

Officers see only enterprises in their own streets/grids.
"""

from __future__ import annotations

import time

import dash_leaflet as dl
import numpy as np
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.i18n import t
from dashboard.mapkit import (
    RISK_HEX,
    base_children,
    feature_collection,
    js,
    map_props,
    offline_ids,
    point,
    tiles_notice,
)
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import city, fmt_time, guarded_layout, header, label, lang, preset, principal, web
from dashboard.pages.layers import grid_name, unit_name, without_street
from data import screen_queries
from hazards.review import REVIEW_ROLES

CHART_AXIS = {"tickfont": {"color": "#8aa0bd", "size": 12}, "gridcolor": "rgba(138, 160, 189, 0.18)",
              "zeroline": False, "linecolor": "rgba(138, 160, 189, 0.35)"}

PATH = "/enterprise/<enterprise_id>"
ROLES = ("dispatcher", "admin", "officer")
REFRESH_MS = 5000

cb = PageCallbacks("enterprise", ROLES)


def title(enterprise_id=None, **_):
    return t("enterprise.title", lang())


def _fmt_duration(seconds: float | None, lang_: str) -> str:
    if seconds is None:
        return "—"
    return t("common.min", lang_, n=max(1, round(seconds / 60)))


def visible(p, ent: dict | None) -> bool:
    return ent is not None and p is not None and p.sees_area(ent.get("street_id"), ent.get("grid_id"))


def next_due(ent: dict, intervals_d) -> float:
    """When the next inspection is due, by the rule /api/v1/coverage uses
    (``data.geo_queries.due_dates``): last inspection + the colour's interval."""
    from data.geo_queries import due_dates

    nan = float("nan")
    last = ent.get("last_inspected_at")
    planned = ent.get("next_due_at")
    due = due_dates(np.array([nan if last is None else last], float), np.array([nan if planned is None else planned], float),
                    np.array([ent.get("risk") or "blue"], dtype=object), intervals_d)
    return float(due[0])


def last_inspection(ent: dict, visits: list[dict]) -> tuple[float | None, bool]:
    """(when, from_visits): the later of the newest recorded visit and the registered
    ``last_inspected_at``, and whether it is a visit of this system (so the facts and the
    visits table never disagree)."""
    seen = max((v.get("end_ts") or v.get("start_ts") or 0 for v in visits), default=0) or None
    registered = ent.get("last_inspected_at")
    if seen is not None and (registered is None or seen >= registered):
        return seen, True
    return registered, False


def facts(ent: dict, lang_: str, now: float, visits: list[dict] | None = None):
    street = ent.get("street_name_en") if lang_ == "en" else ent.get("street_name")
    last, from_visits = last_inspection(ent, visits or [])
    ent = {**ent, "last_inspected_at": last}
    due = next_due(ent, web().settings.interval_days())
    overdue = now > due
    return html.Dl([
        html.Dt(t("enterprise.credit_code", lang_)), html.Dd(ent.get("credit_code") or "—", className="aj-data"),
        html.Dt(t("enterprise.address", lang_)), html.Dd(ent.get("address") or "—", className="aj-data"),
        html.Dt(t("enterprise.industry", lang_)), html.Dd(label("industry", ent["industry"], lang_) if ent.get("industry") else "—",
                                                        className="aj-data"),
        html.Dt(t("enterprise.area", lang_)),
        html.Dd(" / ".join(x for x in (street, without_street(grid_name(ent.get("grid_name") or "", lang_),
                                                              ent.get("street_name"))) if x) or "—",
                className="aj-data"),
        html.Dt(t("enterprise.last_inspection", lang_)),
        html.Dd([fmt_time(last, with_date=True),
                 html.Span(t("enterprise.registered", lang_), className="aj-muted") if not from_visits else ""]
                if last else t("common.never", lang_), id="enterprise-last-inspection"),
        html.Dt(t("enterprise.next_due", lang_)),
        html.Dd([fmt_time(due, with_date=True) if due > 0 else "—",
                 html.Span(t("enterprise.overdue", lang_), className="aj-overdue-flag") if overdue else ""],
                id="enterprise-next-due"),
    ], className="aj-facts", id=ids.ENTERPRISE_FACTS)


def visits_table(rows: list[dict], lang_: str, registered_last: float | None = None, review: bool = False):
    """``review``: the visit's number links its remote review (/review/<id>, reviewers only)."""
    if not rows:
        if registered_last:  # the facts show this date: say where it comes from
            return html.P(t("enterprise.visits.none_since", lang_, date=fmt_time(registered_last, with_date=True)),
                          className="aj-muted")
        return html.P(t("enterprise.visits.empty", lang_), className="aj-muted")
    head = html.Thead(html.Tr([html.Th(t(k, lang_)) for k in (
        "enterprise.col.when", "enterprise.col.who", "enterprise.col.unit", "enterprise.col.duration",
        "enterprise.col.duplicate")]))
    body = [html.Tr([
        html.Td([html.A(f"#{v['id']}", href=f"/review/{v['id']}", className="aj-review-link") if review
                 else f"#{v['id']}", " ", fmt_time(v.get("start_ts"), with_date=True)]),
        html.Td(v.get("inspector_name") or v.get("inspector_id"), className="aj-data"),
        html.Td(unit_name(city(), v.get("unit_id"), lang_, registered=v.get("unit_name")), className="aj-data"),
        html.Td(_fmt_duration((v.get("end_ts") or 0) - (v.get("start_ts") or 0), lang_)),
        html.Td(t("enterprise.duplicate_of", lang_, id=v["duplicate_of"]) if v.get("duplicate_of") else "",
                className="aj-dup"),
    ], className="aj-visit-dup" if v.get("duplicate_of") else "aj-visit") for v in rows]
    return html.Table([head, html.Tbody(body)], className="aj-table", id="enterprise-visits-table")


def sensors_table(sensors: list[dict], states: dict, lang_: str):
    if not sensors:
        return html.P(t("enterprise.sensors.empty", lang_), className="aj-muted")
    head = html.Thead(html.Tr([html.Th(t(k, lang_)) for k in (
        "enterprise.col.sensor", "enterprise.col.state", "enterprise.col.lel", "enterprise.col.last")]))
    body = []
    for s in sensors:
        st = states.get(s["id"], {})
        state = st.get("state", "unknown")
        lel = st.get("lel_pct")
        body.append(html.Tr([
            html.Td([s["id"], html.Span(f" {s.get('model') or ''}", className="aj-muted")], className="aj-data"),
            html.Td(label("sensor", state, lang_), className=f"aj-sensor-{state}"),
            html.Td(t("common.lel", lang_, n=round(lel, 1)) if lel is not None else "—"),
            html.Td(fmt_time(st.get("last_message_ts"), with_date=True) if st.get("last_message_ts") else "—"),
        ]))
    return html.Table([head, html.Tbody(body)], className="aj-table")


def alerts_table(rows: list[dict], lang_: str):
    if not rows:
        return html.P(t("enterprise.alerts.empty", lang_), className="aj-muted")
    head = html.Thead(html.Tr([html.Th(t(k, lang_)) for k in (
        "enterprise.col.when", "enterprise.col.type", "dispatch.col.severity", "enterprise.col.state_alert")]))
    body = [html.Tr([
        html.Td(fmt_time(a.get("first_seen"), with_date=True)),
        html.Td(label("alert.type", a.get("type"), lang_)),
        html.Td(html.Span(label("alert.severity", a.get("severity"), lang_),
                          className=f"aj-badge aj-sev-{a.get('severity')}")),
        html.Td([label("alert.state", a.get("state"), lang_),
                 f" · {label('alert.outcome', a['outcome'], lang_)}" if a.get("outcome") else ""]),
    ]) for a in rows]
    return html.Table([head, html.Tbody(body)], className="aj-table")


def live_parts(enterprise_id: str, lang_: str):
    ctx = web()
    sensors = screen_queries.sensors_of(ctx.engine, enterprise_id)
    wanted = {s["id"] for s in sensors}
    states = {s["id"]: s for s in ctx.snapshot().sensors_json(only=wanted)} if wanted else {}
    return sensors_table(sensors, states, lang_), alerts_table(screen_queries.alerts_of(ctx.engine, enterprise_id), lang_)


def _fmt_days(seconds: float | None, lang_: str) -> str:
    if seconds is None:
        return "—"
    return t("enterprise.days", lang_, n=f"{seconds / 86400:.1f}")


# From this many enterprises sharing a rank, the share of all ranked is shown instead.
TIED_AS_SHARE = 100


def rank_text(face: dict, lang_: str) -> str:
    """The day's rank beside how many were ranked, and how many share it when others do
    ("#1 of 20,018 was every profile's rank when 17,587 scored 100)."""
    n, of = face.get("tied") or 0, face.get("ranked") or 0
    if n >= TIED_AS_SHARE and of:
        # "17,582 tied" says little; "the same score as 88 %" says this one is typical.
        pct = 100 * n / of
        tied = t("enterprise.rank_tied_share", lang_, pct=f"{pct:.0f}" if pct >= 10 else f"{pct:.1f}")
    elif n > 1:
        tied = t("enterprise.rank_tied", lang_, n=f"{n:,}")
    else:
        tied = ""
    return t("enterprise.rank", lang_, rank=face["rank"], of=f"{face.get('ranked') or 0:,}", tied=tied,
             date=face["score_date"])


def credit_face(enterprise_id: str, lang_: str, now: float):
    """(the credit face panel, the hazards panel). The credit face (信用脸谱): score and
    its 90-day trend, the hazard counts and the red-light reasons; the hazards with their
    times to close in a panel of their own (the same as ``GET /api/v1/enterprises/{id}``)."""
    from dashboard.api_hazards import store

    face = store().credit_face(enterprise_id, now)
    trend = face["score_trend"]
    chart = dcc.Graph(
        id="enterprise-score-trend", config={"displayModeBar": False, "staticPlot": True},
        style={"height": "90px"},
        figure={"data": [{"x": [p_["date"] for p_ in trend], "y": [p_["score"] for p_ in trend], "type": "scatter",
                          "mode": "lines", "line": {"color": "#4aa3ff", "width": 2}}],
                # Dates as numbers (12-05), not plotly's English month names; muted ticks and
                # faint gridlines on the dark panel.
                "layout": {"margin": {"l": 28, "r": 6, "t": 4, "b": 18}, "height": 90,
                           "xaxis": {"tickformat": "%m-%d", **CHART_AXIS},
                           "yaxis": {"range": [0, 105], "tickvals": [0, 50, 100], **CHART_AXIS},
                           "paper_bgcolor": "rgba(0,0,0,0)",
                           "plot_bgcolor": "rgba(0,0,0,0)"}}) if trend else html.Div("—")
    hz = face["hazards"]
    items = store().catalogue.items

    def category(code):  # the catalogue's name, in the page's language; an unknown code as it is
        item = items.get(code)
        return code if item is None else (item.name if lang_ == "zh-CN" else item.name_en)

    rows = [html.Tr([html.Td(t(f"hz.level.{h['level']}", lang_)), html.Td(category(h["category"])),
                     html.Td(t(f"hz.state.{h['state']}", lang_)),
                     html.Td(fmt_time(h["reported_ts"], with_date=True)),
                     html.Td(_fmt_days(h["time_to_close_s"], lang_))]) for h in hz["items"][:20]]
    reasons = face["red_light"] or []
    credit = html.Div([
        html.H2(t("enterprise.credit_face", lang_)),
        html.Div([html.Span(t("enterprise.score", lang_)), " ",
                  html.Strong("—" if face["score"] is None else f"{face['score']:.1f}", id="enterprise-score"),
                  "  ", rank_text(face, lang_) if face["rank"] else ""]),
        chart,
        html.Div(t("enterprise.hazard_counts", lang_, open=hz["open"], closed=hz["closed"], overdue=hz["overdue"]),
                 id="enterprise-hazard-counts"),
        html.Div([html.Span(t("enterprise.red_light", lang_), className="aj-overdue-flag"), " ",
                  "; ".join(t(f"redlight.{r['rule']}", lang_) for r in reasons)] if reasons else
                 t("enterprise.no_red_light", lang_), id="enterprise-red-light"),
    ], className="aj-panel", id="enterprise-credit-face")
    hazards = html.Div([
        html.H2(t("enterprise.hazards", lang_)),
        html.Table([html.Thead(html.Tr([html.Th(t("hz.level", lang_)), html.Th(t("hz.category", lang_)),
                                        html.Th(t("enterprise.state", lang_)), html.Th(t("enterprise.found", lang_)),
                                        html.Th(t("enterprise.time_to_close", lang_))])),
                    html.Tbody(rows)], className="aj-table") if rows else
        html.P(t("enterprise.hazards.empty", lang_), className="aj-muted"),
    ], className="aj-panel", id="enterprise-hazards")
    return credit, hazards


def self_inspections(enterprise_id: str, lang_: str):
    """The enterprise's own periodic self-inspections (企业定期自查), newest first: when,
    how many checklist items, how many it found wrong."""
    from dashboard.api_hazards import store

    done = store().self_inspections(enterprise_id, limit=10)
    if not done:
        body = html.P(t("enterprise.self.empty", lang_), className="aj-muted")
    else:
        body = html.Table([
            html.Thead(html.Tr([html.Th(t("enterprise.col.when", lang_)), html.Th(t("enterprise.self.items", lang_)),
                                html.Th(t("enterprise.self.problems", lang_))])),
            html.Tbody([html.Tr([html.Td(fmt_time(d["submitted_ts"], with_date=True)),
                                 html.Td(str(len(d["items"])) if d["items"] else "—"),
                                 html.Td(str(d["hazards_found"]),
                                         className="aj-overdue-flag" if d["hazards_found"] else None)])
                        for d in done])], className="aj-table")
    return html.Div([html.H2(t("enterprise.self_inspections", lang_)), body], className="aj-panel",
                    id="enterprise-self-inspections")


# The enterprise page's neighbours: within this distance, overdue or due within this many days.
NEARBY_M = 500
NEARBY_DAYS = 30
NEARBY_MAX = 8


def due_words(r: dict, lang_: str) -> str:
    """How a nearby enterprise stands (``overdue_days``: days past its due date, negative
    before it): never inspected, overdue N days, due today, or due in N days."""
    if r["overdue_days"] is None or (r["never_inspected"] and r["overdue_days"] >= 0):
        return t("enterprise.nearby.never", lang_)
    if r["overdue_days"] >= 0:
        return t("enterprise.nearby.overdue", lang_, n=f"{r['overdue_days']:.0f}")
    if -r["overdue_days"] < 1:  # not "0 天后到期"
        return t("enterprise.nearby.due_today", lang_)
    return t("enterprise.nearby.due_in", lang_, n=f"{-r['overdue_days']:.0f}")


def nearby_due(ent: dict, p, lang_: str, now: float):
    """The enterprises next door that are overdue or soon due (the inspector at this one
    can take them in on the same round), within the viewer's area; each links to its page."""
    from data import geo_queries

    ctx = web()
    scope = {"streets": p.streets, "grids": p.grids} if p.role == "officer" else {}
    rows, total = geo_queries.due_nearby(ctx.engine, ent["lat"], ent["lon"], ctx.settings.interval_days(), now,
                                         NEARBY_M, NEARBY_DAYS, NEARBY_MAX, exclude=ent["id"], **scope)
    title = html.H2(t("enterprise.nearby", lang_, m=NEARBY_M))
    if not rows:
        return html.Div([title, html.P(t("enterprise.nearby.empty", lang_, m=NEARBY_M, d=NEARBY_DAYS),
                                       className="aj-muted")], className="aj-panel", id="enterprise-nearby")
    reg = ctx.registry()

    body = html.Table(html.Tbody([
        html.Tr([html.Td(html.A(reg.short_name(r["id"]) or r["name"] or r["id"], href=f"/enterprise/{r['id']}",
                                title=r["name"] or r["id"]), className="aj-data aj-clip"),
                 html.Td(html.Span(t(f"risk.{r['risk']}", lang_), className=f"aj-risk-chip aj-risk-{r['risk']}")),
                 html.Td(due_words(r, lang_), className="aj-overdue-flag aj-nowrap" if (r["overdue_days"] or 0) >= 0 else
                         "aj-nowrap"),
                 html.Td(t("enterprise.nearby.distance", lang_, m=f"{r['distance_m']:,}"),
                         className="aj-muted aj-nowrap")])
        for r in rows]), className="aj-table")
    parts = [title, body]
    if total > len(rows):
        parts.append(html.P(t("enterprise.nearby.more", lang_, n=total - len(rows)), className="aj-muted"))
    return html.Div(parts, className="aj-panel", id="enterprise-nearby")


def build(p, lang_: str, enterprise_id: str | None = None, **_):
    ctx = web()
    ent = screen_queries.enterprise(ctx.engine, enterprise_id) if enterprise_id else None
    if not visible(p, ent):
        # An officer is told the same whether the enterprise does not exist or lies
        # outside their area: honest about the scope, and nothing about the firm.
        scoped = p is not None and p.role == "officer"
        return html.Div([header("enterprise.title", lang_, p, PATH),
                         html.Div(html.H2(t("enterprise.not_in_area" if scoped else "enterprise.not_found", lang_),
                                          id="enterprise-missing"), className="aj-forbidden")],
                        id=ids.ENTERPRISE_ROOT, className="aj-page")
    visits = screen_queries.visits_of(ctx.engine, enterprise_id)
    now = time.time()
    c = city()
    pr = preset()
    risk = ent.get("risk") or "blue"
    sensors = screen_queries.sensors_of(ctx.engine, enterprise_id)
    x, y = c.projector.lonlat([ent["lon"]] + [s["lon"] for s in sensors], [ent["lat"]] + [s["lat"] for s in sensors])
    marks = [point(float(x[0]), float(y[0]), {"r": risk, "tooltip": ""})]
    lat0, lon0 = float(y[0]), float(x[0])
    sensors_table_, alerts_table_ = live_parts(enterprise_id, lang_)
    credit, hazards = credit_face(enterprise_id, lang_, now)
    props = map_props(pr, c)
    props.pop("bounds", None)
    props.update(center=[lat0, lon0], zoom=16)
    the_map = dl.Map(
        [*base_children(pr, c, lang_, **offline_ids(ids.ENTERPRISE_MAP)),
         dl.GeoJSON(data=feature_collection(marks), pointToLayer=js("enterprisePoint")),
         dl.CircleMarker(center=[lat0, lon0], radius=14, color=RISK_HEX.get(risk, "#0a84ff"), weight=3,
                         fill=False)],
        id=ids.ENTERPRISE_MAP, style={"height": "100%"},
        **props,
    )
    notice = tiles_notice(pr, lang_, ids.ENTERPRISE_MAP, **offline_ids(ids.ENTERPRISE_MAP))
    return html.Div([
        header("enterprise.title", lang_, p, PATH),
        html.Main([
            html.Section([
                html.Div([
                    html.Div([html.H2(ent["name"], className="aj-data", id="enterprise-name"),
                              html.Span([t("risk.label", lang_), "：" if lang_ != "en" else ": ",
                                         t(f"risk.{risk}", lang_)],
                                        id=ids.ENTERPRISE_RISK, className=f"aj-risk-chip aj-risk-{risk}")],
                             className="aj-profile-head"),
                    facts(ent, lang_, now, visits),
                ], className="aj-panel"),
                credit,
                html.Div([the_map, notice], className="aj-profile-map aj-map-host"),
            ], className="aj-col"),
            html.Section([
                html.Div([html.H2(t("enterprise.sensors", lang_)), html.Div(sensors_table_, id=ids.ENTERPRISE_SENSORS)],
                         className="aj-panel"),
                html.Div([html.H2(t("enterprise.alerts", lang_)), html.Div(alerts_table_, id=ids.ENTERPRISE_ALERTS)],
                         className="aj-panel"),
                hazards,
                html.Div([html.H2(t("enterprise.visits", lang_)),
                          html.Div(visits_table(visits, lang_, ent.get("last_inspected_at"),
                                                review=p.role in REVIEW_ROLES),
                                   id=ids.ENTERPRISE_VISITS)], className="aj-panel"),
                self_inspections(enterprise_id, lang_),
                nearby_due(ent, p, lang_, now),
            ], className="aj-col"),
        ], className="aj-profile"),
        dcc.Interval(id=ids.ENTERPRISE_TICK, interval=REFRESH_MS),
        dcc.Store(id=ids.ENTERPRISE_ID, data=enterprise_id),
    ], id=ids.ENTERPRISE_ROOT, className="aj-page", lang=lang_)


layout = guarded_layout(ROLES, build)


@cb.callback(output={"sensors": Output(ids.ENTERPRISE_SENSORS, "children"),
                     "alerts": Output(ids.ENTERPRISE_ALERTS, "children")},
             inputs={"n": Input(ids.ENTERPRISE_TICK, "n_intervals")},
             state={"enterprise_id": State(ids.ENTERPRISE_ID, "data")}, prevent_initial_call=True)
def enterprise_refresh(n, enterprise_id):
    p = principal()
    ent = screen_queries.enterprise(web().engine, enterprise_id) if enterprise_id else None
    if not visible(p, ent):
        raise PreventUpdate
    sensors, alerts = live_parts(enterprise_id, lang())
    return {"sensors": sensors, "alerts": alerts}
