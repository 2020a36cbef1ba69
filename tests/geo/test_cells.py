"""H3 cells: known values in h3-py's style, and the kernels agree with h3-py."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.cells import (
    ENTERPRISE_RES,
    HEAT_RESOLUTIONS,
    cell_to_parent,
    cells_str_to_u64,
    cells_u64_resolution,
    cells_u64_to_parent,
    cells_u64_to_str,
    is_valid_cell,
    latlng_to_cell,
    points_to_cells_u64,
    valid_point_mask,
)

# Known values from h3-py's own tests (uber/h3-py, tests/test_h3.py).
H3PY_POINT = (37.3615593, -122.0553238)
H3PY_CELL_RES5 = "85283473fffffff"
H3PY_CHILD = "89283082813ffff"
H3PY_PARENT_RES8 = "8828308281fffff"


def test_latlng_to_cell_known_value():
    assert latlng_to_cell(*H3PY_POINT, 5) == H3PY_CELL_RES5
    assert is_valid_cell(H3PY_CELL_RES5)


def test_cell_to_parent_known_value():
    assert cell_to_parent(H3PY_CHILD, 8) == H3PY_PARENT_RES8
    parent = cells_u64_to_parent(cells_str_to_u64([H3PY_CHILD]), 8)
    assert cells_u64_to_str(parent) == [H3PY_PARENT_RES8]


def test_vectorised_kernel_known_value():
    cells = points_to_cells_u64([H3PY_POINT[0]], [H3PY_POINT[1]], 5)
    assert cells.dtype == np.uint64
    assert cells_u64_to_str(cells) == [H3PY_CELL_RES5]


def test_shenzhen_cell_at_every_heat_resolution():
    # A fixed Shenzhen point (Futian), checked against h3-py and by hex prefix:
    # the resolution is the second hex digit of the index.
    lat, lon = 22.543847, 113.912316
    for res in HEAT_RESOLUTIONS + (ENTERPRISE_RES,):
        cell = latlng_to_cell(lat, lon, res)
        assert cell == h3.latlng_to_cell(lat, lon, res)
        assert int(cell[1], 16) == res
    assert latlng_to_cell(lat, lon, 9) == "89411caf52bffff"


def test_str_u64_round_trip():
    cells = [H3PY_CELL_RES5, H3PY_CHILD, H3PY_PARENT_RES8]
    u = cells_str_to_u64(cells)
    assert u.tolist() == [h3.str_to_int(c) for c in cells]
    assert cells_u64_to_str(u) == cells
    assert cells_u64_resolution(u).tolist() == [5, 9, 8]


def test_empty_inputs():
    assert points_to_cells_u64([], [], 9).size == 0
    assert cells_u64_to_str(np.empty(0, dtype=np.uint64)) == []
    assert cells_u64_to_parent(np.empty(0, dtype=np.uint64), 7).size == 0


def test_valid_point_mask():
    lats = [22.5, np.nan, 91.0, -90.0, 22.5]
    lons = [114.0, 114.0, 114.0, 180.0, np.inf]
    assert valid_point_mask(lats, lons).tolist() == [True, False, False, True, False]


def test_resolution_choices_are_ordered():
    assert list(HEAT_RESOLUTIONS) == sorted(HEAT_RESOLUTIONS)
    assert HEAT_RESOLUTIONS[-1] < ENTERPRISE_RES


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-85, 85, allow_nan=False), st.floats(-180, 180, allow_nan=False)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 15),
)
def test_kernel_agrees_with_h3py(points, res):
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    got = cells_u64_to_str(points_to_cells_u64(lats, lons, res))
    assert got == [h3.latlng_to_cell(a, o, res) for a, o in points]


@settings(max_examples=50, deadline=None)
@given(st.floats(18, 53), st.floats(73, 135), st.integers(1, 15), st.data())
def test_parent_kernel_agrees_with_h3py(lat, lon, res, data):
    parent_res = data.draw(st.integers(0, res))
    cell = h3.latlng_to_cell(lat, lon, res)
    got = cells_u64_to_str(cells_u64_to_parent(cells_str_to_u64([cell]), parent_res))
    assert got == [h3.cell_to_parent(cell, parent_res)]


def test_kernel_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        points_to_cells_u64([1.0, 2.0], [1.0], 9)
