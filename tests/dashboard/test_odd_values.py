"""One odd stored value (a time of about 1e297 s, a NaN, a negative year) must not
take down the API or a screen: the formatter answers null and logs the value."""

from __future__ import annotations

import logging
import math
import time

import pytest
from dash import Output
from sqlalchemy import update

from dashboard import ids
from dashboard.pages import dispatch, wall
from data.models import Alert, AlertEvent
from tests.dashboard import webkit

DETAIL_OUTPUTS = {"detail": Output(ids.DISPATCH_DETAIL_HTML, "data"),
                  "marks": Output(ids.DISPATCH_SUGGESTIONS, "data"),
                  "lines": Output(ids.DISPATCH_SUGGESTION_LINES, "data"),
                  "view": Output(ids.DISPATCH_MAP, "viewport")}
ODD_TIMES = [1e297, -1e20, 1e12 * 1000, math.inf, -math.inf]  # (SQLite stores NaN as NULL)


def _spoil(ctx, alert_id: int, odd: float) -> None:
    """What ``{"state":"online","ts":1e300}`` on an availability topic once stored."""
    with ctx.engine.begin() as conn:
        conn.execute(update(Alert).where(Alert.id == alert_id)
                     .values(returned_to_normal_at=odd, last_seen=odd, first_seen=odd))
        conn.execute(update(AlertEvent).where(AlertEvent.alert_id == alert_id).values(at=odd))


def _body(server, page: str, fn: str, outputs: dict, inputs: list[tuple[str, str, object]]) -> dict:
    key = webkit.key_of(server, page, fn)
    outs = [{"id": o.component_id, "property": o.component_property} for o in outputs.values()]
    ins = [{"id": i, "property": p, "value": v} for i, p, v in inputs]
    return webkit.callback_body(key, ins, outputs=outs)


@pytest.mark.parametrize("odd", ODD_TIMES, ids=repr)
def test_an_odd_stored_time_answers_200_everywhere_and_is_logged(web, client_as, caplog, odd):
    ctx, server, _app, _users = web
    now = time.time()
    webkit.feed_city(ctx.engine, ctx.live, now, n_inspectors=2, visits=2, duplicates=1)
    gas = webkit.open_alert(ctx, sensor_id="S1", severity="critical", at=now - 60)
    off = webkit.open_alert(ctx, "sensor_offline", sensor_id="S2", severity="warning", lel=None, at=now - 120)
    _spoil(ctx, off, odd)
    _spoil(ctx, gas, odd)
    # ...and in live state: a sensor's last reading, an inspector's last fix.
    ctx.live.r.hset(ctx.live.key("sensor", "S2"), mapping={"ts": repr(odd), "level": "normal"})
    fixes = ctx.live.inspector_fixes(["I1", "I2"])
    some = next(iter(fixes))
    ctx.live.r.hset(ctx.live.key("insp", some), "ts", repr(odd))
    ctx.live.r.incr(ctx.live.key("ver"))
    caplog.set_level(logging.WARNING)

    api = client_as("dispatcher")
    one = api.get(f"/api/v1/alerts/{off}")
    assert one.status_code == 200, one.get_data(as_text=True)[:300]
    assert one.get_json()["returned_to_normal_at"] is None  # not a time: null, not a 500
    listed = api.get("/api/v1/alerts?type=sensor_offline")
    assert listed.status_code == 200, listed.get_data(as_text=True)[:300]
    assert [a["id"] for a in listed.get_json()] == [off]
    assert api.get("/api/v1/alerts").status_code == 200
    sensors = api.get("/api/v1/sensors")
    assert sensors.status_code == 200, sensors.get_data(as_text=True)[:300]
    assert next(x for x in sensors.get_json() if x["id"] == "S2")["last_message"] is None
    inspectors = api.get("/api/v1/inspectors")
    assert inspectors.status_code == 200, inspectors.get_data(as_text=True)[:300]

    wall_client = client_as("wall")
    body = _body(server, "wall", "wall_inspectors", wall.INSPECTOR_OUTPUTS,
                 [(ids.WALL_TICK, "n_intervals", 1), (ids.WALL_STATE, "data", None), (ids.WALL_ORDER, "data", None),
                  (ids.WALL_MAP, "zoom", 12), (ids.WALL_MAP, "bounds", [[22.6, 113.9], [22.8, 114.1]])])
    resp = webkit.call_callback(wall_client, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    body = _body(server, "wall", "wall_alerts", wall.ALERT_OUTPUTS,
                 [(ids.WALL_TICK, "n_intervals", 1), (ids.WALL_PUSH, "data", None),
                  (ids.WALL_ALERT_STATE, "data", None)])
    resp = webkit.call_callback(wall_client, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]

    body = _body(server, "dispatch", "dispatch_tick", dispatch.TICK_OUTPUTS,
                 [(ids.DISPATCH_TICK, "n_intervals", 1), (ids.DISPATCH_ACTION_DONE, "data", None),
                  (ids.DISPATCH_SELECTED, "data", None), (ids.DISPATCH_PUSH, "data", None),
                  (ids.DISPATCH_STATE, "data", None)])
    resp = webkit.call_callback(api, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    body = _body(server, "dispatch", "dispatch_inspectors", dispatch.INSPECTOR_OUTPUTS,
                 [(ids.DISPATCH_TICK, "n_intervals", 1), (ids.DISPATCH_AFP, "data", None),
                  (ids.DISPATCH_INSPECTOR_STATE, "data", None), (ids.DISPATCH_ORDER, "data", None),
                  (ids.DISPATCH_MAP, "zoom", 12), (ids.DISPATCH_MAP, "bounds", [[22.6, 113.9], [22.8, 114.1]])])
    resp = webkit.call_callback(api, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    # The alert's detail panel formats the history too.
    body = _body(server, "dispatch", "dispatch_detail", DETAIL_OUTPUTS,
                 [(ids.DISPATCH_SELECTED, "data", off), (ids.DISPATCH_AFP, "data", None),
                  (ids.DISPATCH_ACTION_DONE, "data", None)])
    resp = webkit.call_callback(api, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]

    assert any("odd time" in r.getMessage() for r in caplog.records), "the odd value was not logged"

