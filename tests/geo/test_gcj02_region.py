"""Where the GCJ-02 shift applies: a polygon region, not the rectangle.

The rectangle (lon 72.004-137.8347, lat 0.8293-55.8271) shifted Seoul by 459 m,
Hanoi by 441 m, Taipei by 501 m and Hong Kong by 595 m.  Whether Hong Kong, Macau
and Taiwan are shifted is a setting (``gcj02_region``); its default is what the
AutoNavi/Gaode tiles (the ``gaode`` preset) draw: Hong Kong and Macau shifted,
Taiwan not (docs/coordinates.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from config.settings import Settings, load_settings
from geo import coords
from geo.coords import (
    DEFAULT_GCJ02_REGION,
    GCJ02_REGIONS,
    gcj02_to_wgs84,
    haversine_m,
    in_gcj02_region,
    set_gcj02_region,
    to_wgs84,
    wgs84_to_gcj02,
)
from tests.close import deg

# WGS-84, lon first.
NEVER_SHIFTED = {
    "Seoul": (126.9780, 37.5665),
    "Hanoi": (105.8342, 21.0278),
    "Pyongyang": (125.7625, 39.0392),
    "Ulaanbaatar": (106.9057, 47.8864),
    "Tokyo": (139.6917, 35.6895),
    "Manila": (120.9842, 14.5995),
}
ALWAYS_SHIFTED = {
    "Beijing": (116.3975, 39.9087),
    "Shanghai": (121.4737, 31.2304),
    "Shenzhen": (114.0579, 22.5431),
    "Urumqi": (87.6168, 43.8256),
    "Sanya": (109.5119, 18.2528),
    "Xiamen": (118.0894, 24.4798),  # a few km from Kinmen (Taiwan)
    # The Futian checkpoint side of the Shenzhen River, ~200 m north of the border.
    "Futian checkpoint": (114.0663, 22.5190),
    "Luohu checkpoint": (114.1131, 22.5327),
    # ~60 m north of the border line, opposite Lok Ma Chau.
    "Shenzhen River north bank": (114.0658, 22.5175),
}
HK_MACAU = {
    "Hong Kong (Central)": (114.1694, 22.3193),
    "Victoria Harbour": (114.1700, 22.2900),
    "Lok Ma Chau control point": (114.0658, 22.5144),
    "Lo Wu": (114.1134, 22.5283),
    # ~50 m south of the border line.
    "Shenzhen River south bank": (114.0658, 22.5165),
    "Macau": (113.5439, 22.1987),
}
TAIWAN = {
    "Taipei": (121.5654, 25.0330),
    "Kaohsiung": (120.3014, 22.6273),
    "Hualien": (121.6014, 23.9769),
}


def shift_m(lon, lat) -> float:
    return haversine_m(lon, lat, *wgs84_to_gcj02(lon, lat))


@pytest.fixture
def region(request):
    set_gcj02_region(request.param)
    yield request.param
    set_gcj02_region(DEFAULT_GCJ02_REGION)


ALL = pytest.mark.parametrize("region", list(GCJ02_REGIONS), indirect=True)


@ALL
@pytest.mark.parametrize("name", NEVER_SHIFTED)
def test_neighbours_are_never_shifted(region, name):
    lon, lat = NEVER_SHIFTED[name]
    assert wgs84_to_gcj02(lon, lat) == (lon, lat)
    assert gcj02_to_wgs84(lon, lat) == pytest.approx((lon, lat), abs=1e-12)
    assert to_wgs84(lon, lat, "bd09") == deg(gcj02_to_wgs84(*coords.bd09_to_gcj02(lon, lat)))


@ALL
@pytest.mark.parametrize("name", ALWAYS_SHIFTED)
def test_the_mainland_is_always_shifted(region, name):
    lon, lat = ALWAYS_SHIFTED[name]
    assert 100 < shift_m(lon, lat) < 800
    assert haversine_m(*gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)), lon, lat) < 0.01


@pytest.mark.parametrize("region, hk_macau, taiwan", [
    ("mainland_hk_macau", True, False),
    ("mainland", False, False),
    ("mainland_hk_macau_taiwan", True, True),
], indirect=["region"])
def test_hong_kong_macau_and_taiwan_follow_the_setting(region, hk_macau, taiwan):
    for places, shifted in ((HK_MACAU, hk_macau), (TAIWAN, taiwan)):
        for name, (lon, lat) in places.items():
            d = shift_m(lon, lat)
            assert (100 < d < 800) if shifted else d == 0.0, (region, name, d)


@pytest.mark.parametrize("region", ["mainland"], indirect=True)
def test_the_shenzhen_hong_kong_border_is_drawn_at_the_river(region):
    """Along the Shenzhen River, 100 m either side of the line, every point is on its
    side: vectorised and scalar answers agree."""
    lon = np.array([114.0658, 114.07, 114.09, 114.10, 114.1134, 114.13])
    border = np.array([22.51695, 22.51771, 22.53670, 22.53435, 22.53007, 22.54152])  # the river's line there
    north, south = border + 0.0009, border - 0.0009
    assert in_gcj02_region(lon, north).all()
    assert not in_gcj02_region(lon, south).any()
    for x, n, s in zip(lon.tolist(), north.tolist(), south.tolist()):
        assert in_gcj02_region(x, n) and not in_gcj02_region(x, s)


def test_the_default_matches_the_gcj02_tiles_preset():
    assert Settings.model_fields["gcj02_region"].default == DEFAULT_GCJ02_REGION == "mainland_hk_macau"
    assert coords.gcj02_region() == DEFAULT_GCJ02_REGION


def test_the_setting_is_applied_and_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("ANJIAN_GCJ02_REGION", "mainland")
    try:
        s = load_settings(data_dir=tmp_path)
        assert s.gcj02_region == "mainland" and coords.gcj02_region() == "mainland"
        assert shift_m(*HK_MACAU["Hong Kong (Central)"]) == 0.0
    finally:
        set_gcj02_region(DEFAULT_GCJ02_REGION)
    monkeypatch.setenv("ANJIAN_GCJ02_REGION", "hongkong")
    with pytest.raises(ValueError, match="gcj02_region must be one of"):
        load_settings(data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown GCJ-02 region"):
        set_gcj02_region("rectangle")


def test_the_grid_agrees_with_the_polygon():
    """The lookup grid answers as the polygon does, across the region and densely
    around Hong Kong and Macau."""
    import shapely

    rng = np.random.default_rng(13)
    for name in GCJ02_REGIONS:
        set_gcj02_region(name)
        try:
            grid = coords._grid()
            for lon, lat in ((rng.uniform(70, 140, 300_000), rng.uniform(0, 56, 300_000)),
                             (rng.uniform(113.4, 114.6, 300_000), rng.uniform(21.9, 22.7, 300_000))):
                exact = shapely.contains_xy(grid.geom, lon, lat)
                assert (in_gcj02_region(lon, lat) == exact).all()
                assert [in_gcj02_region(x, y) for x, y in zip(lon[:3000].tolist(), lat[:3000].tolist())] == \
                    exact[:3000].tolist()
        finally:
            set_gcj02_region(DEFAULT_GCJ02_REGION)


def test_a_gcj02_fix_is_shifted_back_only_inside_the_region():
    """What the ingest stores for a device that reports GCJ-02 (docs/mqtt.md, crs)."""
    import json

    from ingest.decode import TopicScheme, decode

    def stored(lon, lat):
        body = json.dumps({"ts": 1714530000, "lat": lat, "lon": lon, "crs": "gcj02"}).encode()
        ping = decode("anjian/v1/inspectors/I1/location", body, TopicScheme(), 1714530000.0)
        return ping.lon, ping.lat

    assert stored(*NEVER_SHIFTED["Seoul"]) == NEVER_SHIFTED["Seoul"]
    assert stored(*TAIWAN["Taipei"]) == TAIWAN["Taipei"]
    sz = ALWAYS_SHIFTED["Shenzhen"]
    assert haversine_m(*stored(*wgs84_to_gcj02(*sz)), *sz) < 0.01
