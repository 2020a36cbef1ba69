"""The hazard lifecycle: the closed loop, send-back, on-site proof, illegal steps, overdue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hazards.lifecycle import (
    LIFECYCLE,
    NotOnSite,
    TransitionNotAllowed,
    deadline_for,
    is_overdue,
    new_hazard,
    on_site_by_gps,
    overdue_level,
    transition,
)
from hazards.model import ACCEPT_METHODS, DAY_S, STATES

DAYS = {"general": 7.0, "major": 30.0}
T0 = 1_780_000_000.0


def _reported(level="general"):
    h, rec = new_hazard("E1", "SC01", level, "inspector", actor="off1", at=T0, finder_id="I1", visit_id=3)
    assert rec.action == "report" and rec.to_state == "reported"
    return h


def test_the_whole_loop_with_a_send_back():
    h = _reported("major")
    h, r = transition(h, "assign", actor="off1", at=T0 + 60, deadline_days=DAYS)
    assert (h.state, h.deadline, r.detail["deadline"]) == ("rectifying", T0 + 60 + 30 * DAY_S, T0 + 60 + 30 * DAY_S)
    h, r = transition(h, "rectify", actor="ent:E1", at=T0 + DAY_S, note="换了减压阀", evidence_photos=2)
    assert h.state == "rectified" and h.rectified_at == T0 + DAY_S
    h, r = transition(h, "reject", actor="off1", at=T0 + 2 * DAY_S, note="软管仍超长")
    assert (h.state, h.send_backs, r.from_state, r.to_state) == ("rectifying", 1, "rectified", "rectifying")
    h, _ = transition(h, "rectify", actor="ent:E1", at=T0 + 3 * DAY_S, note="软管已更换", evidence_photos=1)
    h, r = transition(h, "accept", actor="off1", at=T0 + 4 * DAY_S, method="on_site")
    assert (h.state, h.accept_method, h.accepted_at) == ("accepted", "on_site", T0 + 4 * DAY_S)
    h, r = transition(h, "close", actor="off1", at=T0 + 4 * DAY_S + 5)
    assert (h.state, h.closed_at, r.action) == ("closed", T0 + 4 * DAY_S + 5, "close")


def test_every_pair_not_in_the_table_is_refused():
    actions = {a for _, a in LIFECYCLE}
    for state in STATES:
        for action in actions:
            if (state, action) in LIFECYCLE:
                continue
            h = _reported()
            h = h.__class__(**{**{f: getattr(h, f) for f in h.__slots__}, "state": state})
            with pytest.raises(TransitionNotAllowed):
                transition(h, action, actor="x", at=T0, deadline_days=DAYS, note="n", evidence_photos=1,
                           method="review")


def test_closed_is_final_and_unknown_actions_refused():
    h = _reported()
    with pytest.raises(TransitionNotAllowed):
        transition(h, "close", actor="x", at=T0)
    with pytest.raises(TransitionNotAllowed):
        transition(h, "explode", actor="x", at=T0)


def test_rectify_needs_evidence_and_reject_a_reason():
    h, _ = transition(_reported(), "assign", actor="o", at=T0, deadline_days=DAYS)
    with pytest.raises(ValueError, match="photo"):
        transition(h, "rectify", actor="e", at=T0 + 1, note="done", evidence_photos=0)
    with pytest.raises(ValueError, match="note"):
        transition(h, "rectify", actor="e", at=T0 + 1, note=" ", evidence_photos=1)
    h, _ = transition(h, "rectify", actor="e", at=T0 + 1, note="done", evidence_photos=1)
    with pytest.raises(ValueError, match="reason"):
        transition(h, "reject", actor="o", at=T0 + 2)
    with pytest.raises(ValueError, match="method"):
        transition(h, "accept", actor="o", at=T0 + 2, method="by_phone")


def test_on_site_acceptance_needs_the_gps_proof():
    assert on_site_by_gps(40.0, 100.0, accuracy_m=10.0) is None
    assert "m from the enterprise" in on_site_by_gps(140.0, 100.0, accuracy_m=10.0)
    assert "accuracy" in on_site_by_gps(40.0, 100.0, accuracy_m=150.0)
    assert "old" in on_site_by_gps(40.0, 100.0, fix_age_s=900, max_fix_age_s=600)
    assert "no GPS fix" in on_site_by_gps(None, 100.0)
    h, _ = transition(_reported(), "assign", actor="o", at=T0, deadline_days=DAYS)
    h, _ = transition(h, "rectify", actor="e", at=T0 + 1, note="done", evidence_photos=1)
    with pytest.raises(NotOnSite) as e:
        transition(h, "accept", actor="o", at=T0 + 2, method="on_site", not_on_site="140 m away")
    assert e.value.reason == "not_on_site"
    # By review, the GPS does not matter.
    h2, _ = transition(h, "accept", actor="o", at=T0 + 2, method="review", not_on_site="140 m away")
    assert h2.accept_method == "review"


def test_deadlines_by_level_and_overdue():
    assert deadline_for("general", T0, DAYS) == T0 + 7 * DAY_S
    assert deadline_for("major", T0, DAYS) == T0 + 30 * DAY_S
    h, _ = transition(_reported(), "assign", actor="o", at=T0, deadline_days=DAYS)
    assert not is_overdue(h, T0 + 7 * DAY_S)
    assert is_overdue(h, T0 + 7 * DAY_S + 1)
    assert overdue_level(h, T0 + 8 * DAY_S, 3 * DAY_S) == 1
    assert overdue_level(h, T0 + 11 * DAY_S, 3 * DAY_S) == 2
    h, _ = transition(h, "rectify", actor="e", at=T0 + 20 * DAY_S, note="late", evidence_photos=1)
    assert not is_overdue(h, T0 + 21 * DAY_S)  # waiting on the inspector now
    with pytest.raises(ValueError, match="future"):
        transition(_reported(), "assign", actor="o", at=T0, deadline=T0 - 1)


def test_extending_a_deadline_needs_the_new_one():
    """The hostile-input sweep: assign on a rectifying hazard without a deadline took the
    default from now, which could shorten the deadline it was meant to extend."""
    h, _ = transition(_reported(), "assign", actor="o", at=T0, deadline=T0 + 30 * DAY_S)
    with pytest.raises(ValueError, match="needs the new deadline"):
        transition(h, "assign", actor="o", at=T0 + DAY_S, deadline_days=DAYS)
    h2, rec = transition(h, "assign", actor="o", at=T0 + DAY_S, deadline=T0 + 40 * DAY_S)
    assert h2.deadline == T0 + 40 * DAY_S and rec.action == "extend"


@given(st.lists(st.sampled_from(["assign", "rectify", "accept", "reject", "close"]), max_size=12),
       st.sampled_from(ACCEPT_METHODS))
def test_any_walk_stays_in_the_table(actions, method):
    h = _reported()
    t = T0
    for a in actions:
        t += 100
        try:
            new, rec = transition(h, a, actor="x", at=t, deadline_days=DAYS, note="n", evidence_photos=1,
                                  method=method if a == "accept" else None,
                                  deadline=t + DAY_S if (h.state, a) == ("rectifying", "assign") else None)
        except TransitionNotAllowed:
            assert (h.state, a) not in LIFECYCLE
            continue
        assert LIFECYCLE[(h.state, a)].to == new.state == rec.to_state
        h = new
    assert h.state in STATES
