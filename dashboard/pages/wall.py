"""/wall — the video wall: a dark, full-screen map of the district that needs nobody at it.

Layers (bottom to top): tiles or the offline vector base, street and grid
boundaries, the H3 heat layer (activity or coverage gaps), enterprises by risk
colour (H3 bins when zoomed out, points when zoomed in), inspectors coloured by
unit with a 10-minute trail, and pulsing gas alarms.  On the right, the KPI
tiles and the live alerts; along the bottom, a ticker.

A critical gas alarm that nobody has acknowledged takes the wall over: the map
flies to it and a card names it (with a beep, if the browser allows sound) until
someone acknowledges it anywhere.  Several such alarms are shown in turn, most
urgent first, each for ``settings.wall_takeover_dwell_s``; after each round, and at
least every ``settings.wall_takeover_max_hold_s``, the wall shows the whole district
for ``settings.wall_overview_s`` (``takeover_step``).  The label in the
map's corner always names what is shown.  Otherwise, when nobody has touched the
screen for two minutes, the view cycles through the district and its streets.

Updates: a 1 s poll that answers 204 (PreventUpdate) when neither the live
version nor the alerts changed; otherwise small diffs (``layers.py``).  SQL
KPIs, trails and heat refresh on a slow 15 s poll.
"""

from __future__ import annotations

import logging
import math
import time

import dash_leaflet as dl
import numpy as np
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import ids, push
from dashboard.i18n import t
from dashboard.mapkit import (
    ENTERPRISE_PANE,
    HEAT_PANE,
    INSPECTOR_COLOUR,
    RISK_HEX,
    RISK_ORDER,
    base_children,
    heat_layer,
    heat_res_for_zoom,
    in_view,
    js,
    map_props,
    metres_per_pixel,
    tiles_notice,
    trail_features,
)
from dashboard.markup import tag
from dashboard.pages import layers
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import (
    active_alerts,
    alerts_fingerprint,
    cache,
    city,
    first_seen_ts,
    order_attr,
    fmt_time,
    guarded_layout,
    label,
    lang,
    lang_toggle,
    new_alarms_for,
    preset,
    principal,
    push_listener,
    urgency_key,
    web,
)
from data import screen_queries

log = logging.getLogger(__name__)

PATH = "/wall"
ROLES = ("wall", "dispatcher", "admin")

# The fast poll.  Alarm latency (publish -> wall DOM) is the alert engine's
# time plus on average half of this; 1 s keeps p95 near the 1 s target while a
# wall that has nothing new costs one Redis GET and one alerts query a second.
TICK_MS = 1000
# SQL KPIs (visits, overdue, coverage), trails and heat.  They move by the
# minute; 15 s keeps the wall visibly alive without loading the database.
SLOW_TICK_MS = 15_000
# The inspector layer moves at most this often, the alarms on every tick.  dash-leaflet
# redraws a GeoJSON layer whole on each change of its data (2,000 markers at city
# scale), and on every 1 s tick that kept the wall's main thread busy so that an
# alarm's DOM update waited behind it (docs/benchmarks.md §4).  An inspector walks
# about 4 m in 3 s: nothing a wall's district view can show.
INSPECTOR_LAYER_EVERY_S = 3.0
# Trail points closer than this many screen pixels to the previous one are left out.
TRAIL_STEP_PX = 2.0
# Idle cycle: each street for 20 s, after two minutes without a touch.
CYCLE_MS = 20_000
IDLE_MS = 120_000
TICKER_ITEMS = 15
# The live alerts the server sends at most; the page shows those its box holds
# (anjian.js fitList) and counts the rest.  8 left a third of the column empty when no
# major hazard shared it ("另有 6 条" above the gap).
SIDE_ITEMS = 16

cb = PageCallbacks("wall", ROLES)


def title(**_):
    return t("wall.title", lang())


# --- layout ------------------------------------------------------------------------------------


def _kpi(kpi: str, key: str, lang_: str, body=None) -> html.Div:
    return html.Div([
        html.Div(t(key, lang_), className="aj-kpi-label"),
        body if body is not None else html.Div("—", id=ids.kpi_value(kpi), className="aj-kpi-value"),
    ], id=kpi, className="aj-kpi")


def _overdue_body() -> html.Div:
    return html.Div([
        html.Span("—", id=ids.overdue_value(c), className=f"aj-overdue aj-risk-{c}", **{"data-colour": c})
        for c in RISK_ORDER
    ], id=ids.kpi_value(ids.KPI_OVERDUE), className="aj-kpi-value aj-overdue-row")


def stops_for(c, lang_: str) -> list[dict]:
    """The idle cycle: the district, then each street."""
    stops = []
    if c.district_bounds:
        stops.append({"name": t("wall.cycle.district", lang_), "bounds": c.district_bounds})
    for sid, b in c.street_bounds.items():
        zh, en = c.street_names.get(sid, (sid, sid))
        stops.append({"name": en if lang_ == "en" else zh, "bounds": b})
    return stops


def first_inspectors(c, lang_: str) -> tuple[dict, list, dict]:
    """The inspector layer as the page is served: (data, order, state).

    Drawn into the layout rather than by the first poll, so the first poll already
    sends a diff; otherwise at city scale every poll that fires before the first
    full draw arrives would send the whole layer again (2,000 inspectors, 300 KB).
    """
    ctx = web()
    snap = ctx.snapshot()
    rows = snap.inspectors_json()
    data, order, news = layers.inspectors_update(ctx, c, rows, {}, None, snap.version, time.time(), lang_)
    return data, order, news


