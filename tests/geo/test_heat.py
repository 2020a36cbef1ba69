"""Heat binning, rollups, time buckets and the coverage-gap layer."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.heat import (
    HOUR_S,
    bin_points,
    bin_points_by,
    bin_points_multi,
    bin_weights,
    counts_to_rows,
    gap_cells,
    hour_bucket,
    hour_buckets_of,
    local_day_start,
    merge_counts,
    point_cells,
    risk_weights,
    rollup,
    rollups,
    subtract_counts,
    time_bucket,
    today_buckets,
    top_cells,
    window_buckets,
)

SHANGHAI = timezone(timedelta(hours=8))


def city_points(n: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lats = np.r_[rng.uniform(22.45, 22.85, n // 2), 22.54 + rng.normal(0, 0.003, n - n // 2)]
    lons = np.r_[rng.uniform(113.75, 114.6, n // 2), 114.05 + rng.normal(0, 0.003, n - n // 2)]
    return lats, lons


def reference_bins(lats, lons, res) -> dict[str, int]:
    return dict(Counter(h3.latlng_to_cell(a, o, res) for a, o in zip(lats.tolist(), lons.tolist())))


# --- binning -----------------------------------------------------------------------


def test_known_value_bin():
    # h3-py's known point (uber/h3-py tests): three pings land in '85283473fffffff'.
    assert bin_points([37.3615593] * 3, [-122.0553238] * 3, 5) == {"85283473fffffff": 3}


@pytest.mark.parametrize("res", [7, 8, 9, 11])
def test_bin_points_equals_a_python_loop(res):
    lats, lons = city_points(3000)
    got = bin_points(lats, lons, res)
    assert got == reference_bins(lats, lons, res)
    assert sum(got.values()) == 3000
    assert all(isinstance(v, int) for v in got.values())


def test_invalid_points_are_skipped_not_fatal():
    lats = np.array([22.54, np.nan, 95.0, 22.54, np.inf])
    lons = np.array([114.05, 114.05, 114.05, 114.05, 114.05])
    assert bin_points(lats, lons, 9) == {h3.latlng_to_cell(22.54, 114.05, 9): 2}
    assert bin_points([], [], 9) == {}


def test_bin_points_multi_is_the_rollup_of_the_finest():
    lats, lons = city_points(2000, seed=3)
    multi = bin_points_multi(lats, lons, (7, 8, 9))
    fine = bin_points(lats, lons, 9)
    assert multi[9] == fine
    for res in (7, 8):
        assert multi[res] == rollup(fine, res)
    assert bin_points_multi(lats, lons, ()) == {}


def test_bin_points_by_group():
    lats, lons = city_points(1500, seed=19)
    rng = np.random.default_rng(19)
    units = rng.choice(np.array(["U1", "U2", None], dtype=object), lats.size).tolist()
    lats[3] = np.nan
    got = bin_points_by(units, lats, lons, 8)
    for unit in ("U1", "U2", None):
        mask = np.array([u == unit for u in units])
        assert got[unit] == bin_points(lats[mask], lons[mask], 8)
    assert bin_points_by([], [], [], 8) == {}
    with pytest.raises(ValueError):
        bin_points_by(["U1"], [1.0, 2.0], [1.0, 2.0], 8)


def test_bin_weights():
    lats = [22.54, 22.54, 22.70]
    lons = [114.05, 114.05, 114.30]
    got = bin_weights(lats, lons, [1.5, 2.0, 4.0], 8)
    assert got == {h3.latlng_to_cell(22.54, 114.05, 8): 3.5, h3.latlng_to_cell(22.70, 114.30, 8): 4.0}
    with pytest.raises(ValueError):
        bin_weights(lats, lons, [1.0], 8)


def test_point_cells_live_path_matches_batch():
    # Incrementing per ping (live) gives the history rebuild's counts.
    lats, lons = city_points(1000, seed=17)
    live: dict[int, Counter] = {res: Counter() for res in (7, 8, 9)}
    for lat, lon in zip(lats.tolist(), lons.tolist()):
        for res, cell in point_cells(lat, lon).items():
            live[res][cell] += 1
    assert {res: dict(c) for res, c in live.items()} == bin_points_multi(lats, lons)


# --- rollups ----------------------------------------------------------------------------


def test_rollup_known_value():
    # h3-py's known parent: 89283082813ffff -> 8828308281fffff.
    assert rollup({"89283082813ffff": 2, "89283082817ffff": 3}, 8) == {"8828308281fffff": 5}
    assert rollup({"89283082813ffff": 2}, 9) == {"89283082813ffff": 2}


def test_rollup_equals_per_cell_parent_loop():
    lats, lons = city_points(2000, seed=11)
    fine = bin_points(lats, lons, 9)
    for res in (5, 7, 8, 9):
        expected: Counter = Counter()
        for cell, n in fine.items():
            expected[h3.cell_to_parent(cell, res)] += n
        assert rollup(fine, res) == dict(expected)
    assert rollups(fine, (7, 8)) == {7: rollup(fine, 7), 8: rollup(fine, 8)}


def test_rollup_is_close_to_direct_binning():
    # H3 children do not tile their parent exactly: a few percent of points
    # land in a neighbour of the cell that geometrically holds them.
    lats, lons = city_points(20000, seed=13)
    fine = bin_points(lats, lons, 9)
    for res, share in ((8, 0.06), (7, 0.03)):
        direct, rolled = bin_points(lats, lons, res), rollup(fine, res)
        moved = sum(abs(direct.get(c, 0) - rolled.get(c, 0)) for c in set(direct) | set(rolled)) / 2
        assert moved / 20000 < share
        assert sum(rolled.values()) == sum(direct.values()) == 20000


def test_rollup_mixed_resolutions_and_floats():
    c9 = h3.latlng_to_cell(22.54, 114.05, 9)
    c8 = h3.cell_to_parent(c9, 8)
    assert rollup({c9: 1.5, c8: 2.0}, 7) == {h3.cell_to_parent(c9, 7): 3.5}
    assert rollup({}, 7) == {}


def test_rollup_refuses_coarser_cells():
    c7 = h3.latlng_to_cell(22.54, 114.05, 7)
    with pytest.raises(ValueError, match="coarser"):
        rollup({c7: 1}, 8)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(bin_points(*city_points(300, seed=5), 9))), st.integers(1, 1000)))
def test_rollup_preserves_totals(counts):
    for res in (7, 8):
        assert sum(rollup(counts, res).values()) == sum(counts.values())


# --- merging ------------------------------------------------------------------------------


def test_merge_and_subtract():
    a = {"x": 1, "y": 2}
    b = {"y": 3, "z": 4}
    assert merge_counts(a, b) == {"x": 1, "y": 5, "z": 4}
    assert merge_counts([a, b, a]) == {"x": 2, "y": 7, "z": 4}
    assert merge_counts() == {}
    assert subtract_counts(merge_counts(a, b), a) == b
    assert counts_to_rows({"b": 2, "a": 2, "c": 5}) == [
        {"cell": "c", "count": 5},
        {"cell": "a", "count": 2},
        {"cell": "b", "count": 2},
    ]
    assert top_cells({"b": 2, "a": 2, "c": 5}, 2) == [("c", 5), ("a", 2)]


# --- time buckets -----------------------------------------------------------------------------


def test_hour_bucket_known_values():
    assert hour_bucket(0) == 0
    assert hour_bucket(3599.999) == 0
    assert hour_bucket(3600) == 1
    # 2024-05-01 12:34:56 UTC
    ts = datetime(2024, 5, 1, 12, 34, 56, tzinfo=timezone.utc).timestamp()
    assert hour_bucket(ts) == int(datetime(2024, 5, 1, 12, tzinfo=timezone.utc).timestamp()) // 3600
    assert hour_buckets_of([0, 3600, 7199.5]).tolist() == [0, 1, 1]
    assert time_bucket(125, 60) == 2


def test_window_buckets():
    now = 10 * HOUR_S + 1800  # half past ten (hours since epoch)
    assert list(window_buckets(now, HOUR_S)) == [9, 10]
    assert list(window_buckets(now, 7 * 24 * HOUR_S)) == list(range(10 - 168, 11))
    # (10:00, 11:00]: bucket 10 overlaps it, bucket 9 ends where it starts.
    assert list(window_buckets(11 * HOUR_S, HOUR_S)) == [10, 11]
    assert list(window_buckets(now, 0)) == []
    assert list(window_buckets(now, 300, bucket_s=300)) == [now // 300 - 1, now // 300]


def test_today_is_shanghai_local_day():
    # 2024-05-01 05:00 in Shanghai is 2024-04-30 21:00 UTC: "today" began at
    # Shanghai midnight, 2024-04-30 16:00 UTC.
    now = datetime(2024, 5, 1, 5, 0, tzinfo=SHANGHAI).timestamp()
    midnight = datetime(2024, 5, 1, 0, 0, tzinfo=SHANGHAI).timestamp()
    assert local_day_start(now) == midnight
    assert list(today_buckets(now)) == list(range(hour_bucket(midnight), hour_bucket(now) + 1))
    assert len(today_buckets(now)) == 6


# --- coverage gap -------------------------------------------------------------------------------


def test_risk_weights_from_intervals():
    w = risk_weights({"red": 30, "orange": 90, "yellow": 182, "blue": 365})
    assert w["blue"] == 1.0
    assert w["red"] == pytest.approx(365 / 30)
    assert w["red"] > w["orange"] > w["yellow"] > w["blue"]
    with pytest.raises(ValueError):
        risk_weights({"red": 0})


def test_gap_cells_weighted_by_risk():
    lat, lon = 22.54, 114.05
    cell = h3.latlng_to_cell(lat, lon, 8)
    far = h3.latlng_to_cell(22.70, 114.30, 8)
    got = gap_cells([lat, lat, lat, 22.70], [lon, lon, lon, 114.30], ["red", "red", "blue", "yellow"], 8)
    assert got[cell] == pytest.approx(2 * 365 / 30 + 1.0)
    assert got[far] == pytest.approx(365 / 182)
    # Configured intervals change the weights; explicit weights override.
    assert gap_cells([lat], [lon], ["red"], 8, intervals_d={"red": 73})[cell] == pytest.approx(5.0)
    assert gap_cells([lat], [lon], ["red"], 8, weights={"red": 2.5})[cell] == 2.5
    assert gap_cells([], [], [], 8) == {}


def test_gap_cells_unknown_colour_is_an_error():
    with pytest.raises(ValueError, match="purple"):
        gap_cells([22.54], [114.05], ["purple"], 8)
