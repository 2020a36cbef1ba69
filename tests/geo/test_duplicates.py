"""Duplicate visits, overlap now, and approach warnings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.duplicates import (
    ActiveStay,
    Approach,
    classify,
    detect_approach,
    detect_overlap_now,
    unit_key,
)
from geo.index import EnterpriseIndex
from geo.types import Ping, Visit
from geo.visits import VisitParams, advance, current_stays, detect_visits, recent_pings
from tests.geo.helpers import destination

DAY = 86400.0
WEEK = 7 * DAY
T0 = 1_714_500_000.0
E = (22.5431, 114.0579)


def v(id, unit, start, inspector=None, enterprise="E", dwell=900.0):
    return Visit(enterprise, inspector or f"I-{unit}", unit, start, start + dwell, id=id)


# --- classify ---------------------------------------------------------------------------


def test_two_units_at_one_enterprise_on_the_same_day_is_a_duplicate():
    first = v(1, "U1", T0)
    second = v(2, "U2", T0 + 3 * 3600)
    assert classify(second, [first], WEEK) == (1, None)
    # The first one is not a duplicate of the second.
    assert classify(first, [second], WEEK) == (None, None)


def test_same_unit_is_a_repeat_not_a_duplicate():
    first = v(1, "U1", T0, inspector="I1")
    again = v(2, "U1", T0 + 2 * DAY, inspector="I9")
    assert classify(again, [first], WEEK) == (None, 1)


def test_window_and_other_enterprises():
    old = v(1, "U1", T0 - WEEK - 1)
    elsewhere = v(2, "U1", T0 - DAY, enterprise="X")
    edge = v(3, "U3", T0 - WEEK)
    new = v(4, "U2", T0)
    assert classify(new, [old, elsewhere], WEEK) == (None, None)
    assert classify(new, [old, elsewhere, edge], WEEK) == (3, None)


def test_most_recent_earlier_visit_is_named_and_both_kinds_at_once():
    visits = [v(1, "U1", T0), v(2, "U3", T0 + DAY), v(3, "U2", T0 + 2 * DAY), v(4, "U2", T0 + 3 * DAY)]
    new = v(5, "U2", T0 + 4 * DAY)
    assert classify(new, visits, WEEK) == (2, 4)
    # Later visits and the visit itself are ignored.
    assert classify(visits[1], visits + [new], WEEK) == (1, None)


def test_simultaneous_visits_exactly_one_is_the_duplicate():
    a = v(1, "U1", T0, inspector="IA")
    b = v(2, "U2", T0, inspector="IB")
    assert classify(a, [b], WEEK) == (None, None)
    assert classify(b, [a], WEEK) == (1, None)


def test_unknown_units_count_per_inspector():
    a = Visit("E", "I1", None, T0, T0 + 900, id=1)
    b = Visit("E", "I2", None, T0 + 100, T0 + 900, id=2)
    c = Visit("E", "I1", None, T0 + DAY, T0 + DAY + 900, id=3)
    assert classify(b, [a], WEEK) == (1, None)
    assert classify(c, [a, b], WEEK) == (2, 1)
    assert unit_key(None, "I1") == "inspector:I1" and unit_key("U1", "I1") == "U1"


def test_a_second_row_of_the_same_stay_is_not_a_repeat():
    a = Visit("E", "I1", "U1", T0, T0 + 900, id=1)
    a2 = Visit("E", "I1", "U1", T0, T0 + 1200, id=2)
    assert classify(a2, [a], WEEK) == (None, None)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["U1", "U2", "U3"]), st.floats(0, 20 * DAY)), min_size=1, max_size=12))
def test_classify_agrees_with_a_plain_definition(rows):
    visits = [v(i, unit, T0 + start) for i, (unit, start) in enumerate(rows)]
    for new in visits:
        dup, rep = classify(new, visits, WEEK)
        earlier = [
            e
            for e in visits
            if (e.start_ts, e.inspector_id, str(e.id)) < (new.start_ts, new.inspector_id, str(new.id))
            and new.start_ts - e.start_ts <= WEEK
            # one inspector starting twice at one instant is one stay recorded twice
            and not (e.inspector_id == new.inspector_id and e.start_ts == new.start_ts)
        ]
        others = [e for e in earlier if e.unit_id != new.unit_id]
        same = [e for e in earlier if e.unit_id == new.unit_id]
        assert (dup is None) == (not others)
        assert (rep is None) == (not same)
        if dup is not None:
            assert max(e.start_ts for e in others) == next(e for e in visits if e.id == dup).start_ts


# --- overlap now -------------------------------------------------------------------------


def test_two_units_at_the_same_enterprise_now():
    stays = [("I1", "U1", "E", T0), ("I2", "U2", "E", T0 + 120), ("I3", "U1", "X", T0)]
    (o,) = detect_overlap_now(stays)
    assert o.enterprise_id == "E" and o.since_ts == T0 + 120
    assert o.inspector_ids == ("I1", "I2") and o.unit_ids == ("U1", "U2")


def test_same_unit_together_is_no_overlap_and_three_units_one_event():
    assert detect_overlap_now([("I1", "U1", "E", T0), ("I2", "U1", "E", T0 + 5)]) == []
    stays = [ActiveStay("I3", "U3", "E", T0 + 50), ActiveStay("I1", "U1", "E", T0), ActiveStay("I2", "U1", "E", T0 + 10)]
    (o,) = detect_overlap_now(stays)
    assert o.since_ts == T0 + 50 and o.unit_ids == ("U1", "U3")
    assert detect_overlap_now([]) == []


def test_overlap_from_visit_states():
    # Two inspectors' visit states feed the overlap rule through current_stays.
    index = EnterpriseIndex.from_arrays(["E"], [E[0]], [E[1]])
    states = {}
    for iid, offset in (("I1", 0), ("I2", 300)):
        pings = [Ping(iid, T0 + offset + 30 * i, *E) for i in range(25)]
        states[iid], _ = advance(None, pings, index.nearby, VisitParams())
    units = {"I1": "U1", "I2": "U2"}
    stays = [(iid, units[iid], e, s) for iid, st_ in states.items() for e, s, _ in current_stays(st_)]
    (o,) = detect_overlap_now(stays)
    assert o.enterprise_id == "E" and o.since_ts == T0 + 300


# --- approach -----------------------------------------------------------------------------


@pytest.fixture
def visited():
    return EnterpriseIndex.from_arrays(["E"], [E[0]], [E[1]]).nearby


def walk(start_m, end_m, n=4, bearing=0.0, t0=T0, dt=30.0, iid="I1"):
    """Fixes on a line through E: from start_m to end_m away (bearing from E)."""
    ds = np.linspace(start_m, end_m, n)
    return [Ping(iid, t0 + i * dt, *destination(*E, float(d), bearing)) for i, d in enumerate(ds)]


def test_closing_in_within_300_m_is_an_approach(visited):
    (a,) = detect_approach(walk(420, 250), visited)
    assert isinstance(a, Approach)
    assert a.enterprise_id == "E" and a.inspector_id == "I1"
    assert a.distance_m == pytest.approx(250, abs=0.5)
    # Judged on the last 3 of the 4 fixes (420, 363.3, 306.7, 250 m).
    assert a.closing_m == pytest.approx(363.33 - 250, abs=0.5)
    assert a.closing_speed_mps > 0


def test_walking_away_or_too_far_is_not(visited):
    assert detect_approach(walk(250, 420), visited) == []
    assert detect_approach(walk(700, 350), visited) == []  # still outside 300 m


def test_standing_still_with_jitter_is_not(visited):
    rng = np.random.default_rng(3)
    base = 200.0
    pings = [Ping("I1", T0 + 30 * i, *destination(*E, base - 3 * i + float(rng.normal(0, 2)), 10.0)) for i in range(4)]
    # Creeping closer by a few metres is jitter, not an approach.
    assert detect_approach(pings, visited) == []


def test_too_few_or_stale_fixes(visited):
    assert detect_approach(walk(400, 200, n=2), visited) == []
    stale = walk(400, 200, n=3, dt=400.0)  # spans 800 s > 600 s
    assert detect_approach(stale, visited) == []
    assert detect_approach([], visited) == []


def test_order_of_fixes_does_not_matter(visited):
    pings = walk(400, 200)
    assert detect_approach(list(reversed(pings)), visited) == detect_approach(pings, visited)


def test_approach_from_recent_pings_of_a_visit_state(visited):
    index = EnterpriseIndex.from_arrays(["Z"], [0.0], [0.0])  # nothing near: no visits
    state, _ = advance(None, walk(500, 150, n=6), index.nearby, VisitParams())
    (a,) = detect_approach(recent_pings(state), visited)
    assert a.distance_m == pytest.approx(150, abs=0.5)


def test_visits_and_duplicates_end_to_end():
    # Two units inspect E on the same day: the second visit is a duplicate.
    index = EnterpriseIndex.from_arrays(["E"], [E[0]], [E[1]])
    pings = [Ping("I1", T0 + 30 * i, *E) for i in range(25)] + [
        Ping("I2", T0 + 4 * 3600 + 30 * i, *E) for i in range(25)
    ]
    units = {"I1": "U1", "I2": "U2"}
    visits = [
        Visit(x.enterprise_id, x.inspector_id, x.unit_id, x.start_ts, x.end_ts, id=i)
        for i, x in enumerate(detect_visits(pings, index, unit_of=units.get))
    ]
    assert len(visits) == 2
    assert classify(visits[1], visits[:1]) == (0, None)
