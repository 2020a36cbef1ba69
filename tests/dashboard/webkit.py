"""Helpers for dashboard tests: a web stack on the test services, logins, callback calls.

``build_web`` wires what ``app.demo_web`` wires (WebContext, create_server,
create_dash) on the test Redis and a given engine.  ``login`` logs a Flask test
client in through the real /login form.  ``call_callback`` POSTs to
/_dash-update-component the way Dash's renderer does, including the CSRF header.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager

from dashboard.auth_views import CSRF_COOKIE, CSRF_HEADER
from dashboard.context import WebContext
from dashboard.pages.screens import create_dash
from dashboard.server import create_server
from data.auth import create_user

PASSWORD = "correct horse battery staple"
TEST_MQTT_URL = "mqtt://127.0.0.1:1883"


def build_web(settings, engine, redis_client, alerts=None):
    ctx = WebContext(settings, engine, redis_client, TEST_MQTT_URL)
    if alerts is not None:
        ctx.alerts = alerts
    server = create_server(ctx)
    server.config["TESTING"] = True
    app = create_dash(server, ctx)
    return ctx, server, app


def make_users(engine) -> dict:
    """One user per role; the officer owns grid G1 of tests/citykit (or the first demo grid)."""
    return {
        "wall": create_user(engine, "wall1", PASSWORD, "wall"),
        "dispatcher": create_user(engine, "disp1", PASSWORD, "dispatcher", display_name="调度员甲"),
        "admin": create_user(engine, "admin1", PASSWORD, "admin"),
        "officer": create_user(engine, "off1", PASSWORD, "officer", streets=["ST1"], grids=["G1"],
                               display_name="网格员一", inspector_id="I1"),
        "officer2": create_user(engine, "off2", PASSWORD, "officer", streets=["ST2"], grids=["G2"],
                                inspector_id="I2"),
    }


USERNAMES = {"wall": "wall1", "dispatcher": "disp1", "admin": "admin1", "officer": "off1", "officer2": "off2"}


def login(client, username: str, password: str = PASSWORD, lang: str | None = None, follow: bool = False):
    page = client.get("/login" + (f"?lang={lang}" if lang else ""))
    token = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf": token},
                       follow_redirects=follow)


def as_our_page(client):
    """Send the CSRF header on every request, as the dashboard's own pages do (they read
    the token from the cookie): what a session needs for a state change through the API."""
    client.environ_base["HTTP_X_CSRFTOKEN"] = csrf_of(client)
    return client


def csrf_of(client) -> str | None:
    cookie = client.get_cookie(CSRF_COOKIE)
    return cookie.value if cookie else None


def callback_body(output: str, inputs: list[dict], state: list[dict] | None = None, outputs=None) -> dict:
    return {"output": output, "outputs": outputs, "inputs": inputs, "state": state or [],
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in inputs[:1] if isinstance(i, dict)]}


def call_callback(client, body: dict, csrf: str | None = "auto"):
    headers = {}
    if csrf == "auto":
        csrf = csrf_of(client)
    if csrf:
        headers[CSRF_HEADER] = csrf
    return client.post("/_dash-update-component", json=body, headers=headers)


def key_of(server, page: str, fn_name: str) -> str:
    """The Dash callback key (output string) of a page callback, by its function name."""
    app = server.extensions["anjian_dash"]
    for key, entry in app.callback_map.items():
        cb = entry.get("callback")
        wrapped = getattr(cb, "__wrapped__", None)
        while wrapped is not None and getattr(wrapped, "__name__", None) != fn_name:
            wrapped = getattr(wrapped, "__wrapped__", None)
        if wrapped is not None:
            return key
    raise KeyError(fn_name)


@contextmanager
def as_user(server, principal, lang: str = "zh-CN"):
    """A request context in which page callbacks run as ``principal`` (for plain-function calls)."""
    from flask import g, session

    with server.test_request_context("/_dash-update-component", method="POST"):
        session["lang"] = lang
        g.principal = principal
        yield


class ServerThread:
    """werkzeug's server in a thread on a free port (for the browser tests)."""

    def __init__(self, app):
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per poll
        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.thread.join(5)


