"""Escalation timings: grid at 0, street at T1, district at T2, stop on ack,
deterministic catch-up after a restart."""

from __future__ import annotations

import dataclasses
import re
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.escalation import DEFAULT_LADDER, Ladder, Rung, escalate_due
from alerts.lifecycle import new_alert, transition
from config.settings import Settings
from geo.timefmt import iso_ms, parse_iso_or_epoch

T0 = 1_718_000_000.0


def gas(at=T0, severity="critical", alert_type="gas_alarm"):
    alert, _ = new_alert(alert_type, "sensor:S1", severity=severity, at=at, sensor_id="S1")
    return alert


def test_from_settings_defaults_and_overrides():
    assert Ladder.from_settings(Settings()) == DEFAULT_LADDER
    assert [(r.audience, r.after_s) for r in DEFAULT_LADDER.rungs] == [("grid", 0), ("street", 60), ("district", 300)]
    lad = Ladder.from_settings(SimpleNamespace(escalate_t1_s=30, escalate_t2_s=90))
    assert [r.after_s for r in lad.rungs] == [0, 30, 90]
    assert Ladder.from_settings(t1_s=10, t2_s=20).rungs[2].after_s == 20


def test_arm_sets_the_first_deadline():
    a = DEFAULT_LADDER.arm(gas(), now=T0 + 0.2)
    assert a.escalation_level == 0 and a.escalate_at == T0 + 60
    assert DEFAULT_LADDER.arm(a, now=T0 + 50) == a  # idempotent


def test_arm_counts_from_the_earlier_of_reading_and_clock():
    late = DEFAULT_LADDER.arm(gas(at=T0 - 40), now=T0)  # a buffered reading: already waited 40 s
    assert late.escalate_at == T0 + 20
    ahead = DEFAULT_LADDER.arm(gas(at=T0 + 200), now=T0)  # device clock ahead: no postponing
    assert ahead.escalate_at == T0 + 60
    assert DEFAULT_LADDER.arm(gas(at=T0 - 40), now=T0, since=T0).escalate_at == T0 + 60


def test_which_alerts_climb():
    assert DEFAULT_LADDER.arm(gas(severity="warning"), T0).escalate_at == T0 + 60  # low gas too
    tamper = gas(severity="critical", alert_type="sensor_fault")
    assert DEFAULT_LADDER.arm(tamper, T0).escalate_at == T0 + 60
    for t, sev in [("sensor_fault", "warning"), ("sensor_offline", "warning"), ("overdue_inspection", "info")]:
        assert DEFAULT_LADDER.arm(gas(severity=sev, alert_type=t), T0).escalate_at is None


def test_timings_grid_street_district():
    a = DEFAULT_LADDER.arm(gas(), T0)
    assert DEFAULT_LADDER.escalate_due(a, T0 + 59.999) is None
    assert DEFAULT_LADDER.escalate_due(a, T0 + 60) == (1, T0 + 300)
    a, rec = DEFAULT_LADDER.escalate(a, T0 + 60.4)
    assert (a.escalation_level, a.escalate_at, a.state) == (1, T0 + 300, "open")
    assert (rec.action, rec.from_state, rec.to_state, rec.at) == ("escalate", "open", "open", T0 + 60.4)
    # The deadline as a person and a program read it: ISO-8601, China time, to the ms.
    assert rec.note == f"level 1: street (unacknowledged; due {iso_ms(T0 + 60)})"
    assert re.search(r"due \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00\)$", rec.note)
    assert parse_iso_or_epoch(rec.note.rsplit("due ", 1)[1][:-1]) == T0 + 60
    assert DEFAULT_LADDER.escalate(a, T0 + 299) is None
    a, rec = DEFAULT_LADDER.escalate(a, T0 + 300.8)
    assert (a.escalation_level, a.escalate_at) == (2, None)
    assert rec.at == T0 + 300.8 and "district" in rec.note
    assert DEFAULT_LADDER.escalate(a, T0 + 10_000) is None  # top of the ladder


def test_ack_stops_escalation():
    a = DEFAULT_LADDER.arm(gas(), T0)
    a, _ = transition(a, "ack", actor="d", at=T0 + 30)
    assert a.escalate_at is None and escalate_due(a, T0 + 1000) is None


