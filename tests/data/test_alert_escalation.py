"""Escalations written in batches (AlertStore.escalate_due), on SQLite and PostgreSQL.

Thousands of alerts can fall due at once (an alarm storm nobody acknowledges), so
the engine escalates them a batch per transaction (issue 14 §2; the timing is in
bench/bench_escalation.py).  What must hold whatever the batch: every due alert
escalates once per rung, an acknowledged one and one not yet due do not, each
escalation has its event and its audit entry, and the audit chain still verifies."""

from __future__ import annotations

from sqlalchemy import func, select

from alerts.escalation import Ladder
from alerts.lifecycle import new_alert
from alerts.model import sensor_subject
from data import audit
from data.alert_store import AlertStore
from data.auth import Principal
from data.live import LiveState
from data.models import Alert, AlertEvent, AuditEntry

T0 = 1_790_000_000.0
DISPATCHER = Principal(user_id=1, username="disp", role="dispatcher")


def open_gas_alarm(store: AlertStore, engine, sid: str, at: float) -> int:
    alert, rec = new_alert("gas_alarm", sensor_subject(sid), severity="critical", at=at, sensor_id=sid,
                           street_id="ST1", grid_id="G1")
    with engine.begin() as conn:
        return store.insert(conn, alert, rec, at).id


def test_due_alerts_escalate_once_each_in_batches(engine, redis_client, namespace):
    store = AlertStore(engine, LiveState(redis_client, namespace), Ladder.from_settings(None, t1_s=60, t2_s=300))
    due = [open_gas_alarm(store, engine, f"S{i}", T0) for i in range(7)]
    late = open_gas_alarm(store, engine, "S-late", T0 - 400)  # both rungs due: street, then district
    not_yet = open_gas_alarm(store, engine, "S-new", T0 + 30)
    acked = open_gas_alarm(store, engine, "S-acked", T0)
    store.act(acked, "ack", DISPATCHER, at=T0 + 10)
    entries_before = len(audit.entries(engine))

    now = T0 + 61
    fired_ids, batches, more = [], 0, True
    while more:
        fired, more = store.escalate_due(now, limit=3)
        fired_ids += [a for a, _ in fired]
        batches += 1
    assert sorted(fired_ids) == sorted(due + [late])
    assert batches == 3  # 8 due, 3 at a time

    with engine.connect() as conn:
        levels = dict(conn.execute(select(Alert.id, Alert.escalation_level)).all())
        versions = dict(conn.execute(select(Alert.id, Alert.version)).all())
        escalations = conn.execute(select(AlertEvent.alert_id, func.count()).where(AlertEvent.action == "escalate")
                                   .group_by(AlertEvent.alert_id)).all()
    assert all(levels[a] == 1 for a in due) and levels[late] == 2
    assert levels[not_yet] == 0 and levels[acked] == 0
    assert all(versions[a] == 2 for a in due + [late])  # one versioned write each
    assert dict(escalations) == {**{a: 1 for a in due}, late: 2}
    # One audit entry per rung, chained on the entries before them, and the chain holds.
    new_entries = audit.entries(engine)[entries_before:]
    assert [e.action for e in new_entries] == ["alert.escalate"] * 9
    assert sorted(e.target for e in new_entries) == sorted(f"alert:{a}" for a in due + [late, late])
    assert audit.verify(engine) is None
    # Nothing is due any more: a second pass fires nothing and writes nothing.
    with engine.connect() as conn:
        n_audit = conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    assert store.escalate_due(now) == ([], False)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == n_audit


def test_an_acknowledgement_after_the_batch_leaves_the_escalation_in_history(engine, redis_client, namespace):
    """The batch and a person's action do not lose each other's writes: the alert escalated
    (its event and version), then the acknowledgement applied on top of it."""
    store = AlertStore(engine, LiveState(redis_client, namespace), Ladder.from_settings(None, t1_s=60, t2_s=300))
    a = open_gas_alarm(store, engine, "S1", T0)
    fired, _more = store.escalate_due(T0 + 61)
    assert [x for x, _ in fired] == [a]
    store.act(a, "ack", DISPATCHER, at=T0 + 62)
    got = store.get(a)
    assert got["state"] == "acknowledged"
    assert [h["action"] for h in got["history"]] == ["open", "escalate", "ack"]
    assert audit.verify(engine) is None



