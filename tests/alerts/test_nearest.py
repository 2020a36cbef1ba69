"""Nearest available inspectors against hand-computed great-circle distances."""

from __future__ import annotations

import math

import h3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.nearest import (
    DETOUR_FACTOR,
    NEAREST_RES,
    START_DELAY_S,
    URBAN_SPEED_MPS,
    Candidate,
    eta_s,
    rank_nearest,
)

R = 6371008.8  # mean Earth radius, m (IUGG)


def hav_m(lat1, lon1, lat2, lon2):
    """The haversine formula, written out here independently of geo.coords."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * R * math.asin(math.sqrt(a))


def test_hand_formula_known_values():
    # 0.01 degree of latitude is R * pi / 180 / 100 = 1111.95 m, anywhere.
    assert hav_m(22.0, 114.0, 22.01, 114.0) == pytest.approx(1111.9508, abs=1e-3)
    # 0.01 degree of longitude at 22.5 N is shorter by cos(22.5 deg): ~1027.3 m.
    assert hav_m(22.5, 114.0, 22.5, 114.01) == pytest.approx(1111.9508 * math.cos(math.radians(22.5)), rel=1e-6)


# Futian, Shenzhen: a restaurant with a gas alarm, and the inspectors around it.
TARGET = (22.5431, 114.0579)
TEAM = [
    Candidate("I01", 22.5431, 114.0629, unit_id="U1", name="李伟"),  # 513 m east
    Candidate("I02", 22.5481, 114.0579, unit_id="U1", name="王芳"),  # 556 m north
    Candidate("I03", 22.5391, 114.0539, unit_id="U2"),  # 605 m south-west
    Candidate("I04", 22.5431, 114.0479, online=False),  # ~1 km west, but offline
    Candidate("I05", 22.5401, 114.0579, busy=True),  # ~334 m south, but on a task
    Candidate("I06", 22.5531, 114.0679),  # 1514 m north-east
    Candidate("I07", 22.5231, 114.0579),  # 2224 m south
    Candidate("I08", 22.5731, 114.0879),  # ~4.5 km north-east
    Candidate("I09", 22.6431, 114.1579),  # ~15 km
    Candidate("I10", 22.5436, 114.0579),  # ~56 m north: the nearest
]


def test_ranking_matches_hand_computed_distances():
    got = rank_nearest(*TARGET, TEAM, k=5)
    available = [c for c in TEAM if c.online and not c.busy]
    expected = sorted(available, key=lambda c: hav_m(*TARGET, c.lat, c.lon))[:5]
    assert [s.id for s in got] == [c.id for c in expected] == ["I10", "I01", "I02", "I03", "I06"]
    for s, c in zip(got, expected):
        d = hav_m(*TARGET, c.lat, c.lon)
        assert s.distance_m == pytest.approx(d, rel=1e-9)
        assert s.eta_s == pytest.approx(START_DELAY_S + d * DETOUR_FACTOR / URBAN_SPEED_MPS)
        assert (s.name, s.unit_id, s.lat, s.lon) == (c.name, c.unit_id, c.lat, c.lon)
    # Rounded values, checkable by hand on the flat-Earth approximation
    # dx = dlon * 111195 m * cos(lat), dy = dlat * 111195 m (errors < 1 m here):
    # I10 0.0005 N -> 56; I01 0.005 E -> 513; I02 0.005 N -> 556;
    # I03 0.004 S 0.004 W -> 605; I06 0.01 N 0.01 E -> 1514.
    assert [round(s.distance_m) for s in got] == [56, 513, 556, 605, 1514]
    assert got[0].ring == 0


def test_eta_formula():
    assert eta_s(1000.0) == pytest.approx(60 + 1000 * 1.4 / 5.0)  # 340 s: under six minutes for 1 km
    assert eta_s(0.0) == START_DELAY_S


def test_offline_and_busy_are_never_suggested():
    got = rank_nearest(*TARGET, TEAM, k=20)
    ids = [s.id for s in got]
    assert "I04" not in ids and "I05" not in ids
    assert len(ids) == 8


def test_fewer_than_k_and_max_rings():
    got = rank_nearest(*TARGET, TEAM, k=5, max_rings=1)  # ~1.5 km at res 8
    assert [s.id for s in got] == ["I10", "I01", "I02", "I03"]
    assert rank_nearest(*TARGET, [], k=5) == []
    assert rank_nearest(*TARGET, TEAM, k=0) == []


def test_ties_go_by_id():
    a = Candidate("B", TARGET[0] + 0.001, TARGET[1])
    b = Candidate("A", TARGET[0] - 0.001, TARGET[1])  # same distance, mirrored
    got = rank_nearest(*TARGET, [a, b], k=2)
    assert got[0].distance_m == pytest.approx(got[1].distance_m, rel=1e-6)
    assert [s.id for s in got] in (["A", "B"], ["B", "A"])
    if got[0].distance_m == got[1].distance_m:
        assert [s.id for s in got] == ["A", "B"]


def test_the_next_ring_can_hold_a_nearer_inspector():
    """Why the search takes one more ring: a point near the corner of a ring-2
    cell is nearer than one at the far side of a ring-1 cell."""
    origin = h3.latlng_to_cell(*TARGET, NEAREST_RES)
    o_lat, o_lon = h3.cell_to_latlng(origin)
    # Far side of a ring-1 neighbour: its centre pushed outward by 90 % of the way to its far vertex.
    n1 = sorted(h3.grid_ring(origin, 1))[0]
    c_lat, c_lon = h3.cell_to_latlng(n1)
    far = max(h3.cell_to_boundary(n1), key=lambda v: hav_m(o_lat, o_lon, *v))
    a = (c_lat + 0.9 * (far[0] - c_lat), c_lon + 0.9 * (far[1] - c_lon))
    assert h3.latlng_to_cell(*a, NEAREST_RES) == n1
    # Nearest vertex of a ring-2 cell, nudged 3 % into that cell.
    best = None
    for n2 in h3.grid_ring(origin, 2):
        c2 = h3.cell_to_latlng(n2)
        v = min(h3.cell_to_boundary(n2), key=lambda v: hav_m(o_lat, o_lon, *v))
        p = (v[0] + 0.03 * (c2[0] - v[0]), v[1] + 0.03 * (c2[1] - v[1]))
        if h3.latlng_to_cell(*p, NEAREST_RES) == n2 and (best is None or hav_m(o_lat, o_lon, *p) < best[0]):
            best = (hav_m(o_lat, o_lon, *p), p)
    b = best[1]
    assert hav_m(o_lat, o_lon, *b) < hav_m(o_lat, o_lon, *a)
    team = [Candidate("ring1", *a), Candidate("ring2", *b)]
    got = rank_nearest(o_lat, o_lon, team, k=1)
    assert [s.id for s in got] == ["ring2"] and got[0].ring == 2
    assert [s.id for s in rank_nearest(o_lat, o_lon, team, k=1, max_rings=1)] == ["ring1"]


points = st.tuples(st.floats(-0.08, 0.08), st.floats(-0.08, 0.08), st.booleans(), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(points, max_size=40), st.integers(1, 8), st.floats(-0.02, 0.02), st.floats(-0.02, 0.02))
def test_property_same_as_brute_force(offsets, k, tdlat, tdlon):
    t_lat, t_lon = TARGET[0] + tdlat, TARGET[1] + tdlon
    team = [Candidate(f"I{i:03d}", TARGET[0] + dlat, TARGET[1] + dlon, online=on, busy=busy)
            for i, (dlat, dlon, on, busy) in enumerate(offsets)]
    got = rank_nearest(t_lat, t_lon, team, k=k)
    brute = sorted(((hav_m(t_lat, t_lon, c.lat, c.lon), c.id) for c in team if c.online and not c.busy))[:k]
    assert [s.id for s in got] == [i for _, i in brute]
    for s, (d, _) in zip(got, brute):
        assert s.distance_m == pytest.approx(d, rel=1e-9, abs=1e-6)


def test_bad_target():
    with pytest.raises(ValueError):
        rank_nearest(float("nan"), 114.0, TEAM)