def test_ack_after_the_first_rung_stops_the_second():
    a = DEFAULT_LADDER.arm(gas(), T0)
    a, _ = DEFAULT_LADDER.escalate(a, T0 + 61)
    a, _ = transition(a, "assign", actor="street:chen", at=T0 + 120, assignee_id="I9")
    assert a.escalation_level == 1 and a.escalate_at is None
    assert escalate_due(a, T0 + 1000) is None
    # Even a stale escalate_at left on a non-open alert does not fire.
    assert escalate_due(dataclasses.replace(a, escalate_at=T0 + 300), T0 + 1000) is None


def test_catch_up_after_a_restart_fires_each_rung_once_in_order():
    a = DEFAULT_LADDER.arm(gas(), T0)
    # The timer loop was down; it comes back at T0 + 20 minutes, reading the stored alert.
    stored = a.to_dict()
    a = type(a).from_dict(stored)
    now = T0 + 1200
    records = []
    while (step := DEFAULT_LADDER.escalate(a, now)) is not None:
        a, rec = step
        records.append(rec)
    assert [r.note for r in records] == [
        f"level 1: street (unacknowledged; due {iso_ms(T0 + 60)})",
        f"level 2: district (unacknowledged; due {iso_ms(T0 + 300)})",
    ]
    assert all(r.at == now for r in records)


def test_deadlines_do_not_drift_with_a_late_timer():
    a = DEFAULT_LADDER.arm(gas(), T0)
    a, _ = DEFAULT_LADDER.escalate(a, T0 + 75)  # fired 15 s late
    assert a.escalate_at == T0 + 300  # still T2 after open


def test_custom_ladder():
    lad = Ladder.of(("grid", 0), ("street", 30), ("district", 120), ("city", 600), types=["gas_alarm"])
    a = lad.arm(gas(), T0)
    levels = []
    for now in range(0, 700, 1):
        step = lad.escalate(a, T0 + now)
        if step:
            a, _ = step
            levels.append((now, a.escalation_level, lad.audience(a.escalation_level)))
    assert levels == [(30, 1, "street"), (120, 2, "district"), (600, 3, "city")]


@pytest.mark.parametrize("steps", [(), (("grid", 5),), (("grid", 0), ("street", 60), ("district", 60))])
def test_ladder_validation(steps):
    with pytest.raises(ValueError):
        Ladder.of(*steps)
    with pytest.raises(ValueError):
        Ladder((Rung(1, "grid", 0),))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 600), st.integers(1, 3600), st.one_of(st.none(), st.integers(0, 5000)))
def test_level_reached_is_the_number_of_deadlines_before_the_ack(t1, gap, ack_after):
    t2 = t1 + gap
    lad = Ladder.from_settings(t1_s=t1, t2_s=t2)
    a = lad.arm(gas(), T0)
    # A timer loop ticking every second, as the persistence layer would run it;
    # in the tick of the ack, the ack comes first.
    for tick in range(0, t2 + 2):
        now = T0 + tick
        if ack_after is not None and a.state == "open" and tick >= ack_after:
            a, _ = transition(a, "ack", actor="d", at=now)
        while (step := lad.escalate(a, now)) is not None:
            a, _ = step
    ack = float("inf") if ack_after is None else ack_after
    assert a.escalation_level == sum(1 for deadline in (t1, t2) if deadline < ack)


def test_the_engine_log_reads_the_deadline_of_new_and_old_notes():
    """The engine logs each fired rung with its deadline and lateness, read back from the
    note: the ISO deadline written now, and the epoch seconds of rows written before."""
    from ingest.alert_engine import escalation_log_entry, log_time

    a = DEFAULT_LADDER.arm(gas(), T0)
    _, rec = DEFAULT_LADDER.escalate(a, T0 + 60.4)
    old = dataclasses.replace(rec, note=f"level 1: street (unacknowledged; due {T0 + 60:.3f})")
    for r in (rec, old):
        assert escalation_log_entry(7, r) == f"7 (level 1: street; due {log_time(T0 + 60)}, fired +0.40 s)"
    odd = dataclasses.replace(rec, note="level 1: street (unacknowledged; due soon)")
    assert escalation_log_entry(7, odd) == "7 (level 1: street (unacknowledged; due soon))"
