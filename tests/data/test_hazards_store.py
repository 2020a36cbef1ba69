"""The hazard store on SQLite and PostgreSQL: each red-light rule from stored facts, the
catalogue file setting, and photos that fail to store leave nothing behind."""

from __future__ import annotations

import io
import json

import pytest

from data.hazards_store import HazardStore, load_catalogue
from data.photos import PhotoRefused
from hazards.catalogue import CatalogueError
from tests.citykit import write_small_city

D = 86400.0
NOW = 1_780_000_000.0


def _png() -> bytes:
    """A real 4x4 PNG (uploads are decoded, so a signature alone is refused)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (128, 32, 32)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


@pytest.fixture
def store(engine, settings):
    write_small_city(engine)
    return HazardStore(engine, settings)


def _reasons(store, eid, now=NOW):
    got = {r["enterprise_id"]: [x["rule"] for x in r["reasons"]] for r in store.red_light(now)}
    return got.get(eid, [])


def _inspected(store, eid, at):
    store.submit_self_inspection(eid, "ent", [{"code": "SC01", "ok": True}], now=at)


def test_red_light_no_self_inspection_by_the_due_date(store):
    _inspected(store, "E1", NOW - 200 * D)
    store.create("ent", enterprise_id="E1", category="SC02", level="general", found_by="enterprise", now=NOW - 10 * D)
    assert _reasons(store, "E1", NOW - 190 * D) == []
    assert _reasons(store, "E1") == ["no_self_inspection"]
    _inspected(store, "E1", NOW - 1 * D)
    assert _reasons(store, "E1") == []


def test_red_light_zero_hazards_for_n_periods(store):
    _inspected(store, "E1", NOW - 100 * D)  # supervised for more than 3 periods of 30 days
    _inspected(store, "E1", NOW - 2 * D)
    assert _reasons(store, "E1") == ["zero_hazards"]
    store.create("ent", enterprise_id="E1", category="SC02", level="general", found_by="enterprise", now=NOW - 5 * D)
    assert _reasons(store, "E1") == []
    # A hazard found by an inspector does not count as the enterprise's own report.
    _inspected(store, "E2", NOW - 100 * D)
    _inspected(store, "E2", NOW - 2 * D)
    store.create("off", enterprise_id="E2", category="EQ01", level="general", found_by="inspector", now=NOW - 5 * D)
    assert _reasons(store, "E2") == ["zero_hazards"]


def test_red_light_hazards_past_deadline(store):
    _inspected(store, "E1", NOW - 2 * D)
    store.create("ent", enterprise_id="E1", category="SC02", level="general", found_by="enterprise", now=NOW - 20 * D)
    h = store.create("off", enterprise_id="E1", category="SC01", level="general", found_by="inspector",
                     now=NOW - 20 * D)
    store.act(h["id"], "assign", "off", now=NOW - 10 * D)  # due 7 days later: 3 days overdue now
    assert _reasons(store, "E1") == ["overdue_hazards"]
    assert store.get(h["id"], NOW)["overdue"] is True
    face = store.credit_face("E1", NOW)
    assert face["red_light"] == [{"rule": "overdue_hazards", "count": 1}]
    assert face["hazards"]["open"] == 2 and face["hazards"]["overdue"] == 1


def test_a_bureau_catalogue_file(tmp_path, engine, settings):
    f = tmp_path / "cat.json"
    f.write_text(json.dumps({"name": "x", "groups": [{"code": "g", "kind": "small_venue", "name": "小作坊",
                                                     "items": [{"code": "X1", "name": "液化气"}]}]}), encoding="utf-8")
    s = HazardStore(engine, settings.model_copy(update={"hazard_catalogue_file": f}))
    assert "X1" in s.catalogue and "SC01" not in s.catalogue
    f.write_text(json.dumps({"groups": []}), encoding="utf-8")
    with pytest.raises(CatalogueError):
        load_catalogue(f)


def test_a_refused_or_failed_photo_leaves_nothing(store, tmp_path):
    h = store.create("off", enterprise_id="E1", category="SC01", level="general", found_by="inspector", now=NOW)
    store.add_photo(h["id"], "finding", PNG, "off", now=NOW)
    # A GIF, also a tiny one (the sweep's 35-byte GIF was refused as "empty or truncated").
    for gif in (b"GIF89a" + b"\x00" * 40, b"GIF89a\x01\x00\x01\x00"):
        with pytest.raises(PhotoRefused) as e:
            store.add_photo(h["id"], "finding", gif, "off", now=NOW)
        assert e.value.code == "not_an_image"
    for empty in (b"", PNG[:10]):
        with pytest.raises(PhotoRefused) as e:
            store.add_photo(h["id"], "finding", empty, "off", now=NOW)
        assert e.value.code == "empty"
    with pytest.raises(PhotoRefused) as e:
        store.add_photo(h["id"], "rectification", PNG + b"x", "off", now=NOW)  # not rectifying yet
    assert e.value.code == "wrong_state"
    files = sorted(p.name for p in (tmp_path / "photos" / str(h["id"])).iterdir())
    originals = [f for f in files if ".thumb." not in f]
    assert len(originals) == 1 and files == sorted([originals[0], originals[0].rsplit(".", 1)[0] + ".thumb.jpg"])
    assert len(store.get(h["id"])["photos"]) == 1


def test_a_self_inspection_that_finds_something_counts_as_reporting(store):
    _inspected(store, "E1", NOW - 100 * D)
    store.submit_self_inspection("E1", "ent", [{"code": "SC01", "ok": False}], now=NOW - 3 * D)
    assert _reasons(store, "E1") == []
