"""/replay — one inspector's day, from the pings in SQL.

Pick an inspector and a day: the track is drawn, the visits of that day are
marked (orange ring: a duplicate of another unit's visit), and a marker plays
the day back with a time slider, a speed control (1x to 300x) and follow mode.
Playback runs in the browser (``dash_clientside.anjian.replayTick`` and
``replayPosition``): the server sends the track once, then nothing while it plays.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import dash_leaflet as dl
import numpy as np
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.i18n import t
from dashboard.mapkit import (
    INSPECTOR_COLOUR,
    base_children,
    esc,
    feature_collection,
    js,
    map_props,
    offline_ids,
    point,
    tiles_notice,
)
from dashboard.pages import layers
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import city, fmt_time, guarded_layout, header, lang, preset, web
from data import screen_queries
from geo.china import CHINA_TZ
from geo.coords import haversine_m

PATH = "/replay"
ROLES = ("dispatcher", "admin")
# A day at a fix every 5 s is ~17,000 points; the browser plays 5,000 as
# smoothly and the line looks the same at street zoom.
TRACK_MAX_POINTS = 5000
SPEEDS = (1, 10, 60, 300)
TIMER_MS = 250  # must match replayTick's step (0.25 s of wall time per tick)

cb = PageCallbacks("replay", ROLES)


def title(**_):
    return t("replay.title", lang())


def day_start_of(day: str | None) -> float:
    """Local (Asia/Shanghai) midnight of a YYYY-MM-DD day; today when not given."""
    if day:
        try:
            d = date.fromisoformat(str(day)[:10])
        except ValueError:
            d = datetime.now(CHINA_TZ).date()
    else:
        d = datetime.now(CHINA_TZ).date()
    return datetime(d.year, d.month, d.day, tzinfo=CHINA_TZ).timestamp()


def build(p, lang_: str, inspector=None, day=None, **_):
    c = city()
    pr = preset()
    insp = screen_queries.inspectors(web().engine)
    today = datetime.now(CHINA_TZ).date().isoformat()
    the_map = dl.Map(
        [*base_children(pr, c, lang_, **offline_ids(ids.REPLAY_MAP)),
         dl.Polyline(id=ids.REPLAY_LINE, positions=[], color=INSPECTOR_COLOUR, weight=4, opacity=0.8),
         dl.GeoJSON(id=ids.REPLAY_VISITS, data=layers.EMPTY, pointToLayer=js("visitPoint")),
         dl.CircleMarker(id=ids.REPLAY_MARKER, center=[0, 0], radius=9, color="#06101f", weight=2,
                         fillColor="#f4f8ff", fillOpacity=1)],
        id=ids.REPLAY_MAP, style={"height": "100%"}, **map_props(pr, c),
    )
    notice = tiles_notice(pr, lang_, ids.REPLAY_MAP, **offline_ids(ids.REPLAY_MAP))
    return html.Div([
        header("replay.title", lang_, p, PATH),
        html.Main([
            html.Section([
                html.Div([
                    html.Label(t("replay.inspector", lang_), htmlFor=ids.REPLAY_INSPECTOR),
                    dcc.Dropdown(id=ids.REPLAY_INSPECTOR, value=inspector, clearable=False,
                                 placeholder=t("replay.choose", lang_),
                                 options=[{"label": f"{i['name']} · "
                                                    f"{layers.unit_name(c, i['unit_id'], lang_, registered=i['unit_name'])}",
                                           "value": i["id"]} for i in insp]),
                    html.Label(t("replay.day", lang_), htmlFor=ids.REPLAY_DAY),
                    dcc.DatePickerSingle(id=ids.REPLAY_DAY, date=day or today, display_format="YYYY-MM-DD",
                                         first_day_of_week=1),
                ], className="aj-panel aj-replay-controls"),
                html.Div([
                    html.Div("--:--:--", id=ids.REPLAY_CLOCK, className="aj-replay-clock"),
                    dcc.Slider(id=ids.REPLAY_SLIDER, min=0, max=1, value=0, step=1, marks=None,
                               tooltip={"always_visible": False}, updatemode="drag"),
                    html.Div([
                        html.Button(t("replay.play", lang_), id=ids.REPLAY_PLAY, n_clicks=0,
                                    className="aj-btn aj-btn-primary"),
                        dcc.Checklist(id=ids.REPLAY_FOLLOW, options=[{"label": t("replay.follow", lang_),
                                                                     "value": "follow"}],
                                      value=["follow"], inline=True),
                    ]),
                    html.Label(t("replay.speed", lang_)),
                    dcc.RadioItems(id=ids.REPLAY_SPEED, value=60, inline=True, className="aj-radio",
                                   options=[{"label": f"{s}×", "value": s} for s in SPEEDS]),
                    html.P(id=ids.REPLAY_SUMMARY, className="aj-muted"),
                ], className="aj-panel aj-replay-controls"),
            ], className="aj-col"),
            html.Section([the_map, notice], className="aj-replay-map aj-map-host"),
        ], className="aj-replay"),
        dcc.Interval(id=ids.REPLAY_TIMER, interval=TIMER_MS, disabled=True),
        dcc.Store(id=ids.REPLAY_TRACK, data=None),
        dcc.Store(id=ids.REPLAY_PLAYING, data=False),
    ], id=ids.REPLAY_ROOT, className="aj-page aj-replay-page", lang=lang_)


layout = guarded_layout(ROLES, build)


def thin(rows: list[tuple], max_points: int = TRACK_MAX_POINTS) -> list[tuple]:
    if len(rows) <= max_points:
        return rows
    keep = np.linspace(0, len(rows) - 1, max_points).round().astype(int)
    return [rows[i] for i in np.unique(keep)]


def track_km(rows: list[tuple]) -> float:
    if len(rows) < 2:
        return 0.0
    arr = np.asarray([(r[1], r[2]) for r in rows], dtype=float)
    d = haversine_m(arr[:-1, 1], arr[:-1, 0], arr[1:, 1], arr[1:, 0])
    return float(np.sum(d)) / 1000.0


LOAD_OUTPUTS = {
    "track": Output(ids.REPLAY_TRACK, "data"),
    "line": Output(ids.REPLAY_LINE, "positions"),
    "visits": Output(ids.REPLAY_VISITS, "data"),
    "max": Output(ids.REPLAY_SLIDER, "max"),
    "value": Output(ids.REPLAY_SLIDER, "value"),
    "summary": Output(ids.REPLAY_SUMMARY, "children"),
    "view": Output(ids.REPLAY_MAP, "viewport"),
}


@cb.callback(output=LOAD_OUTPUTS, inputs={"inspector": Input(ids.REPLAY_INSPECTOR, "value"),
                                          "day": Input(ids.REPLAY_DAY, "date")})
def replay_load(inspector, day):
    """The day's track (display datum), its visits, and the slider's range in seconds."""
    lang_ = lang()
    if not inspector:
        return {**dict.fromkeys(LOAD_OUTPUTS, no_update), "summary": t("replay.choose", lang_)}
    start = day_start_of(day)
    engine = web().engine
    rows = screen_queries.pings_of(engine, inspector, start, start + 86400.0)
    visits = screen_queries.visits_by(engine, inspector, start, start + 86400.0)
    c = city()
    if not rows:
        return {"track": None, "line": [], "visits": layers.EMPTY, "max": 1, "value": 0,
                "summary": t("replay.empty", lang_), "view": no_update}
    km = track_km(rows)
    rows = thin(rows)
    ts = [r[0] for r in rows]
    x, y = c.projector.lonlat([r[2] for r in rows], [r[1] for r in rows])
    lat, lon = y.tolist(), x.tolist()
    feats = []
    for v in visits:
        vx, vy = c.projector.lonlat([v["lon"]], [v["lat"]])
        tip = f"{esc(v.get('enterprise_name'))}<br>{fmt_time(v['start_ts'])}–{fmt_time(v['end_ts'])}"
        feats.append(point(float(vx[0]), float(vy[0]), {"r": v.get("risk"), "dup": bool(v.get("duplicate_of")),
                                                        "tooltip": tip}))
    pad = 0.002
    view = {"bounds": [[min(lat) - pad, min(lon) - pad], [max(lat) + pad, max(lon) + pad]],
            "transition": "fitBounds", "options": {"maxZoom": 17, "padding": [30, 30]}}
    return {
        "track": {"t": ts, "lat": lat, "lon": lon},
        "line": [[a, b] for a, b in zip(lat, lon)],
        "visits": feature_collection(feats),
        "max": max(1, math.ceil(ts[-1] - ts[0])),
        "value": 0,
        "summary": t("replay.summary", lang_, n=len(ts), v=len(visits), km=round(km, 1)),
        "view": view,
    }


@cb.callback(output={"playing": Output(ids.REPLAY_PLAYING, "data"), "label": Output(ids.REPLAY_PLAY, "children"),
                     "timer_off": Output(ids.REPLAY_TIMER, "disabled")},
             inputs={"n": Input(ids.REPLAY_PLAY, "n_clicks")}, state={"playing": State(ids.REPLAY_PLAYING, "data")},
             prevent_initial_call=True)
def replay_toggle(n, playing):
    if not n:
        raise PreventUpdate
    now_playing = not playing
    return {"playing": now_playing, "label": t("replay.pause" if now_playing else "replay.play", lang()),
            "timer_off": not now_playing}


cb.clientside("replayTick", Output(ids.REPLAY_SLIDER, "value", allow_duplicate=True),
              Input(ids.REPLAY_TIMER, "n_intervals"), State(ids.REPLAY_PLAYING, "data"),
              State(ids.REPLAY_SPEED, "value"), State(ids.REPLAY_SLIDER, "value"), State(ids.REPLAY_TRACK, "data"),
              prevent_initial_call=True)
cb.clientside("replayPosition", Output(ids.REPLAY_MARKER, "center"), Output(ids.REPLAY_MAP, "viewport",
                                                                            allow_duplicate=True),
              Output(ids.REPLAY_CLOCK, "children"),
              Input(ids.REPLAY_SLIDER, "value"), State(ids.REPLAY_FOLLOW, "value"), State(ids.REPLAY_TRACK, "data"),
              prevent_initial_call=True)
