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


# --- nearby_many's latitude/longitude grid ------------------------------------------------


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0


@settings(max_examples=60, deadline=None)
@given(st.floats(-89.9, 89.9), st.floats(-180.0, 179.999), st.integers(0, 2**31 - 1))
def test_nearby_many_equals_brute_force_anywhere(lat, lon, seed):
    # Anywhere on the globe: the grid where it applies, the H3 path near the
    # poles and across the antimeridian; the answers must be the same.
    rng = np.random.default_rng(seed)
    pts = [destination(lat, lon, float(d), float(b)) for d, b in zip(rng.uniform(0, 3000, 150), rng.uniform(0, 360, 150))]
    ids = [f"X{i:03d}" for i in range(len(pts))]
    e_lats, e_lons = [p[0] for p in pts], [_wrap(p[1]) for p in pts]
    idx = EnterpriseIndex.from_arrays(ids, e_lats, e_lons)
    brute = BruteNearby(ids, e_lats, e_lons)
    q = [destination(lat, lon, float(d), float(b)) for d, b in zip(rng.uniform(0, 2000, 25), rng.uniform(0, 360, 25))]
    radii = rng.uniform(0, 1500, len(q))
    many = idx.nearby_many([p[0] for p in q], [_wrap(p[1]) for p in q], radii)
    for (qlat, qlon), r, got in zip(q, radii, many):
        expected = brute(qlat, _wrap(qlon), float(r))
        same(got, expected)
        same(got, idx.nearby(qlat, _wrap(qlon), float(r)))


@settings(max_examples=120, deadline=None)
@given(st.floats(-79.0, 79.0), st.sampled_from([0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0]),
       st.floats(0.0, 300.0), st.floats(0.0, 300.0))
def test_nearby_many_right_at_the_radius(lat, bearing, dist, radius):
    # The longitude bound is the delicate one: due east and west, at any latitude
    # the grid serves, an enterprise just inside the radius is found.
    lat2, lon2 = destination(lat, 114.0, dist, bearing)
    idx = EnterpriseIndex.from_arrays(["X"], [lat2], [lon2])
    (got,) = idx.nearby_many([lat], [114.0], radius)
    if dist < radius - 1e-6:
        assert [g[0] for g in got] == ["X"]
    elif dist > radius + 1e-6:
        assert got == []
    if abs(dist - radius) > 1e-6:
        same(got, idx.nearby(lat, 114.0, radius))


def test_nearby_many_at_a_city_scale_equals_nearby(city):
    # Many points over the whole city at once, several rows per radius.
    idx, brute = city
    rng = np.random.default_rng(11)
    lats, lons = rng.uniform(22.45, 22.85, 3000), rng.uniform(113.75, 114.6, 3000)
    radii = rng.uniform(0, 2500, 3000)
    many = idx.nearby_many(lats, lons, radii)
    assert sum(len(m) for m in many) > 3000  # the test looks at real hits
    for lat, lon, r, got in zip(lats[:300], lons[:300], radii[:300], many[:300]):
        same(got, brute(float(lat), float(lon), float(r)))
    for lat, lon, r, got in zip(lats, lons, radii, many):
        assert [g[0] for g in got] == [g[0] for g in idx.nearby(float(lat), float(lon), float(r))]


def points_round_futian(seed: int):
    """500 points round Futian with radii of 0-150 m, and one invalid point last."""
    rng = np.random.default_rng(seed)
    lats = np.r_[FUTIAN[0] + rng.normal(0, 0.002, 500), np.nan]
    lons = np.r_[FUTIAN[1] + rng.normal(0, 0.002, 500), 0.0]
    return lats, lons, rng.uniform(0, 150, 501)


def test_ids_within_many_is_the_set_of_nearby_many(city):
    idx, _ = city
    lats, lons, radii = points_round_futian(13)
    got = idx.ids_within_many(lats, lons, radii)
    assert got[-1] == []
    for ids, hits in zip(got, idx.nearby_many(lats, lons, radii)):
        assert ids == sorted({e for e, _d in hits})
    assert sum(map(len, got)) > 500
    # Ids that are not distinct strings: str, sorted, each once.
    odd = EnterpriseIndex.from_arrays([7, 7, 12], [FUTIAN[0]] * 3, [FUTIAN[1]] * 3)
    assert odd.ids_within_many([FUTIAN[0]], [FUTIAN[1]], 10.0) == [["12", "7"]]


def test_within_many_names_the_nearest_as_nearby_does(city):
    idx, _ = city
    lats, lons, radii = points_round_futian(14)
    at, near = idx.within_many(lats, lons, radii)
    assert at == idx.ids_within_many(lats, lons, radii)
    assert (at[-1], near[-1]) == ([], -1)
    named = 0
    for lat, lon, r, ids, k in zip(lats[:-1], lons[:-1], radii[:-1], at, near):
        hits = idx.nearby(float(lat), float(lon), float(r))
        assert (ids[k] if k >= 0 else None) == (hits[0][0] if hits else None)
        named += k >= 0
    assert named > 100
    # Three firms at one address: the first by id is the nearest, as in nearby.
    odd = EnterpriseIndex.from_arrays([12, 7, 7], [FUTIAN[0]] * 3, [FUTIAN[1]] * 3)
    assert odd.within_many([FUTIAN[0]], [FUTIAN[1]], 10.0) == ([["12", "7"]], [1])
    assert odd.nearby(FUTIAN[0], FUTIAN[1], 10.0)[0][0] == 7
