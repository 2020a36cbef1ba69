"""Gas level, severity, dedup and flapping on realistic payload sequences, offline."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.lifecycle import transition
from alerts.model import AlertState
from alerts.rules import (
    FLAP_HISTORY_MAX,
    FUTURE_SLACK_S,
    NOTHING,
    OPEN,
    OPEN_FAULT,
    OPEN_OFFLINE,
    RETURNED,
    UPDATE,
    UPDATE_FAULT,
    UPDATE_OFFLINE,
    SensorMemory,
    evaluate_gas,
    evaluate_offline,
    gas_level,
    is_offline,
    severity_for,
    stale_future,
)

LOW, HIGH = 20.0, 50.0  # the defaults of settings.gas_low_lel / gas_high_lel
FLAP_S = 120.0  # settings.flap_window_s
T0 = 1_718_000_000.0


# --- gas level ------------------------------------------------------------------


@pytest.mark.parametrize(
    "lel,flag,expected",
    [
        (0.0, None, "normal"),
        (19.9, None, "normal"),
        (20.0, None, "low"),  # the threshold itself alarms
        (49.9, None, "low"),
        (50.0, None, "high"),
        (100.0, None, "high"),
        (None, None, "normal"),  # a bare heartbeat
        (None, "none", "normal"),
        (None, "low", "low"),
        (None, "high", "high"),
        (5.0, "high", "high"),  # the device's own alarm beats a low reading
        (60.0, "none", "high"),  # ... and a high reading beats the device's "none"
        (60.0, "low", "high"),
        (0.0, "fault", "fault"),
        (0.0, "tamper", "tamper"),
        (30.0, "fault", "low"),  # gas beats a device fault: go and look
        (55.0, "tamper", "high"),
        (None, "test", "test"),
        (60.0, "test", "test"),  # a self-test's simulated gas opens nothing
    ],
)
def test_gas_level_table(lel, flag, expected):
    assert gas_level(lel, flag, LOW, HIGH) == expected


def test_gas_level_per_sensor_thresholds():
    assert gas_level(15.0, None, 10.0, 25.0) == "low"
    assert gas_level(25.0, None, 10.0, 25.0) == "high"


@pytest.mark.parametrize("lel,flag", [(float("nan"), None), (float("inf"), None), (1.0, "smoke")])
def test_gas_level_refuses(lel, flag):
    with pytest.raises(ValueError):
        gas_level(lel, flag, LOW, HIGH)


def test_gas_level_refuses_bad_thresholds():
    with pytest.raises(ValueError):
        gas_level(10.0, None, 50.0, 20.0)


RANK = {"normal": 0, "fault": 1, "tamper": 2, "low": 3, "high": 4}


@given(st.floats(0, 100), st.floats(0, 100), st.sampled_from([None, "none", "low", "high", "fault", "tamper"]))
def test_gas_level_is_monotonic_in_lel_and_never_better_than_the_flag(a, b, flag):
    lo, hi = sorted((a, b))
    assert RANK[gas_level(lo, flag, LOW, HIGH)] <= RANK[gas_level(hi, flag, LOW, HIGH)]
    both = gas_level(hi, flag, LOW, HIGH)
    assert RANK[both] >= RANK[gas_level(hi, None, LOW, HIGH)]
    if flag is not None:
        assert RANK[both] >= RANK[gas_level(None, flag, LOW, HIGH)]


# --- severity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "alert_type,level,expected",
    [
        ("gas_alarm", "high", "critical"),
        ("gas_alarm", "low", "warning"),
        ("sensor_fault", "tamper", "critical"),
        ("sensor_fault", "fault", "warning"),
        ("sensor_offline", None, "warning"),
        ("inspector_offline", None, "info"),
        ("duplicate_visit", None, "info"),
        ("overlap_now", None, "warning"),
        ("overdue_inspection", "red", "warning"),
        ("overdue_inspection", "blue", "info"),
        ("overdue_inspection", None, "info"),
        ("approach_warning", None, "info"),
    ],
)
def test_severity(alert_type, level, expected):
    assert severity_for(alert_type, level) == expected


@pytest.mark.parametrize("alert_type,level", [("gas_alarm", "normal"), ("gas_alarm", None),
                                              ("sensor_fault", "low"), ("nope", None),
                                              ("overdue_inspection", "green")])
def test_severity_refuses(alert_type, level):
    with pytest.raises(ValueError):
        severity_for(alert_type, level)


# --- a small stand-in for the persistence layer --------------------------------------


class Store:
    """Applies decisions as the ingest + storage layers would, and logs pushes."""

    def __init__(self, sensor_id="S0001"):
        self.sensor_id = sensor_id
        self.memory: SensorMemory | None = None
        self.alerts: list[AlertState] = []
        self.pushes: list[tuple[float, str, str]] = []  # (t, verdict, type)
        self.decisions = []

    def active(self, alert_type):
        act = [a for a in self.alerts if a.type == alert_type and a.active]
        assert len(act) <= 1, "one active alert per (type, subject)"
        return act[0] if act else None

    def feed(self, payload: dict):
        t = payload["ts"]
        level = gas_level(payload.get("lel"), payload.get("alarm"), LOW, HIGH)
        d = evaluate_gas(self.memory, level, payload.get("lel"), t, self.active("gas_alarm"), FLAP_S,
                         sensor_id=self.sensor_id, open_fault=self.active("sensor_fault"),
                         enterprise_id="E000123", street_id="ST01", grid_id="G0101")
        self.decisions.append(d)
        self.memory = SensorMemory.from_json(d.memory.to_json())  # through "Redis"
        if d.new_alert is not None:
            assert d.new_record.to_state == "open" and d.new_record.from_state is None
            self.alerts.append(dataclasses.replace(d.new_alert, id=len(self.alerts) + 1))
        for up in d.updated:
            i = next(i for i, a in enumerate(self.alerts) if a.id == up.id)
            self.alerts[i] = up
        if d.notify:
            kind = (d.new_alert or d.updated[0]).type
            self.pushes.append((t, d.verdict, kind))
        return d

    def resolve(self, alert_type, t, outcome):
        a = self.active(alert_type)
        a, _ = transition(a, "ack", actor="d", at=t)
        a, _ = transition(a, "resolve", actor="d", at=t, outcome=outcome)
        self.alerts = [a if x.id == a.id else x for x in self.alerts]


# A restaurant's detector: quiet heartbeats, a leak that rises past the low
# threshold to 35 %, peaks at 60 %, falls back, then hovers at the threshold
# (flapping), goes quiet, and alarms again about six minutes later.
LEAK = [
    {"ts": T0 + 0, "lel": 0.0, "alarm": "none", "batt": 97},
    {"ts": T0 + 300, "lel": 4.0, "alarm": "none"},
    {"ts": T0 + 600, "lel": 12.0},
    {"ts": T0 + 610, "lel": 22.0, "alarm": "low"},  # opens (warning)
    {"ts": T0 + 620, "lel": 35.0, "alarm": "low"},
    {"ts": T0 + 630, "lel": 48.0, "alarm": "low"},
    {"ts": T0 + 640, "lel": 60.0, "alarm": "high"},  # severity rises: critical
    {"ts": T0 + 650, "lel": 55.0, "alarm": "high"},
    {"ts": T0 + 660, "lel": 41.0, "alarm": "low"},
    {"ts": T0 + 670, "lel": 28.0, "alarm": "low"},
    {"ts": T0 + 680, "lel": 17.0, "alarm": "none"},  # back to normal: marked, alert stays open
    {"ts": T0 + 690, "lel": 21.0},  # flapping from here: counted, not pushed
    {"ts": T0 + 700, "lel": 19.0},
    {"ts": T0 + 710, "lel": 20.0},
    {"ts": T0 + 720, "lel": 18.0},
    {"ts": T0 + 730, "lel": 15.0, "alarm": "none"},
    {"ts": T0 + 1030, "lel": 3.0},
    {"ts": T0 + 1100, "lel": 26.0},  # long after the flapping: alarming again, pushed
]


def test_leak_sequence_opens_one_alert_and_pushes_only_changes():
    s = Store()
    for p in LEAK:
        s.feed(p)
    assert len(s.alerts) == 1
    a = s.alerts[0]
    assert (a.type, a.subject, a.state, a.sensor_id) == ("gas_alarm", "sensor:S0001", "open", "S0001")
    assert (a.enterprise_id, a.street_id, a.grid_id) == ("E000123", "ST01", "G0101")
    alarming = [p for p in LEAK if (p.get("lel") or 0) >= LOW]
    assert a.count == len(alarming) == 10
    assert a.peak_lel == 60.0 and a.last_value_lel == 26.0
    assert a.severity == "critical" and a.details["peak_level"] == "high"
    assert a.first_seen == T0 + 610 and a.last_seen == T0 + 1100
    assert a.returned_to_normal_at is None  # alarming again at the end
    assert a.details["flaps"] == 4 and s.memory.flaps == 4
    assert s.pushes == [
        (T0 + 610, OPEN, "gas_alarm"),
        (T0 + 640, UPDATE, "gas_alarm"),
        (T0 + 680, RETURNED, "gas_alarm"),
        (T0 + 1100, UPDATE, "gas_alarm"),
    ]
    verdicts = [d.verdict for d in s.decisions]
    assert verdicts == [NOTHING, NOTHING, NOTHING, OPEN, UPDATE, UPDATE, UPDATE, UPDATE, UPDATE, UPDATE,
                        RETURNED, UPDATE, RETURNED, UPDATE, RETURNED, NOTHING, NOTHING, UPDATE]
    assert [d.flapping for d in s.decisions][11:15] == [True] * 4


def test_returned_to_normal_is_marked_and_the_alert_stays_open():
    s = Store()
    for p in LEAK[:11]:
        s.feed(p)
    a = s.alerts[0]
    assert a.returned_to_normal_at == T0 + 680 and a.state == "open" and a.last_value_lel == 17.0
    s.feed({"ts": T0 + 900, "lel": 1.0})  # further normal readings change nothing
    assert s.decisions[-1].verdict == NOTHING and s.alerts[0].returned_to_normal_at == T0 + 680


def test_after_a_person_resolves_a_new_alarm_is_a_new_alert():
    s = Store()
    for p in LEAK[:11]:
        s.feed(p)
    s.resolve("gas_alarm", T0 + 800, "leak_handled")
    d = s.feed({"ts": T0 + 2000, "lel": 33.0})
    assert d.verdict == OPEN and d.notify
    assert [a.state for a in s.alerts] == ["resolved", "open"]
    assert s.alerts[1].count == 1 and s.alerts[1].peak_lel == 33.0


def test_flapping_after_resolution_still_opens_but_is_flagged():
    s = Store()
    s.feed({"ts": T0, "lel": 25.0})
    s.feed({"ts": T0 + 10, "lel": 5.0})
    s.resolve("gas_alarm", T0 + 15, "false_alarm")
    d = s.feed({"ts": T0 + 20, "lel": 25.0})  # third change within the window
    assert d.verdict == OPEN and d.flapping and d.notify  # a leak is never hidden
    assert d.new_alert.details["flapping"] is True


def test_self_test_and_heartbeat_change_nothing():
    s = Store()
    s.feed({"ts": T0, "lel": 0.0})
    d = s.feed({"ts": T0 + 5, "lel": 60.0, "alarm": "test"})
    assert d.verdict == NOTHING and d.reason == "test" and s.alerts == []
    assert s.memory.tested_at == T0 + 5 and s.memory.level == "normal"
    d = s.feed({"ts": T0 + 300})  # bare heartbeat: normal
    assert d.verdict == NOTHING and s.memory.last_seen == T0 + 300
    d = evaluate_gas(s.memory, None, None, T0 + 400, None, FLAP_S)
    assert d.verdict == NOTHING and d.memory.last_seen == T0 + 400


def test_fault_and_tamper_open_their_own_alert():
    s = Store()
    s.feed({"ts": T0, "lel": 0.0})
    d = s.feed({"ts": T0 + 10, "alarm": "fault"})
    assert d.verdict == OPEN_FAULT and d.new_alert.severity == "warning" and d.notify
    d = s.feed({"ts": T0 + 20, "alarm": "fault"})
    assert d.verdict == UPDATE_FAULT and not d.notify and s.active("sensor_fault").count == 2
    d = s.feed({"ts": T0 + 30, "alarm": "tamper"})
    assert d.verdict == UPDATE_FAULT and d.notify  # severity rose to critical
    assert s.active("sensor_fault").severity == "critical"
    assert s.active("sensor_fault").peak_lel is None
    d = s.feed({"ts": T0 + 500, "lel": 1.0, "alarm": "none"})
    assert d.verdict == RETURNED and s.active("sensor_fault").returned_to_normal_at == T0 + 500
    assert [a.type for a in s.alerts] == ["sensor_fault"]


def test_gas_during_an_open_fault_and_back_to_normal_marks_both():
    s = Store()
    s.feed({"ts": T0, "alarm": "fault"})
    s.feed({"ts": T0 + 200, "lel": 35.0, "alarm": "fault"})  # gas beats fault
    assert {a.type for a in s.alerts} == {"sensor_fault", "gas_alarm"}
    assert s.active("sensor_fault").count == 1  # the gas reading says nothing on the fault
    d = s.feed({"ts": T0 + 400, "lel": 2.0, "alarm": "none"})
    assert d.verdict == RETURNED and len(d.updated) == 2
    assert all(a.returned_to_normal_at == T0 + 400 for a in s.alerts)


def test_late_alarm_reading_still_opens_as_history():
    s = Store()
    s.feed({"ts": T0 + 100, "lel": 2.0})
    # The gateway buffered an alarm from before: it is history, but it happened.
    d = s.feed({"ts": T0 + 50, "lel": 30.0})
    assert d.verdict == OPEN and d.new_alert.details["late"] is True
    assert d.new_alert.returned_to_normal_at == T0 + 100
    assert s.memory.last_seen == T0 + 100 and s.memory.level == "normal"  # memory not rolled back
    d = s.feed({"ts": T0 + 60, "lel": 40.0})  # another late one: merged
    assert d.verdict == UPDATE and s.alerts[0].count == 2 and s.alerts[0].peak_lel == 40.0
    assert s.alerts[0].returned_to_normal_at == T0 + 100 and s.alerts[0].last_value_lel == 30.0
    d = s.feed({"ts": T0 + 70, "lel": 1.0})  # a late normal reading: nothing
    assert d.verdict == NOTHING


def test_a_fast_clock_does_not_make_the_present_late():
    """stale_future: a reading 200 s ahead of when it was received, then one of the
    present.  The present alarm is not late: it re-alarms the alert the fast reading
    marked returned (at a time still to come), and becomes the memory."""
    s = Store()
    s.feed({"ts": T0, "lel": 40.0})
    fast = evaluate_gas(s.memory, "normal", 0.0, T0 + 200, s.active("gas_alarm"), FLAP_S, received_at=T0 + 1)
    assert fast.verdict == RETURNED and fast.updated[0].returned_to_normal_at == T0 + 200
    assert stale_future(T0 + 200, T0 + 2, received_at=T0 + 2)
    now = evaluate_gas(fast.memory, "high", 60.0, T0 + 2, fast.updated[0], FLAP_S, received_at=T0 + 2)
    assert now.verdict == UPDATE and now.updated[0].returned_to_normal_at is None and now.notify
    assert (now.memory.level, now.memory.last_seen) == ("high", T0 + 2)
    # Without the time it was received, the order is the readings' own, as before.
    assert evaluate_gas(fast.memory, "high", 60.0, T0 + 2, fast.updated[0], FLAP_S).updated[0].returned_to_normal_at
    # A device whose clock is always 200 s fast keeps its own order.
    assert not stale_future(T0 + 200, T0 + 205, received_at=T0 + 5)
    assert not stale_future(T0 + 200, T0 + 150, received_at=T0 + 5)
    # Within FUTURE_SLACK_S of when it came, a time is not a fast clock's.
    assert not stale_future(T0 + 2 + FUTURE_SLACK_S, T0 + 1, received_at=T0 + 2)


def test_flag_only_alarm_without_lel():
    s = Store()
    d = s.feed({"ts": T0, "alarm": "high"})  # a Zigbee detector's boolean
    assert d.verdict == OPEN and d.new_alert.severity == "critical" and d.new_alert.peak_lel is None


def test_evaluate_gas_refuses_wrong_alerts():
    resolved = AlertState(type="gas_alarm", subject="sensor:S1", severity="warning", state="resolved",
                          first_seen=T0, last_seen=T0)
    with pytest.raises(ValueError):
        evaluate_gas(None, "low", 25.0, T0, resolved, FLAP_S, sensor_id="S1")
    with pytest.raises(ValueError):
        evaluate_gas(None, "low", 25.0, T0, dataclasses.replace(resolved, state="open", type="sensor_fault"),
                     FLAP_S, sensor_id="S1")
    with pytest.raises(ValueError):
        evaluate_gas(None, "low", 25.0, T0, None, FLAP_S)  # no sensor id to file it under
    with pytest.raises(ValueError):
        evaluate_gas(None, "smoke", 25.0, T0, None, FLAP_S, sensor_id="S1")


def test_memory_json_round_trip_and_bounded():
    m = SensorMemory("S1")
    t = T0
    for i in range(100):  # a detector flipping every second
        t += 1
        m = evaluate_gas(m, "low" if i % 2 else "normal", None, t, None, FLAP_S, sensor_id="S1").memory
    assert len(m.changes) <= FLAP_HISTORY_MAX
    assert SensorMemory.from_json(m.to_json()) == m
    assert m.flaps > 90


readings = st.lists(
    st.tuples(st.floats(0.5, 400), st.sampled_from([None, 0.0, 5.0, 19.0, 20.0, 35.0, 50.0, 60.0, 99.0]),
              st.sampled_from([None, None, None, "none", "low", "high", "fault", "tamper", "test"])),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(readings)
def test_property_one_active_alert_and_count_equals_alarming_readings(seq):
    s = Store()
    t = T0
    alarming = []
    for dt_s, lel, flag in seq:
        t += dt_s
        s.feed({"ts": t, "lel": lel, "alarm": flag})
        level = gas_level(lel, flag, LOW, HIGH)
        if level in ("low", "high"):
            alarming.append(lel)
        s.active("gas_alarm")  # asserts at most one
        s.active("sensor_fault")
    gas = [a for a in s.alerts if a.type == "gas_alarm"]
    assert len(gas) == (1 if alarming else 0)
    if alarming:
        assert gas[0].count == len(alarming)
        lels = [x for x in alarming if x is not None]
        assert gas[0].peak_lel == (max(lels) if lels else None)
    # Never more pushes than there were readings, and no push without a change.
    assert len(s.pushes) <= len(seq)


# --- offline --------------------------------------------------------------------------


def test_is_offline():
    hb, n = 300, 3
    assert is_offline(None, hb, n, T0)  # never heard: offline, not safe
    assert not is_offline(T0, hb, n, T0 + 899)
    assert is_offline(T0, hb, n, T0 + 900)


def test_sensor_offline_lifecycle_of_decisions():
    hb, n = 300, 3
    d = evaluate_offline("sensor_offline", "S1", T0, T0 + 100, hb, n, None)
    assert d.verdict == NOTHING
    d = evaluate_offline("sensor_offline", "S1", T0, T0 + 900, hb, n, None, enterprise_id="E1", street_id="ST1")
    assert d.verdict == OPEN_OFFLINE and d.notify
    a = dataclasses.replace(d.new_alert, id=1)
    assert (a.subject, a.sensor_id, a.severity, a.street_id) == ("sensor:S1", "S1", "warning", "ST1")
    assert evaluate_offline("sensor_offline", "S1", T0, T0 + 1200, hb, n, a).verdict == NOTHING
    d = evaluate_offline("sensor_offline", "S1", T0 + 1300, T0 + 1301, hb, n, a)
    assert d.verdict == RETURNED and d.updated[0].returned_to_normal_at == T0 + 1300
    a = d.updated[0]
    assert a.state == "open"  # a person resolves it
    d = evaluate_offline("sensor_offline", "S1", T0 + 1300, T0 + 1310, hb, n, a, online=False)  # LWT
    assert d.verdict == UPDATE_OFFLINE and d.updated[0].count == 2 and d.updated[0].returned_to_normal_at is None


def test_inspector_offline_opens_under_the_inspector():
    d = evaluate_offline("inspector_offline", "I7", None, T0, 30, 5, None)
    assert d.verdict == OPEN_OFFLINE
    assert (d.new_alert.subject, d.new_alert.inspector_id, d.new_alert.severity) == ("inspector:I7", "I7", "info")
    with pytest.raises(ValueError):
        evaluate_offline("gas_alarm", "I7", None, T0, 30, 5, None)


def test_thresholds_are_inclusive_exactly():
    assert gas_level(math.nextafter(LOW, 0), None, LOW, HIGH) == "normal"
    assert gas_level(LOW, None, LOW, HIGH) == "low"