def base_font_px(distance_m: float) -> float:
    """The wall's body text size at 1920 px wide for viewers at ``distance_m``: 18 px at
    4 m, 28 px at 6 m (a 2x2 wall of 55" panels), never under 16 px."""
    return max(16.0, 18.0 + 5.0 * (float(distance_m) - 4.0))


def build(p, lang_: str, **_):
    c = city()
    pr = preset()
    insp_data, insp_order, insp_state = first_inspectors(c, lang_)
    stops = stops_for(c, lang_)
    kiosk = p.role == "wall"
    base_vw = base_font_px(web().settings.wall_viewing_distance_m) / 19.2  # px at 1920 wide -> vw
    reg = web().registry()  # the units without the city and district the title already names
    legend_units = [html.Li([html.Span(className="aj-dot", style={"background": colour}),
                             html.Span(layers.unit_name(c, uid, lang_, reg.short), className="aj-data",
                                       title=layers.unit_name(c, uid, lang_))])
                    for uid, colour in sorted(c.unit_colour.items())]
    risk_legend = [html.Li([html.Span(className="aj-dot", style={"background": RISK_HEX[r]}),
                            t(f"risk.{r}", lang_)]) for r in RISK_ORDER]
    the_map = dl.Map(
        [*base_children(pr, c, lang_, street_id=ids.WALL_STREET_LAYER, grid_id=ids.WALL_GRID_LAYER,
                        tile_id=ids.WALL_TILES),
         dl.Pane(dl.GeoJSON(id=ids.WALL_HEAT, data=layers.EMPTY, style=js("heatStyle"), pointToLayer=js("heatPoint"),
                            hideout={"max": 1, "mode": "activity"}, interactive=False),
                 name=HEAT_PANE, style={"zIndex": 300}),
         dl.Pane(dl.GeoJSON(id=ids.WALL_ENTERPRISES, data=layers.EMPTY, pointToLayer=js("enterprisePoint"),
                            hideout={"pane": ENTERPRISE_PANE}, interactive=False),
                 name=ENTERPRISE_PANE, style={"zIndex": 350}),
         dl.GeoJSON(id=ids.WALL_TRAILS, data=layers.EMPTY, style=js("trailStyle"), interactive=False),
         dl.GeoJSON(id=ids.WALL_INSPECTORS, data=insp_data, pointToLayer=js("inspectorPoint"),
                    interactive=False),
         dl.GeoJSON(id=ids.WALL_ALARMS, data=layers.EMPTY, pointToLayer=js("alarmPoint"), interactive=False),
         dl.ScaleControl(position="bottomleft", imperial=False)],
        id=ids.WALL_MAP, zoomControl=False, attributionControl=not pr.offline, style={"height": "100%"},
        **map_props(pr, c),
    )
    return html.Div([
        html.Header([
            html.Div([html.Span(t("app.district", lang_), className="aj-brand"),
                      html.H1(t("wall.title", lang_), className="aj-title")], className="aj-head-left"),
            html.Div([html.Span(id=ids.WALL_STATUS, className="aj-status"),
                      html.Span(id=ids.CLOCK, className="aj-clock"),
                      # The kiosk has no link to press; its language is its URL's (/wall?lang=en).
                      *([] if kiosk else [lang_toggle(lang_)])], className="aj-head-right"),
        ], className="aj-wall-head"),
        html.Main([
            # The KPIs in one band across the wall, so the side column keeps its height for the
            # live alerts and the major hazards (issue 18: squeezed to 0 px under the KPIs).
            html.Div([
                _kpi(ids.KPI_ON_DUTY, "wall.kpi.on_duty", lang_),
                _kpi(ids.KPI_VISITS_TODAY, "wall.kpi.visits_today", lang_),
                _kpi(ids.KPI_DUPLICATES_TODAY, "wall.kpi.duplicates_today", lang_),
                _kpi(ids.KPI_OPEN_GAS, "wall.kpi.open_gas", lang_),
                _kpi(ids.KPI_OVERDUE, "wall.kpi.overdue", lang_, _overdue_body()),
                _kpi(ids.KPI_COVERAGE, "wall.kpi.coverage", lang_),
                _kpi(ids.KPI_PLAN_DONE, "wall.kpi.plan_done", lang_),
                _kpi(ids.KPI_DUPS_AVOIDED, "wall.kpi.dups_avoided", lang_),
            ], className="aj-kpis aj-kpi-band"),
            html.Section([
                the_map,
                html.Div(id=ids.WALL_TAKEOVER_CARD, className="aj-takeover"),
                # Shown by anjian.js when the tile server fails and the wall draws its offline base.
                tiles_notice(pr, lang_, ids.WALL_MAP, street_id=ids.WALL_STREET_LAYER, grid_id=ids.WALL_GRID_LAYER,
                             tile_id=ids.WALL_TILES, notice_id=ids.WALL_TILES_NOTICE),
                html.Div(stops[0]["name"] if stops else "", id=ids.WALL_VIEW_NAME, className="aj-view-name"),
                html.Div([
                    html.Div(t("wall.heat.label", lang_), className="aj-legend-title"),
                    # The kiosk (role wall) gets no controls: the switches stay in the page
                    # (the heat callback reads them) but hidden, and the legend says what is shown.
                    html.Div([
                        dcc.RadioItems(id=ids.WALL_HEAT_MODE, value="activity", inline=True, className="aj-radio",
                                       options=[{"label": t("wall.heat.activity", lang_), "value": "activity"},
                                                {"label": t("wall.heat.gaps", lang_), "value": "gaps"}]),
                        dcc.RadioItems(id=ids.WALL_HEAT_WINDOW, value="today", inline=True, className="aj-radio",
                                       options=[{"label": t(f"wall.heat.window.{w}", lang_), "value": w}
                                                for w in HEAT_WINDOWS]),
                    ], hidden=kiosk, className="aj-heat-switches"),
                    html.Div(f"{t('wall.heat.activity', lang_)} · {t('wall.heat.window.today', lang_)}",
                             className="aj-heat-shown", hidden=not kiosk),
                    html.Div([html.Span(t("wall.legend.low", lang_)),
                              html.Span(id=ids.WALL_HEAT_LEGEND, className="aj-heat-ramp aj-heat-activity"),
                              html.Span(t("wall.legend.high", lang_))], className="aj-heat-legend"),
                    html.Div(t("wall.legend.enterprise", lang_), className="aj-legend-title"),
                    html.Ul(risk_legend, className="aj-legend"),
                    html.Div([html.Span(className="aj-dot aj-dot-inspector"), t("wall.legend.inspector", lang_)],
                             className="aj-legend-title"),
                    # The units' colours, the key to the inspectors' dots, under their entry and
                    # one to a line, each name whole: the side column had room for 6 of 12.
                    html.Ul([*legend_units, more_item(0, lang_)], id=ids.WALL_UNIT_LEGEND,
                            className="aj-legend aj-legend-units", **fit_attrs(lang_)),
                    html.Div([html.Span(className="aj-dot aj-dot-alarm"), t("wall.legend.alarm", lang_)],
                             className="aj-legend-title"),
                ], className="aj-map-legend"),
            ], className="aj-wall-map"),
            html.Aside([
                html.H2(t("wall.alerts", lang_), className="aj-side-title"),
                html.Ul(id=ids.WALL_ALERT_LIST, className="aj-alert-list", **fit_attrs(lang_)),
                html.H2(t("wall.major_hazards", lang_), className="aj-side-title"),
                html.Ul(id=ids.WALL_MAJOR_HAZARDS, className="aj-alert-list aj-hz-list", **fit_attrs(lang_)),
                html.H2(t("wall.street_ranking", lang_), className="aj-side-title"),
                html.Ol(id=ids.WALL_STREET_RANKING, className="aj-legend aj-rank-list"),
                html.Div(id=ids.WALL_UPDATED, className="aj-updated"),
            ], className="aj-wall-side"),
        ], className="aj-wall-main"),
        html.Footer(html.Div(id=ids.WALL_TICKER, className="aj-ticker-track"), className="aj-ticker"),
        dcc.Interval(id=ids.WALL_TICK, interval=TICK_MS),
        push_listener(ids.WALL_PUSH),
        dcc.Interval(id=ids.WALL_SLOW_TICK, interval=SLOW_TICK_MS),
        dcc.Interval(id=ids.WALL_CYCLE_TICK, interval=CYCLE_MS),
        dcc.Store(id=ids.WALL_STATE, data=insp_state),
        dcc.Store(id=ids.WALL_ALERT_STATE, data=None),
        dcc.Store(id=ids.WALL_ORDER, data=insp_order),
        dcc.Store(id=ids.WALL_ENT_STATE, data=None),
        dcc.Store(id=ids.WALL_VIEW, data=None),
        dcc.Store(id=ids.WALL_TAKEOVER, data=None),
        dcc.Store(id=ids.WALL_CYCLE_STATE, data={"i": -1, "pinned": None, "idle_ms": IDLE_MS,
                                                 "overview_ms": int(web().settings.wall_overview_s * 1000)}),
        dcc.Store(id=ids.WALL_STREETS, data=stops),
        html.Div(id=ids.WALL_SOUND, style={"display": "none"}),
    ], id=ids.WALL_ROOT, className="aj-wall aj-kiosk" if kiosk else "aj-wall", lang=lang_,
        style={"--aj-wall-base": f"{base_vw:.4f}vw"})


