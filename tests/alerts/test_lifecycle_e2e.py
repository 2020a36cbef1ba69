"""The gas-alarm lifecycle on the real services: MQTT in, the alert engine,
the HTTP API, the MQTT dispatch out, arrival by GPS, escalation across a
restart, roles, concurrency, and the audit chain."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import update

from alerts.escalation import Ladder
from data import audit
from data.alert_store import AlertStore
from data.auth import create_token, create_user
from data.live import LiveState
from data.models import AuditEntry
from dashboard.context import WebContext
from dashboard.server import create_server
from ingest.alert_engine import AlertEngine
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.mqttkit import IngestListening, Publisher, wait_until


@pytest.fixture
def system(settings, engine, redis_client):
    """Ingest worker + alert engine + API, as `python app.py` wires them."""
    write_small_city(engine)
    s = settings.model_copy(update={"escalate_t1_s": 2, "escalate_t2_s": 4})
    worker = IngestWorker(s, engine, redis_client)
    worker.start()
    store = AlertStore(engine, LiveState(redis_client, s.redis_namespace), Ladder.from_settings(s),
                       mqtt_prefix=s.mqtt_prefix)
    eng = AlertEngine(s, engine, redis_client, store, s.mqtt_url)
    eng.start()
    ctx = WebContext(s, engine, redis_client, s.mqtt_url)
    client = create_server(ctx).test_client()
    tokens = {role: create_token(engine, role)[0] for role in ("wall", "dispatcher", "admin")}
    create_user(engine, "officer-g2", "pw-officer-g2", "officer", streets=["ST2"], grids=["G2"])
    tokens["officer_other_grid"] = create_token(engine, "officer", "officer-g2")[0]
    assert worker.conn.subscribed.wait(10)
    # Another ingest worker has listened for long: the inspectors' fixes stamped minutes
    # ago below count as silence since then (this worker has listened only since now).
    listening = IngestListening(redis_client, s.redis_namespace)
    yield {"settings": s, "engine": engine, "client": client, "tokens": tokens, "worker": worker, "alert_engine": eng,
           "redis": redis_client}
    listening.close()
    eng.stop()
    worker.stop()


def api(client, token, method, path, body=None):
    r = client.open(f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {token}"},
                    data=json.dumps(body) if body is not None else None, content_type="application/json")
    return r.status_code, r.get_json()


def open_alerts(sys_):
    code, body = api(sys_["client"], sys_["tokens"]["dispatcher"], "GET", "/alerts?state=open")
    assert code == 200
    return [a for a in body if a["type"] == "gas_alarm"]


def raise_alarm(sys_, lel=62.0, msg_id=None):
    s = sys_["settings"]
    with Publisher(s.mqtt_url) as pub:
        pub.publish(f"{s.mqtt_prefix}/v1/sensors/S1/state",
                    {"ts": time.time(), "lel": lel, "alarm": "high", "msg_id": msg_id or uuid.uuid4().hex})


class DispatchListener:
    def __init__(self, url_host, port, topic):
        self.messages = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phone-{uuid.uuid4().hex[:6]}")
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload), m.qos))
        self.c.connect(url_host, port)
        self.c.subscribe(topic, qos=1)
        self.c.loop_start()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_full_gas_alarm_lifecycle_over_mqtt_and_api(system):
    s, client, tok = system["settings"], system["client"], system["tokens"]
    phone = DispatchListener("127.0.0.1", 1883, f"{s.mqtt_prefix}/v1/inspectors/I1/dispatch")
    try:
        raise_alarm(system)
        raise_alarm(system, lel=70.0)  # a repeat updates the one alert
        alerts = wait_until(lambda: (a := open_alerts(system)) and a[0]["count"] >= 2 and a)
        assert len(alerts) == 1, "a repeated alarm opened a second alert"
        a = alerts[0]
        assert a["severity"] == "critical" and a["peak_lel"] == 70.0 and a["enterprise_id"] == "E1"
        assert a["street_id"] == "ST1" and a["grid_id"] == "G1"

        code, body = api(client, tok["dispatcher"], "POST", f"/alerts/{a['id']}/ack", {"note": "seen"})
        assert code == 200 and body["state"] == "acknowledged"
        code, body = api(client, tok["dispatcher"], "POST", f"/alerts/{a['id']}/ack")
        assert code == 409, "acknowledging twice must be refused"

        # Put I1 somewhere so the nearest-inspector ranking has someone to suggest.
        with Publisher(s.mqtt_url) as pub:
            pub.publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location",
                        {"ts": time.time(), "lat": ENTERPRISE_A[1] + 0.01, "lon": ENTERPRISE_A[2]})
        near = wait_until(lambda: api(client, tok["dispatcher"], "GET", f"/alerts/{a['id']}/nearest")[1])
        assert near[0]["id"] == "I1" and 1000 < near[0]["distance_m"] < 1250

        code, body = api(client, tok["dispatcher"], "POST", f"/alerts/{a['id']}/assign", {"inspector_id": "I1"})
        assert code == 200 and body["state"] == "dispatched" and body["assignee_id"] == "I1"
        topic, payload, qos = wait_until(lambda: phone.messages and phone.messages[0])
        assert qos == 1 and topic.endswith("/v1/inspectors/I1/dispatch")
        assert set(payload) == {"task_id", "kind", "enterprise_id", "name", "lat", "lon", "reason", "issued_at",
                                "issued_by"}
        assert payload["enterprise_id"] == "E1" and payload["kind"] == "gas_alarm"

        # The assignee drives up: their fix inside the geofence confirms arrival.
        with Publisher(s.mqtt_url) as pub:
            pub.publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location",
                        {"ts": time.time(), "lat": ENTERPRISE_A[1] + 0.0003, "lon": ENTERPRISE_A[2], "acc": 10})
        on_scene = wait_until(lambda: (x := api(client, tok["dispatcher"], "GET", f"/alerts/{a['id']}")[1])
                              and x["state"] == "on_scene" and x)
        assert any(h["actor"] == "system" and "GPS" in (h["note"] or "") for h in on_scene["history"])

        code, body = api(client, tok["dispatcher"], "POST", f"/alerts/{a['id']}/resolve",
                         {"outcome": "leak_handled", "note": "valve closed"})
        assert code == 200 and body["state"] == "resolved" and body["outcome"] == "leak_handled"
        states = [h["to_state"] for h in body["history"]]
        assert states[:1] == ["open"] and states[-4:] == ["acknowledged", "dispatched", "on_scene", "resolved"]
    finally:
        phone.close()
    actions = {e.action for e in audit.entries(system["engine"])}
    assert {"alert.open", "alert.ack", "alert.assign", "dispatch", "alert.arrive", "alert.resolve"} <= actions
    assert audit.verify(system["engine"]) is None


def test_escalates_when_ignored_and_across_an_engine_restart(system, caplog):
    caplog.set_level(logging.WARNING, logger="ingest.alert_engine")
    raise_alarm(system)
    a = wait_until(lambda: open_alerts(system))[0]
    first = wait_until(lambda: (x := api(system["client"], system["tokens"]["admin"], "GET", f"/alerts/{a['id']}")[1])
                       and x["escalation_level"] >= 1 and x, timeout_s=8)
    assert first["escalation_level"] == 1
    # The engine dies; the next rung falls due while it is away; a new one catches up.
    system["alert_engine"].stop()
    time.sleep(2.5)
    s = system["settings"]
    store = AlertStore(system["engine"], LiveState(system["redis"], s.redis_namespace), Ladder.from_settings(s),
                       mqtt_prefix=s.mqtt_prefix)
    eng = AlertEngine(s, system["engine"], system["redis"], store, s.mqtt_url)
    system["redis"].delete(f"{s.redis_namespace}:alert-engine:leader")  # the old lease ran out
    eng.start()
    try:
        second = wait_until(lambda: (x := store.get(a["id"])) and x["escalation_level"] == 2 and x, timeout_s=8)
    finally:
        eng.stop()
    escalations = [h for h in second["history"] if h["action"] == "escalate"]
    assert len(escalations) == 2, "each rung must fire exactly once"
    system["alert_engine"] = eng
    # The engine's log, as an operator reads it: the alert, its level, when it was due
    # as a date and time, how late it fired; no epoch seconds.
    lines = [r.getMessage() for r in caplog.records if "escalated" in r.getMessage()]
    assert lines, "each escalation is logged"
    for line in lines:
        assert f"{a['id']} (level " in line
        assert re.search(r"due \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}, fired [+-]\d+\.\d\d s\)", line), line
        assert not re.search(r"\b1\d{9}\b", line), f"an epoch in the log: {line}"


def test_lower_roles_are_refused_on_every_changing_route(system):
    raise_alarm(system)
    a = wait_until(lambda: open_alerts(system))[0]
    client, tok = system["client"], system["tokens"]
    for action, body in (("ack", {}), ("assign", {"inspector_id": "I1"}), ("arrive", {}),
                         ("resolve", {"outcome": "false_alarm"}), ("close", {})):
        code, _ = api(client, tok["wall"], "POST", f"/alerts/{a['id']}/{action}", body)
        assert code == 403, f"wall could {action}"
        # An officer of another grid cannot touch this alarm either.
        code, _ = api(client, tok["officer_other_grid"], "POST", f"/alerts/{a['id']}/{action}", body)
        assert code in (403, 404), f"an officer of another grid could {action}"
    code, _ = api(client, None, "POST", f"/alerts/{a['id']}/ack")
    assert code == 401
    assert api(client, tok["dispatcher"], "GET", f"/alerts/{a['id']}")[1]["state"] == "open"
    denied = [e for e in audit.entries(system["engine"]) if e.action == "access_denied"]
    assert len(denied) >= 5


def test_two_dispatchers_ack_at_once_one_wins(system):
    raise_alarm(system)
    a = wait_until(lambda: open_alerts(system))[0]
    s, engine = system["settings"], system["engine"]
    tok = system["tokens"]["dispatcher"]
    barrier = threading.Barrier(2, timeout=60)
    # Two web servers, made one after the other: building Flask's URL rules compiles
    # Python, and CPython 3.11.7's compiler is not safe in two threads at once
    # ("AST constructor recursion depth mismatch", fixed in 3.11.8): made together,
    # one thread died and the other waited at the barrier.
    clients = [create_server(WebContext(s, engine, system["redis"], s.mqtt_url)).test_client() for _ in range(2)]

    def ack(c):
        barrier.wait()
        return api(c, tok, "POST", f"/alerts/{a['id']}/ack")[0]

    with ThreadPoolExecutor(2) as ex:
        codes = sorted(ex.map(ack, clients))
    assert codes == [200, 409]
    body = api(system["client"], tok, "GET", f"/alerts/{a['id']}")[1]
    assert [h["action"] for h in body["history"]].count("ack") == 1
    assert audit.verify(engine) is None


def test_audit_verify_catches_a_row_edited_in_sql(system):
    raise_alarm(system)
    a = wait_until(lambda: open_alerts(system))[0]
    api(system["client"], system["tokens"]["dispatcher"], "POST", f"/alerts/{a['id']}/ack")
    engine = system["engine"]
    assert audit.verify(engine) is None
    victim = [e for e in audit.entries(engine) if e.action == "alert.ack"][0]
    with engine.begin() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == victim.id).values(actor="somebody-else"))
    assert audit.verify(engine) == victim.id


def test_overdue_inspections_roll_up_to_one_alert_per_street_per_day(system):
    from data.models import Enterprise

    engine, eng = system["engine"], system["alert_engine"]
    now = time.time()
    with engine.begin() as conn:  # E1 is red: unvisited for 31 days is overdue
        conn.execute(update(Enterprise).where(Enterprise.id == "E1")
                     .values(last_inspected_at=now - 31 * 86400, next_due_at=now - 86400))
        conn.execute(update(Enterprise).where(Enterprise.id == "E2")  # blue, visited 100 days ago: not overdue
                     .values(last_inspected_at=now - 100 * 86400, next_due_at=now + 265 * 86400))
    eng.roll_up_overdue(now)
    eng.roll_up_overdue(now + 60)  # the job runs again: no second alert, no spam
    code, body = api(system["client"], system["tokens"]["dispatcher"], "GET", "/alerts?state=open&type=overdue_inspection")
    st1 = [a for a in body if a["street_id"] == "ST1"]
    assert code == 200 and len(st1) == 1, "one alert per street per day"
    a = st1[0]
    assert a["count"] == 1 and a["details"]["by_colour"]["red"] == 1
    # ST2's only enterprise is within its interval (the engine's first run, before
    # the dates above were set, may have counted it as never inspected).
    assert all(x["count"] == 0 for x in body if x["street_id"] == "ST2")
    assert a["severity"] == "warning"  # a red enterprise among them
    # The next day's first run opens that day's roll-up, which supersedes this one:
    # the queue keeps one per street, and the old one says why it went.
    eng.roll_up_overdue(now + 86400)
    code, body = api(system["client"], system["tokens"]["dispatcher"], "GET", "/alerts?state=open&type=overdue_inspection")
    st1 = [x for x in body if x["street_id"] == "ST1"]
    assert len(st1) == 1 and st1[0]["id"] != a["id"] and st1[0]["details"]["day"] != a["details"]["day"]
    code, old = api(system["client"], system["tokens"]["dispatcher"], "GET", f"/alerts/{a['id']}")
    assert old["state"] == "resolved" and old["outcome"] == "superseded"
    assert old["history"][-1]["note"] == f"superseded by the roll-up of {st1[0]['details']['day']}"


def test_roll_ups_run_at_once_still_open_one_alert_per_street(system):
    """The engine's own roll-up thread and a direct call (a test, an operator's
    run) at the same moment: one open roll-up per street, never two."""
    from data.models import Enterprise

    engine, eng = system["engine"], system["alert_engine"]
    now = time.time()
    with engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == "E1")
                     .values(last_inspected_at=now - 31 * 86400, next_due_at=now - 86400))
    for day in range(2, 8):  # each a new day: each run may open that day's roll-up
        at = now + day * 86400
        start = threading.Barrier(4)

        def run(at=at, start=start):
            start.wait()
            eng.roll_up_overdue(at)

        with ThreadPoolExecutor(4) as pool:
            for f in [pool.submit(run) for _ in range(4)]:
                f.result()
        code, body = api(system["client"], system["tokens"]["dispatcher"], "GET",
                         "/alerts?state=open&type=overdue_inspection")
        st1 = [a for a in body if a["street_id"] == "ST1"]
        assert code == 200 and len(st1) == 1, f"day +{day}: {[(a['id'], a['details']['day']) for a in st1]}"


def test_an_inspector_gone_quiet_on_duty_is_an_alert(system):
    s = system["settings"]
    with Publisher(s.mqtt_url) as pub:
        pub.publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location",
                    {"ts": time.time() - 1200, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2]})
    live = LiveState(system["redis"], s.redis_namespace)
    wait_until(lambda: live.inspector_fixes(["I1"]))
    system["alert_engine"].sweep_inspectors(time.time())
    code, body = api(system["client"], system["tokens"]["dispatcher"], "GET", "/alerts?state=open&type=inspector_offline")
    assert [a["inspector_id"] for a in body] == ["I1"]


def test_an_inspector_heard_again_is_marked_back_and_quiet_again_counted_again(system):
    """The sweep's whole round on real MQTT, Redis and SQL: quiet on duty opens the alert,
    a fresh fix marks it back (``returned_to_normal_at``), quiet again counts it again.
    The sweep finds the alert it has to look at again from one query for every
    active inspector_offline alert, not from one naming each inspector."""
    s = system["settings"]
    live = LiveState(system["redis"], s.redis_namespace)
    dispatcher = system["tokens"]["dispatcher"]

    def fix(ts: float) -> None:
        with Publisher(s.mqtt_url) as pub:
            pub.publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location",
                        {"ts": ts, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2]})
        wait_until(lambda: (f := live.inspector_fixes(["I1"]).get("I1")) and abs(f.ts - ts) < 0.01)

    def shown() -> dict:
        code, body = api(system["client"], dispatcher, "GET", "/alerts?state=open&type=inspector_offline")
        assert code == 200 and len(body) == 1, body
        return body[0]

    t0 = time.time()
    fix(t0 - 1200)
    system["alert_engine"].sweep_inspectors(t0)
    first = shown()
    assert first["inspector_id"] == "I1" and first["returned_to_normal_at"] is None and first["count"] == 1

    fix(t0 + 5)
    system["alert_engine"].sweep_inspectors(t0 + 10)
    back = shown()
    assert back["id"] == first["id"] and back["returned_to_normal_at"] is not None

    system["alert_engine"].sweep_inspectors(t0 + 5 + 1000)  # quiet again, on duty
    again = shown()
    assert again["id"] == first["id"] and again["returned_to_normal_at"] is None and again["count"] == 2


def test_inspector_sweeps_run_at_once_open_one_alert(system):
    s = system["settings"]
    with Publisher(s.mqtt_url) as pub:
        pub.publish(f"{s.mqtt_prefix}/v1/inspectors/I1/location",
                    {"ts": time.time() - 1200, "lat": ENTERPRISE_A[1], "lon": ENTERPRISE_A[2]})
    wait_until(lambda: LiveState(system["redis"], s.redis_namespace).inspector_fixes(["I1"]))
    start = threading.Barrier(4)

    def run():
        start.wait()
        system["alert_engine"].sweep_inspectors(time.time())

    with ThreadPoolExecutor(4) as pool:
        for f in [pool.submit(run) for _ in range(4)]:
            f.result()
    code, body = api(system["client"], system["tokens"]["dispatcher"], "GET", "/alerts?state=open&type=inspector_offline")
    assert code == 200 and [a["inspector_id"] for a in body] == ["I1"]


def test_an_alarm_is_sent_only_to_a_real_inspector_and_odd_fields_are_refused(system):
    """What a hostile-input sweep of the demo sent: an alarm "dispatched" to an inspector
    who does not exist answered 200, sent nobody and stopped escalating; a list where a
    string belongs, or a nesting 5,000 deep, answered 500.  Each is now refused with a
    reason, changes nothing, and the alarm goes on escalating until a real inspector
    is sent."""
    raise_alarm(system)
    a = wait_until(lambda: open_alerts(system))[0]
    client, tok = system["client"], system["tokens"]["dispatcher"]
    path = f"/alerts/{a['id']}"
    refused = [
        ("assign", {"inspector_id": "GHOST"}, 400, "unknown_inspector"),
        ("assign", {"inspector_id": "I1" * 40}, 400, "bad_field"),
        ("assign", {"inspector_id": [1]}, 400, "bad_field"),
        ("assign", {"inspector_id": {"a": 1}}, 400, "bad_field"),
        ("assign", {"inspector_id": 5}, 400, "bad_field"),
        ("assign", {"inspector_id": "I1", "note": [1]}, 400, "bad_field"),
        ("assign", {"inspector_id": "I1", "note": "a\u0000b"}, 400, "bad_field"),
        ("assign", {"inspector_id": "I1", "note": "x" * 2001}, 400, "bad_field"),
        ("ack", {"note": {"a": 1}}, 400, "bad_field"),
        ("resolve", {"outcome": ["false_alarm"]}, 400, "bad_field"),
        ("reassign", {"inspector_id": "I1", "enterprise_id": "NOPE"}, 400, "unknown_enterprise"),
    ]
    for action, body, status, code in refused:
        got, answer = api(client, tok, "POST", f"{path}/{action}", body)
        assert (got, answer["error"]) == (status, code), (action, body, answer)
    deep = "[" * 5000 + "]" * 5000
    r = client.post(f"/api/v1{path}/ack", data=deep, content_type="application/json",
                    headers={"Authorization": f"Bearer {tok}"})
    assert (r.status_code, r.get_json()["error"]) == (400, "bad_json")
    after = api(client, tok, "GET", path)[1]
    assert after["state"] == "open" and after["assignee_id"] is None
    assert [h["action"] for h in after["history"]] == ["open"], "a refused action left a trace in the history"
    # Nobody was sent, so the alarm still climbs the ladder (escalate_t1_s = 2 s).
    wait_until(lambda: api(client, tok, "GET", path)[1]["escalation_level"] >= 1, timeout_s=8)
    code, body = api(client, tok, "POST", f"{path}/assign", {"inspector_id": "I1", "note": "第一行\n第二行"})
    assert code == 200 and body["state"] == "dispatched" and body["assignee_id"] == "I1"
