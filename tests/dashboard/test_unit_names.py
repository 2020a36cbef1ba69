"""Units in the English UI: their English name (units.name_en) where they have one, on the
wall's legend, the console's inspector list and map, the enterprise page's visits; the registered
name where they have none, and always in the Chinese UI."""

from __future__ import annotations

import json
import time

from sqlalchemy import update

from dashboard.pages import dispatch, enterprise, wall
from data.demo_city import STREETS, _make_units
from data.models import Unit
from tests.dashboard import webkit


def text_of(component) -> str:
    if isinstance(component, str):
        return component
    return json.dumps(component, default=lambda c: c.to_plotly_json(), ensure_ascii=False)


def test_a_unit_is_shown_by_its_english_name_in_the_english_ui(web):
    ctx, server, _app, users = web
    with ctx.engine.begin() as conn:  # U2 (民治街道安监办) has an English name; U1 has none
        conn.execute(update(Unit).where(Unit.id == "U2").values(name_en="Minzhi Safety Office"))
    webkit.feed_city(ctx.engine, ctx.live, time.time(), n_inspectors=2, visits=0, duplicates=0)  # I1 (U1), I2 (U2)
    shown = {}
    for lang in ("en", "zh-CN"):
        with webkit.as_user(server, users["wall"], lang):
            legend = text_of(webkit.find(wall.build(users["wall"], lang), "wall-unit-legend"))
        with webkit.as_user(server, users["dispatcher"], lang):
            out = dispatch.dispatch_inspectors(1, None, {}, None)
            listed = out["inspector_list"]
            tip = next(f["properties"]["tooltip"] for f in out["inspectors"]["features"] if f["id"] == "I2")
            visits = text_of(enterprise.visits_table(
                [{"id": 1, "start_ts": time.time() - 900, "end_ts": time.time(), "inspector_id": "I2",
                  "inspector_name": "刘洋", "unit_id": "U2", "unit_name": "民治街道安监办"}], lang))
        shown[lang] = (legend, listed, visits, tip)
    for text in shown["en"]:
        assert "Minzhi Safety Office" in text and "民治街道安监办" not in text
    legend, listed, _visits, _tip = shown["en"]
    assert "龙华区应急管理局执法科" in legend and "龙华区应急管理局执法科" in listed  # U1: no English name
    for text in shown["zh-CN"]:
        assert "民治街道安监办" in text and "Minzhi" not in text


def test_every_demo_unit_has_an_english_name():
    units = _make_units([s[0] for s in STREETS])
    assert units.name_en.notna().all() and len(set(units.name_en)) == len(units)
    assert all(n.isascii() for n in units.name_en)
    assert "Minzhi Safety Office" in set(units.name_en)
