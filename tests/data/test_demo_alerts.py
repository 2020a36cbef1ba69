"""The demo's duty dispatcher: what nobody took is answered minutes later, through the
store (history, audit), and what a person took is left to the person."""

from __future__ import annotations

import threading
import time

from sqlalchemy import update

from alerts.escalation import Ladder
from alerts.lifecycle import new_alert
from alerts.model import INSPECTOR_OFFLINE, inspector_subject, sensor_subject
from data import audit, demo_alerts
from data.alert_store import AlertStore
from data.auth import Principal, display_names
from data.demo_alerts import DutyDispatcher
from data.live import LiveState
from data.models import Alert
from tests.citykit import write_small_city

PERSON = Principal(7, "zhoumin", "dispatcher")


def _open(store, engine, alert_type, sensor, street, grid, severity, at):
    alert, rec = new_alert(alert_type, sensor_subject(sensor), severity=severity, at=at, sensor_id=sensor,
                           street_id=street, grid_id=grid, peak_lel=60.0 if alert_type == "gas_alarm" else None,
                           last_value_lel=60.0 if alert_type == "gas_alarm" else None, details={})
    with engine.begin() as conn:
        return store.insert(conn, alert, rec, at).id


def test_the_duty_dispatcher_answers_what_nobody_took_and_leaves_what_a_person_did(sqlite_engine, settings,
                                                                                   redis_client):
    write_small_city(sqlite_engine)
    store = AlertStore(sqlite_engine, LiveState(redis_client, settings.redis_prefix), Ladder.from_settings(settings),
                       mqtt_prefix=settings.mqtt_prefix)
    now = time.time()
    gas = _open(store, sqlite_engine, "gas_alarm", "S1", "ST1", "G1", "critical", now - 10)
    fault = _open(store, sqlite_engine, "sensor_fault", "S1", "ST1", "G1", "warning", now - 10)
    low = _open(store, sqlite_engine, "gas_alarm", "S2", "ST2", "G2", "warning", now - 10)
    taken = _open(store, sqlite_engine, "sensor_offline", "S2", "ST2", "G2", "warning", now - 10)
    phones = {}
    for iid in ("I1", "I2"):  # two inspectors' phones fall silent
        alert, rec = new_alert(INSPECTOR_OFFLINE, inspector_subject(iid), severity="warning", at=now - 10,
                               inspector_id=iid, details={})
        with sqlite_engine.begin() as conn:
            phones[iid] = store.insert(conn, alert, rec, now - 10).id
    duty = DutyDispatcher(sqlite_engine, store, threading.Event(), seed=1)

    # A person has minutes to take an alarm first; one does.
    assert duty.step(now) == {"acknowledged": 0, "resolved": 0, "left": 0}
    store.act(taken, "ack", PERSON, at=now + 60)
    lo, hi = demo_alerts.ACK_AFTER_S
    assert duty.step(now + lo - 11)["acknowledged"] == 0
    assert duty.step(now + hi) == {"acknowledged": 5, "resolved": 0, "left": 1}
    # A gas alarm goes to an inspector of its street's office (U2, 民治街道安监办: I2); a street
    # without an office's inspectors, to any office's.
    for aid in (gas, low):
        a = store.get(aid)
        assert (a["state"], a["assignee_id"]) == ("dispatched", "I2")
        assert [(h["action"], h["actor"]) for h in a["history"]][-2:] == [("ack", "demo-duty"), ("assign", "demo-duty")]
    assert store.get(fault)["state"] == "acknowledged"
    assert store.get(taken)["history"][-1]["actor"] == "zhoumin"  # left to the person

    # Not resolved while the reading is not back to normal; meanwhile a person sends
    # someone else to the low alarm, which is theirs from then on.  An inspector's phone
    # heard again is back online; one still silent was rung up: gone off duty.
    later = now + hi + demo_alerts.RESOLVE_AFTER_S[1] + 1
    with sqlite_engine.begin() as conn:
        conn.execute(update(Alert).where(Alert.id == phones["I2"]).values(returned_to_normal_at=later - 5))
    assert duty.step(later)["resolved"] == 2
    assert [store.get(phones[i])["outcome"] for i in ("I1", "I2")] == ["off_duty", "back_online"]
    store.act(low, "assign", PERSON, assignee_id="I1", at=later + 1)
    with sqlite_engine.begin() as conn:  # the detector reads normal again (what the alert engine marks)
        conn.execute(update(Alert).where(Alert.id.in_([gas, fault, low])).values(returned_to_normal_at=later + 2))
    assert duty.step(later + demo_alerts.RETRY_S + 1) == {"acknowledged": 0, "resolved": 2, "left": 1}
    assert (store.get(gas)["state"], store.get(gas)["outcome"]) == ("resolved", "leak_handled")
    assert (store.get(fault)["state"], store.get(fault)["outcome"]) == ("resolved", "repaired")
    assert (store.get(low)["state"], store.get(low)["assignee_id"]) == ("dispatched", "I1")
    # Nothing more to do, and each step is in the audit chain under the duty account,
    # which the screens name by its display name.
    assert duty.step(later + 7200) == {"acknowledged": 0, "resolved": 0, "left": 0}
    assert {e.action for e in audit.entries(sqlite_engine) if e.actor == "demo-duty"} >= {"alert.ack", "alert.resolve"}
    assert audit.verify(sqlite_engine) is None
    assert display_names(sqlite_engine)["demo-duty"] == "值班调度（模拟）"


def test_the_duty_dispatcher_is_named_in_the_pages_language():
    """A phone tour read 值班调度（模拟） among the English history's actors: the account's
    display name is a role's, which the catalogue says in each language."""
    from dashboard.pages.common import history_entries

    rows = [{"action": "ack", "actor": demo_alerts.USERNAME, "to_state": "acknowledged", "at_ts": time.time(),
             "note": None}]
    users = {demo_alerts.USERNAME: demo_alerts.DISPLAY_NAME}
    assert history_entries({"history": rows}, "en", users=users)[0]["actor"] == "Duty dispatcher (simulated)"
    assert history_entries({"history": rows}, "zh-CN", users=users)[0]["actor"] == demo_alerts.DISPLAY_NAME
