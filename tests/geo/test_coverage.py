"""Next due dates, overdue flags, coverage shares and the overdue list."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.coverage import (
    DAY_S,
    DEFAULT_INTERVALS_D,
    DUE_AT_ONCE,
    coverage_by,
    coverage_pct,
    is_overdue,
    next_due,
    next_due_array,
    overdue_by_area,
    overdue_mask,
)
from tests.close import at

NOW = 1_714_500_000.0


def test_red_unvisited_for_31_days_is_overdue():
    assert is_overdue(NOW - 31 * DAY_S, "red", NOW)
    assert not is_overdue(NOW - 29 * DAY_S, "red", NOW)
    # Exactly at the interval it is due, not yet overdue.
    assert not is_overdue(NOW - 30 * DAY_S, "red", NOW)


@pytest.mark.parametrize("risk,days", list(DEFAULT_INTERVALS_D.items()))
def test_default_intervals(risk, days):
    assert next_due(NOW, risk) == NOW + days * DAY_S
    assert is_overdue(NOW - (days + 1) * DAY_S, risk, NOW)
    assert not is_overdue(NOW - (days - 1) * DAY_S, risk, NOW)


def test_intervals_are_configurable():
    intervals = {"red": 7, "orange": 30, "yellow": 60, "blue": 90}
    assert next_due(NOW, "red", intervals) == NOW + 7 * DAY_S
    assert is_overdue(NOW - 8 * DAY_S, "red", NOW, intervals)


def test_never_inspected():
    # Due one interval after registration; at once when that is unknown too.
    assert next_due(None, "orange", created_at=NOW) == NOW + 90 * DAY_S
    assert next_due(None, "orange") == DUE_AT_ONCE
    assert next_due(float("nan"), "orange") == DUE_AT_ONCE
    assert is_overdue(None, "blue", NOW)


def test_unknown_colour_is_an_error():
    with pytest.raises(ValueError, match="green"):
        next_due(NOW, "green")
    with pytest.raises(ValueError, match="green"):
        overdue_mask([NOW], ["green"], NOW)


def test_overdue_mask_vectorised():
    last = np.array([NOW - 31 * DAY_S, NOW - 29 * DAY_S, np.nan, NOW - 400 * DAY_S, np.nan])
    risks = np.array(["red", "red", "blue", "blue", "yellow"], dtype=object)
    created = np.array([np.nan, np.nan, NOW - 10 * DAY_S, np.nan, NOW - 200 * DAY_S])
    assert overdue_mask(last, risks, NOW).tolist() == [True, False, True, True, True]
    assert overdue_mask(last, risks, NOW, created_at=created).tolist() == [True, False, False, True, True]
    assert overdue_mask([], [], NOW).tolist() == []


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(NOW - 800 * DAY_S, NOW)),
            st.sampled_from(sorted(DEFAULT_INTERVALS_D)),
            st.one_of(st.none(), st.floats(NOW - 800 * DAY_S, NOW)),
        ),
        max_size=40,
    )
)
def test_vectorised_equals_scalar(rows):
    last = np.array([np.nan if r[0] is None else r[0] for r in rows], dtype=float)
    created = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
    risks = [r[1] for r in rows]
    due = next_due_array(last, risks, created_at=created)
    for (lst, risk, cr), d in zip(rows, due.tolist()):
        assert d == next_due(lst, risk, created_at=cr)
    assert overdue_mask(last, risks, NOW, created_at=created).tolist() == [
        is_overdue(lst, risk, NOW, created_at=cr) for lst, risk, cr in rows
    ]


def test_coverage_by_colour_and_street():
    risks = ["red", "red", "red", "blue", "blue"]
    streets = ["S1", "S1", None, "S2", "S2"]
    in_interval = [True, False, True, True, True]
    by_colour = coverage_by(risks, in_interval)
    assert by_colour == {"red": pytest.approx(200 / 3), "blue": 100.0}
    assert coverage_by(streets, in_interval) == {"S1": 50.0, None: 100.0, "S2": 100.0}
    assert coverage_by(np.array(streets, dtype=object), in_interval)["S1"] == 50.0
    assert coverage_by([], []) == {}
    assert coverage_pct(in_interval) == 80.0
    assert coverage_pct([]) == 100.0
    with pytest.raises(ValueError):
        coverage_by(["a"], [True, False])


def test_overdue_by_area_grouped_and_ordered():
    ids = ["E1", "E2", "E3", "E4", "E5"]
    risks = ["red", "blue", "red", "orange", "red"]
    streets = ["S1", "S1", "S1", "S2", None]
    grids = ["G1", "G1", "G2", "G3", None]
    last = [NOW - 40 * DAY_S, NOW - 400 * DAY_S, NOW - 10 * DAY_S, NOW - 100 * DAY_S, np.nan]
    got = overdue_by_area(ids, risks, streets, grids, last, NOW)
    assert set(got) == {"S1", "S2", None}
    # Longest overdue first: E2 (blue) is 35 days over, E1 (red) 10.
    g1 = got["S1"]["G1"]
    assert [o.enterprise_id for o in g1] == ["E2", "E1"]
    assert [o.overdue_s for o in g1] == [pytest.approx(35 * DAY_S), pytest.approx(10 * DAY_S)]
    assert g1[1].risk == "red" and g1[1].due_at == at(NOW - 10 * DAY_S)
    assert "G2" not in got["S1"]  # E3 is within interval
    assert got["S2"]["G3"][0].overdue_s == pytest.approx(10 * DAY_S)
    assert got[None][None][0].due_at == DUE_AT_ONCE