def test_an_overdue_hazard_opens_an_alert_that_escalates_and_resolves_when_rectified(engine, redis_client,
                                                                                      namespace, settings):
    """Overdue hazards escalate (issue 16): the alert engine's sweep opens one hazard_overdue
    alert per overdue hazard for the street, raises it to the district after
    hazard_escalate_after_d, leaves a hazard that is not overdue alone, and resolves the
    alert itself once the enterprise has rectified; the audit chain holds throughout."""
    import time

    from data.hazards_store import HazardStore
    from ingest.alert_engine import AlertEngine
    from tests.citykit import write_small_city
    from tests.mqttkit import wait_until

    D = 86400.0
    write_small_city(engine)
    s = settings.model_copy(update={"hazard_escalate_after_d": 3.0})
    hazards = HazardStore(engine, s)
    now = time.time()
    late = hazards.create("off", enterprise_id="E1", category="SC01", level="major", found_by="inspector",
                          now=now - 30 * D)
    hazards.act(late["id"], "assign", "off", now=now - 30 * D, deadline=now - 1 * D)  # 1 day overdue
    on_time = hazards.create("off", enterprise_id="E2", category="SC01", level="general", found_by="inspector",
                             now=now - 2 * D)
    hazards.act(on_time["id"], "assign", "off", now=now - 2 * D, deadline=now + 5 * D)
    store = AlertStore(engine, LiveState(redis_client, namespace), Ladder.from_settings(s), mqtt_prefix=namespace)

    def hazard_alerts():
        return [a for a in store.list() if a["type"] == "hazard_overdue"]

    # The engine as it runs: its first sweep opens the alert.
    eng = AlertEngine(s, engine, redis_client, store, s.mqtt_url)
    eng.start()
    try:
        assert wait_until(lambda: len(hazard_alerts()) == 1, 15)
    finally:
        eng.stop()
    a = hazard_alerts()[0]
    assert (a["subject"], a["state"], a["severity"], a["escalation_level"], a["enterprise_id"], a["street_id"]) == (
        f"hazard:{late['id']}", "open", "warning", 1, "E1", "ST1")
    assert a["details"]["hazard_id"] == late["id"]

    # Nothing changes while nothing changes; three days later it goes to the district, once.
    assert store.sync_hazard_overdue(hazards.overdue(now + 60), now + 60, 3 * D) == []
    eng.sweep_hazards(now + 2.5 * D)
    assert store.get(a["id"])["escalation_level"] == 2
    eng.sweep_hazards(now + 2.6 * D)
    escalations = [h for h in store.get(a["id"])["history"] if h["action"] == "escalate"]
    assert len(escalations) == 1 and "district" in escalations[0]["note"]

    # The enterprise rectifies: the next sweep resolves the alert, outcome rectified.
    from tests.data.test_hazards_store import PNG

    hazards.add_photo(late["id"], "rectification", PNG, "ent", now=now + 2.7 * D)
    hazards.act(late["id"], "rectify", "ent", now=now + 2.7 * D, note="换了新的软管")
    eng.sweep_hazards(now + 2.8 * D)
    done = store.get(a["id"])
    assert (done["state"], done["outcome"]) == ("resolved", "rectified")
    assert [x["state"] for x in hazard_alerts()] == ["resolved"]
    # The hazard that was on time never had an alert.
    assert not [x for x in store.list(state=None) if x["subject"] == f"hazard:{on_time['id']}"]
    assert audit.verify(engine) is None


def test_a_followed_up_overdue_hazard_is_not_asked_again_until_the_district_must_hear(engine, redis_client,
                                                                                        namespace, settings):
    import time

    from data.hazards_store import HazardStore
    from tests.citykit import write_small_city

    D = 86400.0
    write_small_city(engine)
    hazards = HazardStore(engine, settings)
    now = time.time()
    h = hazards.create("off", enterprise_id="E1", category="SC01", level="general", found_by="inspector",
                       now=now - 30 * D)
    hazards.act(h["id"], "assign", "off", now=now - 30 * D, deadline=now - 1 * D)
    store = AlertStore(engine, LiveState(redis_client, namespace), Ladder.from_settings(settings))

    def sweep(at):
        return store.sync_hazard_overdue(hazards.overdue(at), at, 3 * D)

    [first] = sweep(now)
    assert store.get(first)["severity"] == "info"  # a general hazard
    store.act(first, "resolve", DISPATCHER, outcome="followed_up", at=now + 100)
    assert sweep(now + 200) == [] and sweep(now + 1 * D) == []  # the answer holds at the street's level
    [second] = sweep(now + 2.5 * D)  # 3.5 days late: the district hears of it
    got = store.get(second)
    assert (got["state"], got["escalation_level"], got["subject"]) == ("open", 2, f"hazard:{h['id']}")
    assert sweep(now + 2.6 * D) == []
    assert audit.verify(engine) is None