layout = guarded_layout(ROLES, build)


# --- the fast poll -------------------------------------------------------------------------


def takeover_alarms(alarms: list[dict]) -> list[dict]:
    """The alarms that take the wall over, most urgent first (the one queue order,
    ``urgency_key``): the critical gas alarms nobody acknowledged."""
    waiting = [a for a in alarms if a.get("type") == "gas_alarm" and a.get("severity") == "critical"
               and a.get("state") == "open"]
    waiting.sort(key=urgency_key)
    return waiting


def takeover_of(alarms: list[dict]) -> dict | None:
    """The most urgent alarm of the takeover (the first it shows)."""
    waiting = takeover_alarms(alarms)
    return waiting[0] if waiting else None


# The share of its turn (wall_takeover_dwell_s) an alarm must hold the wall to count as
# shown in the round: half (10 s of the default 20 s) is time to fly to it and read its
# card twice over.  A whole turn would show the alarms cut short by newer ones again in
# full, and with a new alarm every 40 s and 16 waiting, four of them would still not have
# had a turn after 12 minutes (tests/dashboard/test_screens_order.py).
TAKEOVER_SEEN_SHARE = 0.5


def takeover_step(st: dict | None, waiting: list[str], now: float, dwell_s: float, overview_s: float,
                  hold_max_s: float) -> tuple[dict, str | None, float]:
    """The takeover's schedule, one step at ``now``: (its state, the alarm id shown or None
    for the overview, when it next changes).  ``waiting``: the ids of the critical alarms
    nobody acknowledged, most urgent first.

    * A round shows each waiting alarm once, ``dwell_s`` each, most urgent first, then the
      whole district for ``overview_s``; then the next round.
    * A new alarm is shown at once, unless the overview is on: then right after it.
    * An alarm counts as shown in the round (``shown``) once it has held the wall for
      ``TAKEOVER_SEEN_SHARE`` of its turn, not when it first appears: alarms that come in
      bursts (a leak sets off several detectors, raised over a few polls) each put the
      newest on the wall for a second, and counted then, the round skipped them and its
      card numbered the rest 1, 3, 5.  One cut shorter by a newer alarm (or by the
      overview that is due) has its turn again, in the order, after it.
    * The alarms never hold the wall longer than ``hold_max_s`` without the overview: past
      it the overview comes, and the round goes on after it with the alarms not yet shown
      (a tour saw a new alarm every 40 s restart the round: the overview never came, and
      alarms 3 to 43 were never shown).
    * An alarm acknowledged while shown gives way to the next at once.
    """
    st = dict(st or {})
    if not waiting:
        return {}, None, math.inf
    known = set(st.get("known") or [])
    new = [i for i in waiting if i not in known]
    shown = [i for i in (st.get("shown") or []) if i in waiting]
    st["known"] = list(waiting)

    cur = st.get("cur")
    if (st.get("mode") == "alarm" and cur in waiting and cur not in shown
            and now - st.get("cur_at", now) >= TAKEOVER_SEEN_SHARE * dwell_s):
        shown.append(cur)  # long enough on the wall: shown in this round

    def show(i: str) -> tuple[dict, str, float]:
        if st.get("mode") != "alarm":
            st["hold_at"] = now
        st.update(mode="alarm", cur=i, cur_at=now, shown=shown)
        return st, i, now + dwell_s

    def overview(round_done: bool) -> tuple[dict, None, float]:
        st.update(mode="overview", cur=None, ov_at=now, shown=[] if round_done else shown)
        return st, None, now + overview_s

    if st.get("mode") == "overview":
        if now - st.get("ov_at", now) < overview_s:
            return st, None, st["ov_at"] + overview_s
        left = [i for i in waiting if i not in shown]
        return show(left[0] if left else waiting[0])
    held_too_long = (st.get("mode") == "alarm" and overview_s > 0
                     and now - st.get("hold_at", now) >= hold_max_s)
    left = [i for i in waiting if i not in shown]
    if held_too_long:
        return overview(not left)
    if new:
        return show(new[0])
    if st.get("mode") == "alarm" and cur in waiting and now - st.get("cur_at", now) < dwell_s:
        return st, cur, min(st["cur_at"] + dwell_s, st.get("hold_at", now) + hold_max_s)
    if st.get("mode") != "alarm":
        return show(waiting[0])
    if left:
        return show(left[0])
    if overview_s <= 0:  # no overview: round after round
        shown = []
        return show(waiting[0])
    return overview(True)


