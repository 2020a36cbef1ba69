"""The lifecycle tables, checked against a hand-written expectation: every
allowed transition does what the table says, every other pair is refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.lifecycle import (
    ACTIONS,
    LIFECYCLES,
    OUTCOMES,
    TYPE_STATES,
    TransitionNotAllowed,
    allowed_actions,
    arrived_by_gps,
    new_alert,
    transition,
)
from alerts.model import ALERT_TYPES, STATES, AlertState, TransitionRecord

T0 = 1_718_000_000.0

# Written out by hand, independently of alerts.lifecycle: (state, action) -> new state.
GAS = {
    ("open", "ack"): "acknowledged",
    ("open", "assign"): "dispatched",
    ("acknowledged", "assign"): "dispatched",
    ("dispatched", "assign"): "dispatched",
    ("on_scene", "assign"): "dispatched",
    ("dispatched", "arrive"): "on_scene",
    ("acknowledged", "resolve"): "resolved",
    ("dispatched", "resolve"): "resolved",
    ("on_scene", "resolve"): "resolved",
    ("resolved", "close"): "closed",
}
NOTICE = {
    ("open", "ack"): "acknowledged",
    ("open", "resolve"): "resolved",
    ("acknowledged", "resolve"): "resolved",
    ("resolved", "close"): "closed",
}
REASSIGNABLE = {
    **NOTICE,
    ("open", "reassign"): "resolved",
    ("acknowledged", "reassign"): "resolved",
}
EXPECTED = {
    "gas_alarm": GAS,
    "sensor_fault": NOTICE,
    "sensor_offline": NOTICE,
    "inspector_offline": NOTICE,
    "overdue_inspection": NOTICE,
    "duplicate_visit": REASSIGNABLE,
    "overlap_now": REASSIGNABLE,
    "approach_warning": REASSIGNABLE,
    "hazard_overdue": NOTICE,
}
ALL_ACTIONS = ("ack", "assign", "reassign", "arrive", "resolve", "close", "escalate", "open", "delete", "")


def alert_in(alert_type: str, state: str, **kw) -> AlertState:
    if state in ("dispatched", "on_scene"):
        kw.setdefault("assignee_id", "I0001")
    return AlertState(id=7, type=alert_type, subject="sensor:S1", severity="warning", state=state,
                      first_seen=T0, last_seen=T0, escalate_at=T0 + 60, **kw)


def args_for(alert_type: str, action: str, assignee: str = "I0002") -> dict:
    if action in ("assign", "reassign"):
        return {"assignee_id": assignee}
    if action == "resolve":
        return {"outcome": OUTCOMES[alert_type][0]}
    return {}


CASES = [(t, s, a) for t in ALERT_TYPES for s in STATES for a in ALL_ACTIONS]


def test_expectation_covers_every_type():
    assert set(EXPECTED) == set(ALERT_TYPES) == set(LIFECYCLES)


@pytest.mark.parametrize("alert_type,state,action", CASES)
def test_every_pair(alert_type, state, action):
    alert = alert_in(alert_type, state)
    expected = EXPECTED[alert_type].get((state, action))
    if expected is None:
        with pytest.raises(TransitionNotAllowed) as exc:
            transition(alert, action, actor="disp1", at=T0 + 10, **args_for(alert_type, action))
        assert (exc.value.alert_type, exc.value.state, exc.value.action) == (alert_type, state, action)
        assert action not in allowed_actions(alert)
        return
    new, rec = transition(alert, action, actor="disp1", at=T0 + 10, note="n", **args_for(alert_type, action))
    assert new.state == expected
    assert rec.to_state == expected and rec.from_state == state
    assert rec.actor == "disp1" and rec.at == T0 + 10 and rec.note == "n"
    assert new.escalate_at is None  # leaving open (or any later step) disarms escalation
    assert action in allowed_actions(alert)
    assert alert.state == state  # the input is untouched (frozen)


@pytest.mark.parametrize("alert_type", ALERT_TYPES)
def test_allowed_actions_match_table(alert_type):
    for state in STATES:
        expected = [a for (s, a) in EXPECTED[alert_type] if s == state]
        assert sorted(allowed_actions(alert_in(alert_type, state))) == sorted(expected)
    assert set(ACTIONS[alert_type]) == {a for (_, a) in EXPECTED[alert_type]}
    assert allowed_actions(alert_in(alert_type, "closed")) == []  # closed is terminal


def test_type_states():
    assert TYPE_STATES["gas_alarm"] == ("open", "acknowledged", "dispatched", "on_scene", "resolved", "closed")
    assert TYPE_STATES["sensor_offline"] == ("open", "acknowledged", "resolved", "closed")


def test_full_gas_lifecycle_with_gps_arrival():
    alert, opened = new_alert("gas_alarm", "sensor:S0001", severity="critical", at=T0,
                              sensor_id="S0001", enterprise_id="E000123", street_id="ST01", grid_id="G0101",
                              peak_lel=35.0, escalate_at=T0 + 60)
    assert opened == TransitionRecord(None, "open", "open", "system", T0)
    assert alert.state == "open" and allowed_actions(alert) == ["ack", "assign"]
    history = [opened]

    alert, rec = transition(alert, "ack", actor="dispatcher:wang", at=T0 + 20)
    history += rec.steps()
    assert alert.state == "acknowledged" and alert.escalate_at is None

    alert, rec = transition(alert, "assign", actor="dispatcher:wang", at=T0 + 30, assignee_id="I0042")
    history += rec.steps()
    assert alert.assignee_id == "I0042" and rec.assignee_id == "I0042"

    # A fix of somebody else, then a poor fix, then the assignee inside the fence.
    assert not arrived_by_gps(alert, "I0007", distance_m=5, geofence_m=50)
    assert not arrived_by_gps(alert, "I0042", distance_m=30, geofence_m=50, accuracy_m=80)
    assert not arrived_by_gps(alert, "I0042", distance_m=60, geofence_m=50)
    assert arrived_by_gps(alert, "I0042", distance_m=30, geofence_m=50, accuracy_m=10)
    alert, rec = transition(alert, "arrive", actor="gps:I0042", at=T0 + 400)
    history += rec.steps()
    assert alert.state == "on_scene"
    assert not arrived_by_gps(alert, "I0042", distance_m=1, geofence_m=50)  # only from dispatched

    with pytest.raises(ValueError):
        transition(alert, "resolve", actor="officer:li", at=T0 + 900, outcome="fixed")
    alert, rec = transition(alert, "resolve", actor="officer:li", at=T0 + 900, outcome="leak_handled",
                            note="阀门关闭，通风")
    history += rec.steps()
    assert alert.outcome == "leak_handled" and rec.detail()["note"] == "阀门关闭，通风"

    alert, rec = transition(alert, "close", actor="supervisor:zhao", at=T0 + 3600)
    history += rec.steps()
    assert alert.state == "closed" and allowed_actions(alert) == []
    assert [(r.from_state, r.to_state, r.action) for r in history] == [
        (None, "open", "open"),
        ("open", "acknowledged", "ack"),
        ("acknowledged", "dispatched", "assign"),
        ("dispatched", "on_scene", "arrive"),
        ("on_scene", "resolved", "resolve"),
        ("resolved", "closed", "close"),
    ]
    # The consecutive records chain: each starts where the previous ended.
    for a, b in zip(history, history[1:]):
        assert a.to_state == b.from_state
    # The routing fields survive every step.
    assert (alert.sensor_id, alert.enterprise_id, alert.street_id, alert.grid_id) == ("S0001", "E000123", "ST01", "G0101")


def test_assign_straight_from_open_records_the_implied_ack():
    alert = alert_in("gas_alarm", "open")
    new, rec = transition(alert, "assign", actor="disp1", at=T0 + 5, assignee_id="I9", note="nearest")
    assert new.state == "dispatched" and new.escalate_at is None
    assert (rec.from_state, rec.to_state, rec.action) == ("open", "dispatched", "assign")
    steps = rec.steps()
    assert [(s.from_state, s.to_state, s.action, s.actor, s.at) for s in steps] == [
        ("open", "acknowledged", "ack", "disp1", T0 + 5),
        ("acknowledged", "dispatched", "assign", "disp1", T0 + 5),
    ]
    assert steps[1].note == "nearest" and steps[1].assignee_id == "I9"
    assert rec.detail()["implied"] == ["ack"]


@pytest.mark.parametrize("state", ["dispatched", "on_scene"])
def test_reassign(state):
    alert = alert_in("gas_alarm", state, assignee_id="I1")
    new, rec = transition(alert, "assign", actor="d", at=T0, assignee_id="I2")
    assert new.state == "dispatched" and new.assignee_id == "I2"
    assert rec.action == "reassign"
    with pytest.raises(ValueError, match="already assigned"):
        transition(alert, "assign", actor="d", at=T0, assignee_id="I1")


def test_duplicate_resolved_by_reassignment():
    alert = alert_in("duplicate_visit", "open")
    new, rec = transition(alert, "reassign", actor="d", at=T0, assignee_id="I5", note="to E2")
    assert (new.state, new.outcome, new.assignee_id) == ("resolved", "reassigned", "I5")
    assert rec.outcome == "reassigned"
    with pytest.raises(ValueError):
        transition(alert, "reassign", actor="d", at=T0, assignee_id="I5", outcome="dismissed")
    with pytest.raises(ValueError):  # reassigned only through reassign
        transition(alert, "resolve", actor="d", at=T0, outcome="reassigned")


@pytest.mark.parametrize(
    "state,action,kw",
    [
        ("open", "assign", {}),  # no assignee
        ("acknowledged", "resolve", {}),  # no outcome
        ("acknowledged", "resolve", {"outcome": "repaired"}),  # another type's outcome
        ("open", "ack", {"outcome": "false_alarm"}),
        ("open", "ack", {"assignee_id": "I1"}),
        ("dispatched", "arrive", {"assignee_id": "I1"}),
    ],
)
def test_bad_arguments(state, action, kw):
    with pytest.raises(ValueError):
        transition(alert_in("gas_alarm", state), action, actor="d", at=T0, **kw)


def test_bad_actor_time_type():
    with pytest.raises(ValueError):
        transition(alert_in("gas_alarm", "open"), "ack", actor="", at=T0)
    with pytest.raises(ValueError):
        transition(alert_in("gas_alarm", "open"), "ack", actor="d", at=float("nan"))
    with pytest.raises(ValueError):
        transition(alert_in("no_such_type", "open"), "ack", actor="d", at=T0)
    with pytest.raises(ValueError):
        new_alert("gas_alarm", "sensor:S1", severity="urgent", at=T0)


def test_two_dispatchers_ack_at_once_one_gets_409():
    # Both read version 1 of the alert; the storage applies the first; the second
    # retries on the stored state (its optimistic lock failed) and is refused.
    alert = alert_in("gas_alarm", "open")
    first, _ = transition(alert, "ack", actor="disp1", at=T0 + 1)
    with pytest.raises(TransitionNotAllowed):
        transition(first, "ack", actor="disp2", at=T0 + 1)


def test_alert_state_dict_round_trip():
    alert = alert_in("gas_alarm", "on_scene", details={"peak_level": "high"})
    d = alert.to_dict()
    assert AlertState.from_dict({**d, "created_at": 1.0, "version": 3}) == alert
    assert AlertState.from_dict({**d, "details": None}).details == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(ALL_ACTIONS), max_size=15), st.sampled_from(ALERT_TYPES))
def test_random_action_sequences_stay_inside_the_lifecycle(actions, alert_type):
    alert, _ = new_alert(alert_type, "x:1", severity="info", at=T0, escalate_at=T0 + 60)
    t = T0
    for action in actions:
        t += 1
        before = alert
        try:
            alert, rec = transition(alert, action, actor="d", at=t, **args_for(alert_type, action, f"I{t:.0f}"))
        except TransitionNotAllowed:
            assert alert is before
            continue
        assert (before.state, action) in EXPECTED[alert_type]
        assert alert.state in TYPE_STATES[alert_type]
        assert alert.escalate_at is None
        if alert.state in ("resolved", "closed"):
            assert alert.outcome is not None
        if alert_type == "gas_alarm" and alert.state in ("dispatched", "on_scene"):
            assert alert.assignee_id is not None
