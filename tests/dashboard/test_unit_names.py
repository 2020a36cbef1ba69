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


def test_the_replay_pages_inspector_picker_names_the_unit_in_the_pages_language(web):
    from dashboard.pages import replay

    ctx, server, _app, users = web
    with ctx.engine.begin() as conn:
        conn.execute(update(Unit).where(Unit.id == "U2").values(name_en="Minzhi Safety Office"))
    webkit.feed_city(ctx.engine, ctx.live, time.time(), n_inspectors=2, visits=0, duplicates=0)  # I1 (U1), I2 (U2)
    labels = {}
    for lang in ("en", "zh-CN"):
        with webkit.as_user(server, users["dispatcher"], lang):
            picker = webkit.find(replay.build(users["dispatcher"], lang), "replay-inspector")
        labels[lang] = {o["value"]: o["label"] for o in picker.options}
    assert labels["en"]["I2"].endswith("· Minzhi Safety Office")
    assert labels["en"]["I1"].endswith("· 龙华区应急管理局执法科")  # no English name: the registered one
    assert labels["zh-CN"]["I2"].endswith("· 民治街道安监办")


def test_every_demo_unit_has_an_english_name():
    units = _make_units([s[0] for s in STREETS])
    assert units.name_en.notna().all() and len(set(units.name_en)) == len(units)
    assert all(n.isascii() for n in units.name_en)
    assert "Minzhi Safety Office" in set(units.name_en)


def test_a_demo_database_written_before_units_had_english_names_gets_them_at_start(sqlite_engine, settings):
    """The demo writes its city once; one written before migration 0009 had no English unit
    names, and the English UI named its units in Chinese until the database was thrown away.
    ensure_demo_city (every start) gives them their names, and leaves a name set by hand."""
    from sqlalchemy import select

    from data.demo_city import ensure_demo_city, generate_city, write_city

    write_city(sqlite_engine, generate_city(7, "tiny"))
    with sqlite_engine.begin() as conn:  # as a database of before the migration
        conn.execute(update(Unit).values(name_en=None))
        conn.execute(update(Unit).where(Unit.id == "U01").values(name_en="Our own name"))
    assert ensure_demo_city(sqlite_engine, settings) is False  # the city is there: not written again
    with sqlite_engine.connect() as conn:
        names = dict(conn.execute(select(Unit.id, Unit.name_en)).all())
    assert names["U01"] == "Our own name"
    assert all(names.values()), names
    assert "Minzhi Safety Office" in names.values()
