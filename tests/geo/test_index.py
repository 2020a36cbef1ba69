"""Enterprise index: exact radius lookups through H3 grid disks."""

from __future__ import annotations

import math

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.cells import ENTERPRISE_RES
from geo.index import EnterpriseIndex
from tests.geo.helpers import BruteNearby, destination

FUTIAN = (22.5431, 114.0579)


def park(n: int = 3000, seed: int = 1):
    """A dense industrial park plus a scatter over the city."""
    rng = np.random.default_rng(seed)
    lats = np.r_[FUTIAN[0] + rng.normal(0, 0.002, n // 2), rng.uniform(22.45, 22.85, n - n // 2)]
    lons = np.r_[FUTIAN[1] + rng.normal(0, 0.002, n // 2), rng.uniform(113.75, 114.6, n - n // 2)]
    ids = [f"E{i:05d}" for i in range(n)]
    return ids, lats, lons


@pytest.fixture(scope="module")
def city():
    ids, lats, lons = park()
    return EnterpriseIndex.from_arrays(ids, lats, lons), BruteNearby(ids, lats, lons)


def same(got, expected):
    assert [g[0] for g in got] == [e[0] for e in expected]
    for (_, d1), (_, d2) in zip(got, expected):
        assert d1 == pytest.approx(d2, abs=1e-6)


def test_known_distances():
    lat2, lon2 = destination(*FUTIAN, 80.0, 90.0)
    idx = EnterpriseIndex.from_arrays(["A", "B"], [FUTIAN[0], lat2], [FUTIAN[1], lon2])
    assert idx.nearby(*FUTIAN, 50.0) == [("A", 0.0)]
    got = idx.nearby(*FUTIAN, 100.0)
    assert [g[0] for g in got] == ["A", "B"]
    assert got[1][1] == pytest.approx(80.0, abs=1e-6)
    assert idx.nearest(lat2, lon2, 10.0) == ("B", pytest.approx(0.0, abs=1e-6))
    assert idx.nearest(*destination(*FUTIAN, 500.0, 0.0), 100.0) is None


def test_cell_of_and_location():
    idx = EnterpriseIndex.from_arrays(["A"], [FUTIAN[0]], [FUTIAN[1]])
    assert idx.res == ENTERPRISE_RES
    assert idx.cell_of("A") == h3.latlng_to_cell(*FUTIAN, ENTERPRISE_RES)
    assert idx.location("A") == FUTIAN
    assert "A" in idx and "Z" not in idx
    assert idx.cells_str() == [idx.cell_of("A")]
    with pytest.raises(KeyError):
        idx.location("Z")


def test_invalid_coordinates_are_skipped():
    idx = EnterpriseIndex.from_arrays(["A", "B", "C"], [FUTIAN[0], np.nan, 95.0], [FUTIAN[1], 114.0, 114.0])
    assert len(idx) == 1 and idx.skipped == 2
    assert idx.nearby(*FUTIAN, 10.0) == [("A", 0.0)]


def test_empty_index_and_bad_queries():
    idx = EnterpriseIndex.from_arrays([], [], [])
    assert len(idx) == 0
    assert idx.nearby(*FUTIAN, 100.0) == []
    assert idx.nearby_many([FUTIAN[0]], [FUTIAN[1]], 100.0) == [[]]
    full = EnterpriseIndex.from_arrays(["A"], [FUTIAN[0]], [FUTIAN[1]])
    assert full.nearby(float("nan"), FUTIAN[1], 100.0) == []
    assert full.nearby(*FUTIAN, -1.0) == []
    with pytest.raises(ValueError):
        EnterpriseIndex.from_arrays(["A", "B"], [1.0], [2.0])


def test_ties_are_ordered_by_id():
    idx = EnterpriseIndex.from_arrays(["B", "A", "C"], [FUTIAN[0]] * 3, [FUTIAN[1]] * 3)
    assert idx.nearby(*FUTIAN, 1.0) == [("A", 0.0), ("B", 0.0), ("C", 0.0)]


def test_k_matches_the_regular_hexagon_bound():
    # For a regular hexagon of edge e: k = ceil((r + 2e) / 1.5e).  The measured
    # geometry plus the 5 % margin gives that or one more ring.
    idx = EnterpriseIndex.from_arrays(["A"], [FUTIAN[0]], [FUTIAN[1]])
    e = h3.average_hexagon_edge_length(ENTERPRISE_RES, "m")
    cell = int(idx.cells[0])
    for r in (0.0, 50.0, 100.0, 300.0, 1000.0):
        k = idx.k_for_radius(r, cell)
        regular = math.ceil((r + 2 * e) / (1.5 * e))
        assert regular - 1 <= k <= regular + 2
    ks = [idx.k_for_radius(r, cell) for r in range(0, 2000, 50)]
    assert ks == sorted(ks)


def test_lookup_in_a_dense_park_equals_brute_force(city):
    idx, brute = city
    rng = np.random.default_rng(5)
    for _ in range(300):
        lat = FUTIAN[0] + rng.normal(0, 0.002)
        lon = FUTIAN[1] + rng.normal(0, 0.002)
        r = float(rng.uniform(0, 400))
        same(idx.nearby(lat, lon, r), brute(lat, lon, r))


@settings(max_examples=150, deadline=None)
@given(
    st.floats(22.45, 22.85),
    st.floats(113.75, 114.6),
    st.floats(0.0, 2000.0),
)
def test_lookup_anywhere_equals_brute_force(city, lat, lon, r):
    idx, brute = city
    same(idx.nearby(lat, lon, r), brute(lat, lon, r))


@settings(max_examples=60, deadline=None)
@given(st.floats(0.0, 360.0), st.floats(0.0, 150.0), st.floats(0.0, 150.0))
def test_points_right_at_the_radius(bearing, dist, radius):
    # An enterprise at a known distance is found exactly when it is inside.
    lat2, lon2 = destination(*FUTIAN, dist, bearing)
    idx = EnterpriseIndex.from_arrays(["X"], [lat2], [lon2])
    got = idx.nearby(*FUTIAN, radius)
    if dist < radius - 1e-6:
        assert [g[0] for g in got] == ["X"]
    elif dist > radius + 1e-6:
        assert got == []


def test_near_a_pentagon():
    # Res-11 pentagon cell: grid disks around it have one cell fewer per ring.
    pent = h3.get_pentagons(ENTERPRISE_RES)[0]
    lat, lon = h3.cell_to_latlng(pent)
    rng = np.random.default_rng(3)
    pts = [destination(lat, lon, float(d), float(b)) for d, b in zip(rng.uniform(0, 300, 200), rng.uniform(0, 360, 200))]
    ids = [f"P{i}" for i in range(len(pts))]
    idx = EnterpriseIndex.from_arrays(ids, [p[0] for p in pts], [p[1] for p in pts])
    brute = BruteNearby(ids, [p[0] for p in pts], [p[1] for p in pts])
    for r in (30.0, 100.0, 250.0):
        same(idx.nearby(lat, lon, r), brute(lat, lon, r))


def test_nearby_many_equals_nearby(city):
    idx, _ = city
    rng = np.random.default_rng(9)
    lats = FUTIAN[0] + rng.normal(0, 0.002, 400)
    lons = FUTIAN[1] + rng.normal(0, 0.002, 400)
    radii = rng.uniform(0, 150, 400)
    many = idx.nearby_many(lats, lons, radii)
    for lat, lon, r, got in zip(lats, lons, radii, many):
        same(got, idx.nearby(float(lat), float(lon), float(r)))
    # One radius for all, and invalid points answer [].
    many = idx.nearby_many([FUTIAN[0], np.nan], [FUTIAN[1], 0.0], 100.0)
    same(many[0], idx.nearby(*FUTIAN, 100.0))
    assert many[1] == []