def takeover_card(a: dict | None, others: int, reg, c, lang_: str, position: tuple[int, int] | None = None):
    if a is None:
        return [], "aj-takeover"
    lel = a.get("peak_lel")
    body = [
        html.Div(t("wall.takeover.title", lang_), className="aj-takeover-title"),
        html.Div(layers.alert_subject(a, reg, c, lang_), className="aj-takeover-name aj-data"),
        html.Div(layers.area_name(a, c, lang_), className="aj-takeover-area aj-data"),
        html.Div([
            html.Span(t("alert.peak", lang_, n=round(float(lel))) if lel is not None else "",
                      className="aj-takeover-lel"),
            html.Span(t("wall.takeover.since", lang_, time=fmt_time(first_seen_ts(a)))),
        ], className="aj-takeover-facts"),
        html.Div([t("wall.takeover.waiting", lang_),
                  f" · {t('alert.escalated', lang_, n=a['escalation_level'])}" if a.get("escalation_level") else ""],
                 className="aj-takeover-wait"),
    ]
    if position and position[1] > 1:
        body.append(html.Div(t("wall.takeover.position", lang_, i=position[0], n=position[1]),
                             className="aj-takeover-more"))
    elif others:
        body.append(html.Div(t("common.more", lang_, n=others), className="aj-takeover-more"))
    return body, "aj-takeover aj-show"


def ticker(alarms: list[dict], reg, c, lang_: str):
    if not alarms:
        return [html.Span(t("wall.ticker.empty", lang_), className="aj-ticker-item aj-ticker-calm")]
    items = [html.Span(layers.alert_line(a, reg, c, lang_), className=f"aj-ticker-item aj-sev-{a.get('severity')}")
             for a in sorted(alarms, key=urgency_key)[:TICKER_ITEMS]]  # the one order, as every list
    # Twice, so the CSS marquee wraps around without a gap.
    return items + [html.Span(i.children, className=i.className, **{"aria-hidden": "true"}) for i in items]