# --- a few minutes of a city, written through the real live-state and history writers ---------


def wall_polls(state: dict | None = None, order=None, zoom=None, bounds=None) -> dict:
    """The wall's two 1 s polls, as its timer calls them (inside ``as_user``): the
    inspectors' and the alerts' outputs in one dict, their states under "state" as
    {"inspectors": ..., "alerts": ...} (a poll with nothing to send leaves its own as
    it was); PreventUpdate when neither had anything."""
    from dash import no_update
    from dash.exceptions import PreventUpdate

    from dashboard.pages import wall

    state = state or {}
    out: dict = {}
    states, quiet = {}, 0
    for name, fn, outputs, args in (("inspectors", wall.wall_inspectors, wall.INSPECTOR_OUTPUTS, (order, zoom, bounds)),
                                    ("alerts", wall.wall_alerts, wall.ALERT_OUTPUTS, ())):
        try:
            got = fn(1, state.get(name) or {}, *args)
        except PreventUpdate:
            quiet += 1
            got = dict(dict.fromkeys(outputs, no_update), state=state.get(name) or {})
        states[name] = got.pop("state")
        out.update(got)
    if quiet == 2:
        raise PreventUpdate
    out["state"] = states
    return out


def _visit_row(enterprise_id, inspector_id, unit_id, start, end, duplicate_of) -> dict:
    """A visits row as the geo engine writes it (with its stay key, when the schema has one)."""
    from data.models import Visit

    row = {"enterprise_id": enterprise_id, "inspector_id": inspector_id, "unit_id": unit_id, "start_ts": start,
           "end_ts": end, "duplicate_of": duplicate_of}
    cols = Visit.__table__.c
    if "stay_key" in cols:
        row["stay_key"] = f"{inspector_id}|{enterprise_id}|{start!r}"
    if "ended" in cols:
        row["ended"] = True
    return row


