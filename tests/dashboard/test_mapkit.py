"""Tile presets, the display datum (GCJ-02 shift), the offline base and the layer builders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import insert

from config.settings import SettingsError, load_settings
from dashboard import mapkit
from dashboard.mapkit import Projector, enterprise_layer, heat_layer, load_city_map, tile_preset
from data.models import Enterprise
from geo.coords import haversine_m, wgs84_to_gcj02
from tests.citykit import write_small_city


def preset_of(**kw):
    return tile_preset(load_settings(**kw))


def test_presets():
    osm = preset_of(tiles="osm")
    assert osm.name == "osm" and osm.crs == "wgs84" and "openstreetmap" in osm.tiles[0].url
    gaode = preset_of(tiles="gaode")
    assert gaode.crs == "gcj02" and "autonavi" in gaode.tiles[0].url
    tdt = preset_of(tiles="tianditu", tianditu_key="k123")
    assert tdt.crs == "wgs84" and len(tdt.tiles) == 2 and all("tk=k123" in s.url for s in tdt.tiles)
    custom = preset_of(tiles="custom", tiles_custom_url="http://tiles.intranet/{z}/{x}/{y}.png", tiles_custom_crs="gcj02")
    assert custom.name == "custom" and custom.crs == "gcj02" and custom.tiles[0].url.startswith("http://tiles.intranet")
    none = preset_of(tiles="none")
    assert none.offline and none.tiles == () and none.fallback_reason is None


@pytest.mark.parametrize("kw", [{"tiles": "tianditu"}, {"tiles": "custom"}])
def test_a_preset_that_cannot_work_falls_back_to_the_offline_base(kw):
    p = preset_of(**kw)
    assert p.offline and p.name == "none" and p.fallback_reason


@pytest.mark.parametrize("kw", [{"tiles": "bing"},
                                {"tiles": "custom", "tiles_custom_url": "http://x/{z}/{x}/{y}", "tiles_custom_crs": "bd09"}])
def test_an_unknown_preset_or_crs_is_refused_with_the_settings(kw):
    with pytest.raises(SettingsError, match="is not one of"):
        preset_of(**kw)


def test_gcj02_shift_moves_markers_onto_the_gaode_street():
    lon, lat = np.array([114.0300]), np.array([22.6500])  # Longhua
    x, y = Projector("gcj02").lonlat(lon, lat)
    ex, ey = wgs84_to_gcj02(lon, lat)
    assert x[0] == pytest.approx(ex[0], abs=2e-6) and y[0] == pytest.approx(ey[0], abs=2e-6)
    shift_m = haversine_m(lon[0], lat[0], x[0], y[0])
    assert 200 < shift_m < 700  # the GCJ-02 offset in Shenzhen is a few hundred metres
    back_x, back_y = Projector("gcj02").to_wgs84(x, y)
    assert back_x[0] == pytest.approx(lon[0], abs=1e-5) and back_y[0] == pytest.approx(lat[0], abs=1e-5)
    wx, wy = Projector("wgs84").lonlat(lon, lat)
    assert (wx[0], wy[0]) == (114.03, 22.65)


def test_geometry_and_bounds_are_shifted_too():
    pr = Projector("gcj02")
    poly = {"type": "Polygon", "coordinates": [[[114.0, 22.6], [114.05, 22.6], [114.05, 22.65], [114.0, 22.6]]]}
    shown = pr.geometry(poly)
    assert len(shown["coordinates"][0]) == 4
    assert shown["coordinates"][0][0] != [114.0, 22.6]
    w, s, e, n = pr.bounds_to_wgs84([[shown["coordinates"][0][0][1], shown["coordinates"][0][0][0]],
                                     [shown["coordinates"][0][2][1], shown["coordinates"][0][2][0]]])
    assert (w, s) == pytest.approx((114.0, 22.6), abs=1e-5) and (e, n) == pytest.approx((114.05, 22.65), abs=1e-5)
    multi = {"type": "MultiPolygon", "coordinates": [poly["coordinates"]]}
    assert pr.geometry(multi)["coordinates"][0] == shown["coordinates"]


def test_city_map_from_sql_in_both_datums(sqlite_engine):
    write_small_city(sqlite_engine)
    plain = load_city_map(sqlite_engine, Projector("wgs84"))
    assert [f["id"] for f in plain.streets["features"]] == ["ST1", "ST2"]
    assert len(plain.grids["features"]) == 2 and plain.district_bounds == [[22.6, 114.0], [22.65, 114.1]]
    assert plain.street_names["ST1"] == ("民治街道", "Minzhi")
    shifted = load_city_map(sqlite_engine, Projector("gcj02"))
    a = plain.streets["features"][0]["geometry"]["coordinates"][0][0]
    b = shifted.streets["features"][0]["geometry"]["coordinates"][0][0]
    assert 200 < haversine_m(a[0], a[1], b[0], b[1]) < 700
    assert plain.enterprise_position("E1") == (22.62, 114.02)
    assert shifted.ent_x[0] != plain.ent_x[0]


def test_offline_base_has_no_tile_layer(sqlite_engine):
    write_small_city(sqlite_engine)
    city = load_city_map(sqlite_engine, Projector("wgs84"))
    offline = mapkit.base_children(preset_of(tiles="none"), city, "zh-CN")
    text = json.dumps([c.to_plotly_json() for c in offline], default=str)
    assert "TileLayer" not in text
    pane = offline[-1]
    assert pane.name == mapkit.BASE_PANE
    assert pane.children[0].hideout == {"offline": True, "lang": "zh-CN"}
    online = mapkit.base_children(preset_of(tiles="osm"), city, "en")
    tiles = [c for c in online if type(c).__name__ == "TileLayer"]
    assert tiles and tiles[0].errorTileUrl == mapkit.TRANSPARENT_TILE  # a missing tile never breaks the page


def _city_with(engine, n_extra: int):
    write_small_city(engine)
    rng = np.random.default_rng(1)
    rows = [{"id": f"X{i:05d}", "name": f"企业{i}", "lat": float(22.60 + 0.05 * rng.random()),
             "lon": float(114.0 + 0.1 * rng.random()), "risk": ["red", "orange", "yellow", "blue"][i % 4],
             "street_id": "ST1", "grid_id": "G1"} for i in range(n_extra)]
    with engine.begin() as conn:
        conn.execute(insert(Enterprise), rows)
    return load_city_map(engine, Projector("wgs84"))


def test_enterprises_are_binned_when_zoomed_out_and_points_when_zoomed_in(sqlite_engine):
    city = _city_with(sqlite_engine, 3000)
    labels = {c: c for c in mapkit.RISK_ORDER}
    whole = [[22.55, 113.95], [22.70, 114.15]]
    binned = enterprise_layer(city, 12, whole, labels)
    assert sum(f["properties"]["k"] for f in binned["features"]) == 3002
    assert len(binned["features"]) < 400
    worst = {f["properties"]["r"] for f in binned["features"]}
    assert "red" in worst
    view = [[22.62, 114.02], [22.63, 114.04]]
    pts = enterprise_layer(city, 16, view, labels)
    assert pts["features"] and all("k" not in f["properties"] for f in pts["features"])
    for f in pts["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 22.619 <= lat <= 22.631 and 114.018 <= lon <= 114.042


def test_points_are_capped_highest_risk_first(sqlite_engine, monkeypatch):
    city = _city_with(sqlite_engine, 400)
    monkeypatch.setattr(mapkit, "ENTERPRISE_POINTS_MAX", 50)
    pts = enterprise_layer(city, 16, [[22.5, 113.9], [22.7, 114.2]], {})
    assert len(pts["features"]) == 50
    assert all(f["properties"]["r"] == "red" for f in pts["features"])


def test_names_are_escaped_in_tooltips(sqlite_engine):
    write_small_city(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(insert(Enterprise), [{"id": "EVIL", "name": '<img src=x onerror="alert(1)">', "lat": 22.621,
                                           "lon": 114.021, "risk": "red", "street_id": "ST1", "grid_id": "G1"}])
    city = load_city_map(sqlite_engine, Projector("wgs84"))
    pts = enterprise_layer(city, 17, [[22.62, 114.02], [22.622, 114.022]], {})
    tips = [f["properties"]["tooltip"] for f in pts["features"]]
    assert any("&lt;img" in tip for tip in tips) and not any("<img" in tip for tip in tips)


def test_heat_layer_accepts_rows_and_dicts_and_skips_bad_cells():
    from geo.cells import latlng_to_cell

    c1, c2 = latlng_to_cell(22.62, 114.02, 8), latlng_to_cell(22.64, 114.06, 8)
    fc, vmax = heat_layer([{"cell": c1, "count": 3}, {"cell": c2, "count": 7}, {"cell": "nonsense", "count": 2},
                           {"cell": c1, "count": float("nan")}], Projector("wgs84"))
    assert vmax == 7 and len(fc["features"]) == 2
    fc2, vmax2 = heat_layer({c1: 1.5}, Projector("gcj02"))
    assert vmax2 == 1.5 and len(fc2["features"]) == 1
    assert heat_layer([], Projector("wgs84")) == ({"type": "FeatureCollection", "features": []}, 0.0)


def test_trails_keep_what_the_zoom_can_show():
    rng = np.random.default_rng(3)
    lon0, lat0 = 114.03, 22.65
    # One inspector inside an enterprise (GPS jitter of a few metres), one walking ~400 m east.
    stayed = [(lon0 + rng.normal(0, 3e-5), lat0 + rng.normal(0, 3e-5)) for _ in range(12)]
    walked = [(lon0 + k * 3.5e-4, lat0 + rng.normal(0, 2e-5)) for k in range(12)]
    proj = Projector("wgs84")
    colours = {"I1": "#fff", "I2": "#fff"}

    close = mapkit.trail_features({"I1": stayed, "I2": walked}, colours, proj,
                                  min_step_m=2 * mapkit.metres_per_pixel(18))
    assert {f["id"] for f in close["features"]} == {"I1", "I2"}, "zoomed in, both trails show"

    far = mapkit.trail_features({"I1": stayed, "I2": walked}, colours, proj,
                                min_step_m=2 * mapkit.metres_per_pixel(12))
    (line,) = far["features"]
    assert line["id"] == "I2", "at the district view an inspector who stayed put has no trail"
    coords = line["geometry"]["coordinates"]
    assert 2 <= len(coords) < 12
    assert coords[0] == pytest.approx(list(walked[0]), abs=1e-5), "the trail starts where it started"
    assert coords[-1] == pytest.approx(list(walked[-1]), abs=1e-5), "and ends under the live marker"
    step = 2 * mapkit.metres_per_pixel(12)
    for a, b in zip(coords, coords[1:]):
        assert haversine_m(a[0], a[1], b[0], b[1]) >= step * 0.5