def side_list(alarms: list[dict], reg, c, lang_: str):
    if not alarms:
        return [html.Li(t("common.none", lang_), className="aj-alert-none")]
    out = [html.Li([html.Span(text, className=cls) for text, cls in side_parts(a, reg, c, lang_)],
                   className="aj-alert-item", **{"data-alert-id": str(a.get("id")), "data-order": order_attr(a)})
           for a in alarms[:SIDE_ITEMS]]
    out.append(more_item(len(alarms) - SIDE_ITEMS, lang_))
    return out


def side_parts(a: dict, reg, c, lang_: str) -> list[tuple[str, str]]:
    """(text, class) of each part of an alert's row in the wall's list."""
    sev, state = a.get("severity"), a.get("state")
    return [(label("alert.severity", sev, lang_), f"aj-badge aj-sev-{sev}"),
            (label("alert.type", a.get("type"), lang_), "aj-alert-type"),
            (layers.alert_subject(a, reg, c, lang_), "aj-alert-subject aj-data"),
            (label("alert.state", state, lang_), f"aj-state aj-state-{state}")]


def new_rows(alerts: list[dict]) -> list[dict]:
    """The list rows of new alarms an alert event carries (``dashboard.push``): the page
    puts each in at once where the one order puts it (``order``: its ``data-order``),
    until the tick's list replaces them."""
    lang_ = lang()
    seen = new_alarms_for(alerts, ROLES)
    if not seen:
        return []
    reg, c = web().registry(), city()
    return [{"id": a["id"], "order": order_attr(a),
             "html": str(tag("li", *[tag("span", text, class_=cls) for text, cls in side_parts(a, reg, c, lang_)],
                             class_="aj-alert-item aj-provisional", data_alert_id=str(a["id"]),
                             data_order=order_attr(a)))}
            for a in seen]


push.register_preview("wall", new_rows)


def more_item(n: int, lang_: str) -> html.Li:
    """The last row of a list the wall fits to its box (``data-fit``, assets/anjian.js:
    fitList): how many rows are not shown, ``n`` left out here plus those the page hides
    because they do not fit. Its text is an attribute (drawn by CSS), so the page's script
    can rewrite it without touching what React renders."""
    n = max(int(n), 0)
    return html.Li(className="aj-alert-more" + ("" if n else " aj-fit-none"),
                   **{"data-n": str(n), "data-label": t("common.more", lang_, n=n) if n else ""})


def fit_attrs(lang_: str) -> dict:
    """A list the page cuts at a whole row, with the text of its "more" row."""
    return {"data-fit": t("common.more", lang_, n="{n}")}


INSPECTOR_OUTPUTS = {
    "inspectors": Output(ids.WALL_INSPECTORS, "data"),
    "order": Output(ids.WALL_ORDER, "data"),
    "on_duty": Output(ids.kpi_value(ids.KPI_ON_DUTY), "children"),
    "state": Output(ids.WALL_STATE, "data"),
}


@cb.callback(output=INSPECTOR_OUTPUTS,
             inputs={"n": Input(ids.WALL_TICK, "n_intervals")},
             state={"state": State(ids.WALL_STATE, "data"), "order": State(ids.WALL_ORDER, "data"),
                    "zoom": State(ids.WALL_MAP, "zoom"), "bounds": State(ids.WALL_MAP, "bounds")})
def wall_inspectors(n, state, order, zoom=None, bounds=None):
    """The inspectors and their count, on the 1 s poll: at most every
    INSPECTOR_LAYER_EVERY_S (at once when the view left what was drawn), nothing (204)
    when nothing moved.

    A callback of its own, apart from the alerts': Dash drops the answer of a callback
    still running when the same callback is called again, and the alert events pushed
    to the page call the alerts' callback at once.  When the two were one callback, a
    city whose alert events came every second or so lost nearly every poll's inspectors
    to the events (a tour's wall showed 在岗执法人员 "—" for 12-30 s, its inspectors
    standing still)."""
    ctx = web()
    state = dict(state or {})
    now = time.time()
    version = ctx.live.version()
    since = now - (state.get("t") or 0)
    drawn = order is not None and state.get("on_duty") is not None
    # The live version is bumped by every fix and sensor state: unchanged, nothing moved,
    # unless the rolling refresh or the staleness check is due.
    if drawn and not layers.view_left(state, zoom, bounds) and (
            since < INSPECTOR_LAYER_EVERY_S
            or (version == state.get("v") and not layers.roll_due(state, now) and since < layers.STALE_S / 4)):
        raise PreventUpdate
    rows = ctx.snapshot().inspectors_json()
    out = dict.fromkeys(INSPECTOR_OUTPUTS, no_update)
    out["inspectors"], out["order"], news = layers.inspectors_update(ctx, city(), rows, state, order, version, now,
                                                                     lang(), view=(zoom, bounds))
    on_duty = sum(1 for d in rows if d.get("status") != "offline")
    if on_duty != state.get("on_duty"):
        out["on_duty"] = str(on_duty)
    state.update(news)
    state["on_duty"] = on_duty
    out["state"] = state
    return out


