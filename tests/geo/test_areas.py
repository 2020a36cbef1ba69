"""Point-in-polygon assignment to streets and grids."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.areas import AreaIndex


@pytest.fixture
def two_streets():
    # Two unit squares sharing the border x = 1, and a hole-punched third.
    a = shapely.box(0, 0, 1, 1)
    b = shapely.box(1, 0, 2, 1)
    c = shapely.Polygon(shapely.box(3, 0, 5, 2).exterior.coords, [shapely.box(3.5, 0.5, 4.5, 1.5).exterior.coords])
    return AreaIndex(["A", "B", "C"], [a, b, c])


def test_inside_outside_and_border(two_streets):
    out = two_streets.assign([0.5, 1.5, 1.0, 9.0, 3.2, 4.0], [0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    # On the shared border the first polygon wins; inside a hole is outside.
    assert out.tolist() == ["A", "B", "A", None, "C", None]


def test_nan_and_empty(two_streets):
    assert two_streets.assign([np.nan], [0.5]).tolist() == [None]
    assert two_streets.assign([], []).tolist() == []
    assert len(AreaIndex([], [])) == 0
    assert AreaIndex([], []).assign([0.5], [0.5]).tolist() == [None]


def test_scalar_and_assign_one(two_streets):
    assert two_streets.assign(1.5, 0.5).tolist() == ["B"]
    assert two_streets.assign_one(1.5, 0.5) == "B"
    assert two_streets.assign_one(9.0, 9.0) is None


def test_length_mismatch_is_an_error(two_streets):
    with pytest.raises(ValueError):
        two_streets.assign([0.5, 0.6], [0.5])
    with pytest.raises(ValueError):
        AreaIndex(["A"], [])


def test_multipolygon():
    mp = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)])
    idx = AreaIndex(["M"], [mp])
    assert idx.assign([0.5, 5.5, 3.0], [0.5, 5.5, 3.0]).tolist() == ["M", "M", None]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 7), st.floats(-1, 3)), min_size=1, max_size=50))
def test_matches_a_loop_over_polygons(points):
    polys = [shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0.5, 0.5, 3, 2)]
    idx = AreaIndex(["A", "B", "C"], polys)
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    got = idx.assign(xs, ys).tolist()
    for (x, y), g in zip(points, got):
        pt = shapely.Point(x, y)
        expected = next((i for i, poly in zip("ABC", polys) if poly.intersects(pt)), None)
        assert g == expected