def feed_city(engine, live, now: float, n_inspectors: int = 24, seed: int = 7, high_sensors: int = 1,
              low_sensors: int = 1, visits: int = 12, duplicates: int = 3) -> dict:
    """Pings for the last 10 minutes of ``n_inspectors`` walking near enterprises, sensor
    states (a few in alarm), and some visits today (a few of them duplicates).

    Returns what it wrote: {"inspectors": [...], "alarm_sensors": [...], "visits": n, "duplicates": n}.
    """
    import random

    from sqlalchemy import insert, select

    from data.history import HistoryWriter
    from data.models import Enterprise, Inspector, Sensor, Visit
    from geo.types import GasReading, Ping

    rng = random.Random(seed)
    with engine.connect() as conn:
        insp = conn.execute(select(Inspector.id, Inspector.unit_id).order_by(Inspector.id)).all()[:n_inspectors]
        ents = conn.execute(select(Enterprise.id, Enterprise.lat, Enterprise.lon).order_by(Enterprise.id)).all()
        sensors = conn.execute(select(Sensor.id).order_by(Sensor.id)).scalars().all()
    pings = []
    for i, (iid, _unit) in enumerate(insp):
        e = ents[rng.randrange(len(ents))]
        lat, lon = e.lat + rng.uniform(-0.004, 0.004), e.lon + rng.uniform(-0.004, 0.004)
        for k in range(20):
            ts = now - 600 + k * 30 + rng.uniform(0, 5)
            lat += rng.uniform(-0.0004, 0.0004)
            lon += rng.uniform(-0.0004, 0.0004)
            pings.append(Ping(iid, ts, round(lat, 6), round(lon, 6), acc_m=8.0, speed_mps=1.2, batt_pct=80.0,
                              msg_id=f"feed-{iid}-{k}-{int(now)}"))
    live.apply_pings(pings)
    HistoryWriter(engine).write(pings=[(p, p.ts) for p in pings])
    readings, levels = [], []
    alarm = sensors[:high_sensors + low_sensors]
    for k, sid in enumerate(sensors):
        if k < high_sensors:
            lel, level = 62.0, "high"
        elif k < high_sensors + low_sensors:
            lel, level = 24.0, "low"
        else:
            lel, level = 0.0, "normal"
        readings.append(GasReading(sid, now - 5, lel_pct=lel, msg_id=f"feed-{sid}-{int(now)}"))
        levels.append(level)
    live.apply_sensor_readings(readings, levels)
    from geo.heat import local_day_start

    start = max(local_day_start(now), now - 3 * 3600)
    # The layout below needs ~40 minutes; soon after China midnight there is less of the
    # day behind us, and it is squeezed to fit (a visit must be today and not in the future).
    layout_s = 1200 + 60 * max(visits, duplicates) + 900
    f = min(1.0, max(0.0, now - 60 - start) / layout_s)
    rows = []
    for k in range(visits):
        iid, unit = insp[k % len(insp)]
        e = ents[k]
        t0 = start + 60 * k * f
        rows.append(_visit_row(e.id, iid, unit, t0, t0 + 900 * f, None))
    with engine.begin() as conn:
        if rows:
            conn.execute(insert(Visit), rows)
        first_ids = conn.execute(select(Visit.id).order_by(Visit.id)).scalars().all()
        dup_rows = []
        for k in range(min(duplicates, len(first_ids))):
            iid, unit = insp[(k + 5) % len(insp)]
            t0 = start + (60 * k + 1200) * f
            dup_rows.append(_visit_row(ents[k].id, iid, unit, t0, t0 + 600 * f, first_ids[k]))
        if dup_rows:
            conn.execute(insert(Visit), dup_rows)
    return {"inspectors": [i for i, _ in insp], "alarm_sensors": alarm, "visits": visits + duplicates,
            "duplicates": duplicates}


def open_alert(ctx, alert_type: str = "gas_alarm", *, sensor_id: str | None = None, enterprise_id: str | None = None,
               inspector_id: str | None = None, severity: str = "critical", lel: float | None = 62.0,
               at: float | None = None, details: dict | None = None) -> int:
    """Open an alert through the store's own insert (as the alert engine does) and tell the screens."""
    import time as _time

    from alerts.lifecycle import new_alert
    from alerts.model import enterprise_subject, inspector_subject, sensor_subject

    reg = ctx.registry()
    now = _time.time() if at is None else at
    street = grid = None
    if sensor_id:
        enterprise_id, _lat, _lon, street, grid, _hb = reg.sensors[sensor_id]
        subject = sensor_subject(sensor_id)
    elif enterprise_id:
        from sqlalchemy import select

        from data.models import Enterprise

        with ctx.engine.connect() as conn:
            row = conn.execute(select(Enterprise.street_id, Enterprise.grid_id)
                               .where(Enterprise.id == enterprise_id)).one()
        street, grid = row.street_id, row.grid_id
        subject = enterprise_subject(enterprise_id)
    else:
        subject = inspector_subject(inspector_id)
    alert, rec = new_alert(alert_type, subject, severity=severity, at=now, enterprise_id=enterprise_id,
                           sensor_id=sensor_id, inspector_id=inspector_id, street_id=street, grid_id=grid,
                           peak_lel=lel if alert_type == "gas_alarm" else None,
                           last_value_lel=lel if alert_type == "gas_alarm" else None, details=details or {})
    with ctx.engine.begin() as conn:
        stored = ctx.alerts.insert(conn, alert, rec, now)
    ctx.alerts.notify([stored.id])
    return stored.id


def find(component, cid):
    """The component with id ``cid`` in a page's tree, or None."""
    if getattr(component, "id", None) == cid:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and hasattr(child, "to_plotly_json"):
            hit = find(child, cid)
            if hit is not None:
                return hit
    return None