ALERT_OUTPUTS = {
    "alarms": Output(ids.WALL_ALARMS, "data"),
    "open_gas": Output(ids.kpi_value(ids.KPI_OPEN_GAS), "children"),
    "ticker": Output(ids.WALL_TICKER, "children"),
    "takeover": Output(ids.WALL_TAKEOVER, "data"),
    "card": Output(ids.WALL_TAKEOVER_CARD, "children"),
    "card_class": Output(ids.WALL_TAKEOVER_CARD, "className"),
    "side": Output(ids.WALL_ALERT_LIST, "children"),
    "state": Output(ids.WALL_ALERT_STATE, "data"),
}


@cb.callback(output=ALERT_OUTPUTS,
             inputs={"n": Input(ids.WALL_TICK, "n_intervals"), "push": Input(ids.WALL_PUSH, "data")},
             state={"state": State(ids.WALL_ALERT_STATE, "data")})
def wall_alerts(n, state, push=None):
    """The alarms, their KPI, list and ticker, and the takeover: on the 1 s poll, and at
    once on an alert event pushed to the page; nothing (204) when nothing changed, else
    only the parts that did."""
    ctx = web()
    state = dict(state or {})
    now = time.time()
    version = ctx.live.version()
    # Cheap exit: the live version is bumped by every alert change (AlertStore.notify),
    # so an unchanged version means nothing to send, unless the takeover's next step is due.
    if (version == state.get("v") and "alarm_fp" in state
            and (state.get("take_next") is None or now < state["take_next"])):
        raise PreventUpdate
    alarms = active_alerts(principal())
    snap = ctx.snapshot()
    c = city()
    lang_ = lang()
    out = dict.fromkeys(ALERT_OUTPUTS, no_update)
    gas = [a for a in alarms if a.get("type") == "gas_alarm"]
    alarm_fp = alerts_fingerprint(alarms) + f":{lang_}"
    # The takeover: each critical gas alarm nobody acknowledged in turn, most urgent
    # first, then the overview, on the schedule of the settings.
    waiting = takeover_alarms(alarms)
    take_ids = ",".join(str(a.get("id")) for a in waiting)
    settings = ctx.settings
    ids_waiting = [str(a.get("id")) for a in waiting]
    take_state, shown_id, take_next = takeover_step(
        state.get("take"), ids_waiting, now, settings.wall_takeover_dwell_s, settings.wall_overview_s,
        settings.wall_takeover_max_hold_s)
    i = ids_waiting.index(shown_id) if shown_id is not None else None
    phase = f"{take_ids}|{i}"
    if alarm_fp != state.get("alarm_fp"):
        reg = snap.reg
        out["alarms"] = layers.alarm_features(gas, reg, c)
        out["open_gas"] = str(len(gas))
        out["ticker"] = ticker(alarms, reg, c, lang_)
        out["side"] = side_list(alarms, reg, c, lang_)
    if alarm_fp != state.get("alarm_fp") or phase != state.get("take_phase"):
        reg = snap.reg
        take = waiting[i] if i is not None else None
        out["card"], out["card_class"] = takeover_card(take, 0, reg, c, lang_,
                                                       (i + 1, len(waiting)) if take else None)
        pos = layers.alarm_position(take, reg, c) if take else None
        if take and pos:
            lat, lon = c.projector.latlng(*pos)
            name = t("wall.takeover.label", lang_, i=i + 1, n=len(waiting),
                     name=layers.alert_subject(take, reg, c, lang_))
            out["takeover"] = {"id": str(take.get("id")), "lat": lat, "lon": lon, "label": name}
        else:
            out["takeover"] = None
    state.update({"v": version, "alarm_fp": alarm_fp, "take_ids": take_ids, "take": take_state,
                  "take_phase": phase, "take_next": take_next if math.isfinite(take_next) else None})
    out["state"] = state
    return out


# --- the slow poll -----------------------------------------------------------------------------

SLOW_OUTPUTS = {
    "visits": Output(ids.kpi_value(ids.KPI_VISITS_TODAY), "children"),
    "duplicates": Output(ids.kpi_value(ids.KPI_DUPLICATES_TODAY), "children"),
    "coverage": Output(ids.kpi_value(ids.KPI_COVERAGE), "children"),
    "plan_done": Output(ids.kpi_value(ids.KPI_PLAN_DONE), "children"),
    "dups_avoided": Output(ids.kpi_value(ids.KPI_DUPS_AVOIDED), "children"),
    **{f"overdue_{c}": Output(ids.overdue_value(c), "children") for c in RISK_ORDER},
    "status": Output(ids.WALL_STATUS, "children"),
    "status_class": Output(ids.WALL_STATUS, "className"),
    "updated": Output(ids.WALL_UPDATED, "children"),
}


# KPIs and heat are the same for every wall: computed once per process for this long.
KPI_TTL_S = 10.0
# Plan against actual moves with visits (minutes apart) and reads the whole week.
PLAN_KPI_TTL_S = 60.0
HEAT_TTL_S = 30.0
TRAILS_TTL_S = 10.0
HEAT_WINDOWS = ("1h", "today", "7d")


def kpis(ctx) -> dict:
    """The wall's SQL numbers, the same function (and so the same numbers) as ``GET /api/v1/kpis``."""
    from data import geo_queries

    return cache().get("kpis", KPI_TTL_S, lambda: geo_queries.kpis(
        ctx.engine, ctx.redis, ctx.settings.redis_prefix, ctx.settings.interval_days(), time.time()))


def plan_kpis(ctx) -> dict:
    """This week's plan against actual for every unit: the ``kpis`` and ``completion_pct``
    of ``GET /api/v1/plans/actual`` (the same function, so the same numbers)."""
    from dashboard.api_plans import store as plans_store
    from data.plans_store import week_now

    st = plans_store()  # the cache computes outside the request: no flask globals in compute

    def compute():
        now = time.time()
        out = st.actual(week_now(now), None, now)
        return {**out["kpis"], "completion_pct": out["completion_pct"]}

    return cache().get("plan_kpis", PLAN_KPI_TTL_S, compute)


@cb.callback(output=SLOW_OUTPUTS, inputs={"n": Input(ids.WALL_SLOW_TICK, "n_intervals")})
def wall_slow_tick(n):
    ctx = web()
    lang_ = lang()
    now = time.time()
    k = kpis(ctx)
    pk = plan_kpis(ctx)
    health = ctx.health()
    live = health.get("status") == "ok"
    out = {
        "visits": str(k["visits_today"]), "duplicates": str(k["duplicates_today"]),
        "coverage": f"{k['coverage_pct']:.1f}%",
        "plan_done": f"{pk['completion_pct']:.1f}%" if pk["items"] else "—",
        "dups_avoided": str(pk["conflicts_resolved"]),
        **{f"overdue_{c_}": str(k["overdue"].get(c_, 0)) for c_ in RISK_ORDER},
        "status": t("common.live", lang_) if live else t("common.stale", lang_),
        "status_class": "aj-status aj-live" if live else "aj-status aj-degraded",
        "updated": t("common.updated", lang_, time=fmt_time(now)),
    }
    return out


@cb.callback(output={"major": Output(ids.WALL_MAJOR_HAZARDS, "children"),
                     "ranking": Output(ids.WALL_STREET_RANKING, "children")},
             inputs={"n": Input(ids.WALL_SLOW_TICK, "n_intervals")})
def wall_hazards(n):
    """Open major hazards (they stay until closed) and the street ranking of the day."""
    from dashboard.pages.hazard_panels import major_hazard_items, street_ranking_items

    lang_ = lang()
    major, left_out = major_hazard_items(lang_, with_left_out=True, compact=True)
    if left_out or not (major and "aj-alert-none" in (major[0].className or "")):
        major = [*major, more_item(left_out, lang_)]
    return {"major": major, "ranking": street_ranking_items(lang_)}


@cb.callback(Output(ids.WALL_TRAILS, "data"), Input(ids.WALL_SLOW_TICK, "n_intervals"),
             State(ids.WALL_MAP, "bounds"), State(ids.WALL_MAP, "zoom"))
def wall_trails(n, bounds=None, zoom=None):
    """Each inspector on duty in (and around) the view: a line through the last ten
    minutes of fixes, in the unit's colour, without the detail the zoom cannot show
    (points under TRAIL_STEP_PX apart)."""
    ctx = web()
    c = city()
    rows = ctx.snapshot().inspectors_json()
    colours = {d["id"]: c.unit_colour.get(d.get("unit"), INSPECTOR_COLOUR) for d in rows}
    online = {d["id"] for d in rows if d.get("status") != "offline"}
    trails = cache().get("trails", TRAILS_TTL_S, lambda: screen_queries.trail_points(ctx.engine, time.time()))
    shown = {iid: pts for iid, pts in trails.items() if iid in online and pts}
    if bounds and shown:
        x, y = c.projector.lonlat([p[-1][0] for p in shown.values()], [p[-1][1] for p in shown.values()])
        inside = in_view(x, y, bounds)
        shown = {iid: pts for (iid, pts), ok in zip(shown.items(), inside) if ok}
    step = TRAIL_STEP_PX * metres_per_pixel(zoom) if zoom is not None else 0.0
    return trail_features(shown, colours, c.projector, min_step_m=step)


# --- heat and enterprises ------------------------------------------------------------------------


def heat_rows(ctx, mode: str, res: int, window: str):
    """Activity (pings in the window) or coverage gaps (risk weight of overdue enterprises) per cell,
    from data.geo_queries (the functions behind ``/api/v1/heatmap`` and ``/api/v1/coverage/gaps``).
    """
    from data import geo_queries

    if mode == "gaps":
        return geo_queries.gap_cells(ctx.engine, ctx.settings.interval_days(), time.time(), res)
    return geo_queries.heat(ctx.engine, ctx.redis, ctx.settings.redis_prefix, res=res, kind="pings",
                            window=window)


@cb.callback(output={"data": Output(ids.WALL_HEAT, "data"), "hideout": Output(ids.WALL_HEAT, "hideout")},
             inputs={"n": Input(ids.WALL_SLOW_TICK, "n_intervals"), "mode": Input(ids.WALL_HEAT_MODE, "value"),
                     "window": Input(ids.WALL_HEAT_WINDOW, "value"), "view": Input(ids.WALL_VIEW, "data")},
             state={"drawn": State(ids.WALL_HEAT, "hideout")})
def wall_heat_view(n, mode, window, view, drawn):
    view = view or {}
    return wall_heat(n, mode, window, view.get("zoom"), view.get("bounds"), drawn)


def wall_heat(n, mode, window, zoom, bounds=None, drawn=None):
    """The H3 heat layer: activity or coverage gaps, at the resolution that suits the zoom,
    for the cells in (and around) the view.

    The layer is built once per refresh of its rows and shared by every wall of the
    process; each wall gets the cells of its view, and nothing (204) when it already
    draws exactly those (same fingerprint)."""
    ctx = web()
    res = heat_res_for_zoom(zoom)
    mode = "gaps" if mode == "gaps" else "activity"
    window = window if window in HEAT_WINDOWS else "today"
    projector = city().projector

    def build():
        data, vmax = heat_layer(heat_rows(ctx, mode, res, window), projector)
        # Where each cell is (its first vertex), to cut the view out of the layer.
        at = np.array([_first_vertex(f) for f in data["features"]], dtype=float).reshape(-1, 2)
        return data, vmax, at, layers.fingerprint([mode, res, window, data])

    try:
        data, vmax, at, fp = cache().get(("heat", mode, res, window), HEAT_TTL_S, build)
    except Exception:  # noqa: BLE001 - a failing heat source must not take the wall down
        log.exception("heat layer (%s, res %s) failed", mode, res)
        return {"data": layers.EMPTY, "hideout": {"max": 1, "mode": mode, "fp": None}}
    if bounds and len(at):
        keep = np.flatnonzero(in_view(at[:, 0], at[:, 1], snapped(bounds), pad=0.0))
        if len(keep) < len(at):
            data = {**data, "features": [data["features"][i] for i in keep]}
            fp = layers.fingerprint([fp, keep.tobytes().hex()])
    if (drawn or {}).get("fp") == fp:
        raise PreventUpdate
    return {"data": data, "hideout": {"max": vmax or 1, "mode": mode, "fp": fp}}


# The view a heat layer is cut for: padded by a quarter, then widened to a grid of
# this many degrees (~4 km), so the frames of a flight, or a small pan, ask for the
# same box and get nothing new (204) instead of a slightly different layer each.
HEAT_VIEW_STEP_DEG = 0.04


def snapped(bounds) -> list[list[float]] | None:
    try:
        (s, w), (n, e) = bounds
    except (TypeError, ValueError):
        return None
    dy, dx = (n - s) * 0.25, (e - w) * 0.25
    q = HEAT_VIEW_STEP_DEG
    return [[math.floor((s - dy) / q) * q, math.floor((w - dx) / q) * q],
            [math.ceil((n + dy) / q) * q, math.ceil((e + dx) / q) * q]]


def _first_vertex(feature: dict) -> tuple[float, float]:
    g = feature["geometry"]
    return tuple(g["coordinates"][0][0]) if g["type"] == "Polygon" else tuple(g["coordinates"])


@cb.callback(output={"data": Output(ids.WALL_ENTERPRISES, "data"), "last": Output(ids.WALL_ENT_STATE, "data")},
             inputs={"view": Input(ids.WALL_VIEW, "data")}, state={"last": State(ids.WALL_ENT_STATE, "data")})
def wall_enterprises_view(view, last):
    view = view or {}
    return wall_enterprises(bins_zoom(view.get("zoom"), view.get("scale")), view.get("bounds"), last)


def bins_zoom(zoom, scale):
    """The zoom the enterprise layer is drawn for: the map's, less the screen's scale.
    A 4K wall (scale 2, its text and bins twice as large) fits the district one zoom level
    deeper than a 1080p wall, and drew 277 res-8 bins where 1080p drew about 60 res-7
    ones: the bins covered the heat layer (issue 18's fifth item, seen again on a later
    tour of the demo city).  With the scale taken off, 4K draws the 1080p bins, each twice as large."""
    if zoom is None or not scale or scale <= 1:
        return zoom
    return zoom - math.log2(min(float(scale), 4.0))


def wall_enterprises(zoom, bounds, last):
    data, new_last = layers.enterprises_update(city(), zoom, bounds, last, lang(), tooltips=False)
    return {"data": data, "last": new_last}


# --- in the browser: idle cycle, takeover flight, sound, clock --------------------------------------

cb.clientside("wallViewport",
              Output(ids.WALL_MAP, "viewport"), Output(ids.WALL_VIEW_NAME, "children"),
              Output(ids.WALL_CYCLE_STATE, "data"),
              Input(ids.WALL_CYCLE_TICK, "n_intervals"), Input(ids.WALL_TAKEOVER, "data"),
              State(ids.WALL_STREETS, "data"), State(ids.WALL_CYCLE_STATE, "data"))
cb.clientside("settleView", Output(ids.WALL_VIEW, "data"), Input(ids.WALL_MAP, "zoom"),
              Input(ids.WALL_MAP, "bounds"))
cb.clientside("alarmSound", Output(ids.WALL_SOUND, "children"), Input(ids.WALL_TAKEOVER, "data"),
              prevent_initial_call=True)
cb.clientside("clock", Output(ids.CLOCK, "children"), Input(ids.WALL_TICK, "n_intervals"))
cb.clientside("heatLegend", Output(ids.WALL_HEAT_LEGEND, "className"), Input(ids.WALL_HEAT_MODE, "value"))
