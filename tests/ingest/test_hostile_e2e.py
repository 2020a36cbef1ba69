"""Hostile and unusual messages through the real Mosquitto, Redis and SQL (ingest
worker, alert engine, HTTP API together), then looked at where a user looks."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack

import pytest
from sqlalchemy import select

from alerts.escalation import Ladder
from dashboard.context import WebContext
from dashboard.server import create_server
from data.alert_store import AlertStore
from data.auth import create_token
from data.live import LiveState
from data.models import DeadLetter
from ingest.alert_engine import AlertEngine
from ingest.worker import IngestWorker
from tests.citykit import ENTERPRISE_B, write_small_city
from tests.mqttkit import Publisher, wait_until
from tests.close import at, deg


@pytest.fixture
def system(settings, engine, redis_client):
    """Ingest worker + alert engine + API, as `python app.py` wires them (SQLite and PostgreSQL).
    What was started is stopped even when a later step of the setup fails (an engine left
    running would write into the next test's Redis)."""
    write_small_city(engine)
    with ExitStack() as started:
        worker = IngestWorker(settings, engine, redis_client)
        worker.start()
        started.callback(worker.stop)
        store = AlertStore(engine, LiveState(redis_client, settings.redis_namespace), Ladder.from_settings(settings),
                           mqtt_prefix=settings.mqtt_prefix)
        eng = AlertEngine(settings, engine, redis_client, store, settings.mqtt_url)
        eng.start()
        started.callback(eng.stop)
        ctx = WebContext(settings, engine, redis_client, settings.mqtt_url)
        started.callback(ctx.feed.stop)
        client = create_server(ctx).test_client()
        token = create_token(engine, "dispatcher")[0]
        pub = Publisher(settings.mqtt_url)
        started.callback(pub.close)
        assert worker.conn.subscribed.wait(10)
        yield {"settings": settings, "engine": engine, "client": client, "token": token, "pub": pub,
               "live": LiveState(redis_client, settings.redis_namespace), "worker": worker}


def get(sys_, path):
    r = sys_["client"].get(f"/api/v1{path}", headers={"Authorization": f"Bearer {sys_['token']}"})
    return r.status_code, (r.get_json() if r.status_code == 200 else r.get_data(as_text=True)[:300])


def dead_letters(engine, topic):
    with engine.connect() as conn:
        return conn.execute(select(DeadLetter.reason).where(DeadLetter.topic == topic)).scalars().all()


def test_an_absurd_availability_time_is_dead_lettered_and_the_api_keeps_answering(system):
    """``{"state":"online","ts":1e300}`` once set an open sensor_offline alert's
    "returned to normal" time to about 1e297; every alert list then answered 500."""
    s, pub = system["settings"], system["pub"]
    topic = f"{s.mqtt_prefix}/v1/sensors/S1/availability"
    pub.publish(topic, {"state": "offline"})  # its last will: a sensor_offline alert opens
    alerts = wait_until(lambda: (a := get(system, "/alerts?type=sensor_offline")[1]) and a, timeout_s=15)
    alert_id = alerts[0]["id"]

    pub.publish(topic, {"state": "online", "ts": 1e300})
    assert wait_until(lambda: dead_letters(system["engine"], topic)) == ["ts_in_future"]
    # Never stored: live state still says offline, at a sane time.
    online, ts = system["live"].availability("sensor")["S1"]
    assert not online and abs(ts - time.time()) < 60

    time.sleep(0.5)  # room for the alert engine, had anything reached it
    code, body = get(system, f"/alerts/{alert_id}")
    assert code == 200, body
    assert body["returned_to_normal_at"] is None
    code, body = get(system, "/alerts?type=sensor_offline")
    assert code == 200, body
    assert [a["id"] for a in body] == [alert_id]


def test_an_offline_from_the_future_does_not_outvote_fresh_readings(system):
    s, pub = system["settings"], system["pub"]
    topic = f"{s.mqtt_prefix}/v1/sensors/S2/availability"
    pub.publish(topic, {"state": "offline", "ts": time.time() + 86400})
    assert wait_until(lambda: dead_letters(system["engine"], topic)) == ["ts_in_future"]
    pub.publish(f"{s.mqtt_prefix}/v1/sensors/S2/state", {"ts": time.time(), "lel": 2.0})

    def state_of_s2():
        code, body = get(system, "/sensors")
        assert code == 200, body
        return next(x["state"] for x in body if x["id"] == "S2")

    assert wait_until(lambda: (st := state_of_s2()) != "unknown" and st) == "normal"


def test_an_owntracks_phone_that_comes_back_after_its_last_will_is_not_offline(system):
    """The app's ``lwt`` marks the phone offline at its receive time; a fix taken
    after that must win, or the inspector stays offline for ever."""
    s, pub = system["settings"], system["pub"]
    topic = f"{s.owntracks_topic}/liuyang/phone"
    lat, lon = ENTERPRISE_B[1], ENTERPRISE_B[2]
    pub.publish(topic, {"_type": "location", "tst": int(time.time()) - 30, "lat": lat, "lon": lon, "acc": 10})
    pub.publish(topic, {"_type": "lwt", "tst": int(time.time()) - 3600})

    def status_of_i2():
        code, body = get(system, "/inspectors")
        assert code == 200, body
        return next((x["status"] for x in body if x["id"] == "I2"), None)

    assert wait_until(lambda: "I2" in system["live"].availability("inspector") and status_of_i2()) == "offline"
    time.sleep(1.1)  # the next fix is taken a second after the will was received
    pub.publish(topic, {"_type": "location", "tst": int(time.time()), "lat": lat, "lon": lon + 0.0005, "acc": 10})
    wait_until(lambda: system["live"].inspector_fixes(["I2"])["I2"].lon == deg(lon + 0.0005))
    assert status_of_i2() in ("on_duty", "visiting")


def test_a_phone_with_a_fast_clock_does_not_freeze_the_inspector_on_the_map(system, redis_client):
    """A phone that boots with its clock minutes fast (the ingest accepts up to
    ``ingest_max_future_s`` ahead) sends a fix, then takes the network's time.  The
    map used to keep the fast fix for those minutes (every fix of the present was
    "older"), and the geo engine dropped the present's fixes as late."""
    s, pub = system["settings"], system["pub"]
    topic = f"{s.mqtt_prefix}/v1/inspectors/I1/location"
    lat, lon = ENTERPRISE_B[1], ENTERPRISE_B[2]
    t = time.time()
    pub.publish(topic, {"ts": t + 250, "lat": lat, "lon": lon, "acc": 10, "msg_id": "fast-clock"}, qos=1)
    wait_until(lambda: system["live"].inspector_fixes(["I1"]).get("I1"))
    for k in range(1, 4):
        pub.publish(topic, {"ts": t + k, "lat": lat, "lon": lon + 0.0002 * k, "acc": 10, "msg_id": f"now-{k}"}, qos=1)
    fix = wait_until(lambda: (f := system["live"].inspector_fixes(["I1"])["I1"]) and f.lon == deg(lon + 0.0006)
                     and f, timeout_s=10)
    assert fix.ts == at(t + 3)

    def visit_state():
        raw = redis_client.get(f"{s.redis_namespace}:visit:I1")
        return raw and json.loads(raw.partition(b"|")[2])

    state = wait_until(lambda: (v := visit_state()) and len(v["buf"]) + (v["wm"] is not None) >= 4 and v)
    assert state["late"] == 0, "the present's fixes were dropped as late"
    assert sorted(e[0] for e in state["buf"]) == [at(x) for x in (t + 1, t + 2, t + 3, t + 250)]


# --- every message accounted for ---------------------------------------------------------------


def metrics(sys_) -> dict[str, float]:
    r = sys_["client"].get("/metrics", headers={"Authorization": f"Bearer {sys_['token']}"})
    assert r.status_code == 200
    out = {}
    for line in r.get_data(as_text=True).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def family(m: dict[str, float], name: str) -> dict[str, float]:
    """``{label value: sample}`` of one family with one label."""
    return {k.split('"')[1]: v for k, v in m.items() if k.startswith(name + "{")}


def test_every_message_received_is_applied_dead_lettered_or_ignored_with_a_reason(system):
    s, pub, worker = system["settings"], system["pub"], system["worker"]
    p, ot, z = s.mqtt_prefix, s.owntracks_topic, s.z2m_topic
    now = time.time()
    lat, lon = ENTERPRISE_B[1], ENTERPRISE_B[2]
    # A live availability message matches a shared and a non-shared subscription
    # (docs/mqtt.md, "Subscriptions"): with MQTT 5 the worker receives it twice,
    # and ignores the second copy as a duplicate delivery.
    echo = 1 if worker.conn.is_v5 else 0
    stream = [
        # applied
        (f"{p}/v1/inspectors/I1/location", {"ts": now, "lat": lat, "lon": lon}),
        (f"{p}/v1/sensors/S1/state", {"ts": now, "lel": 1.0, "msg_id": "a1"}),
        (f"{ot}/liuyang/phone", {"_type": "location", "tst": int(now), "lat": lat, "lon": lon}),
        (f"{z}/longhua/e2/kitchen/gas", {"gas": False, "gas_density": 0, "battery": 90}),
        # dead-lettered
        (f"{p}/v1/inspectors/I1/location", b"{not json"),
        (f"{p}/v1/sensors/S2/state", {"ts": now + 86400, "lel": 1.0}),
        (f"{p}/v1/inspectors/NOBODY/location", {"ts": now, "lat": lat, "lon": lon}),
        (f"{p}/v2/sensors/S1/state", {"ts": now, "lel": 1.0}),
        (f"{p}/v1/inspectors/I1", b"{}"),
        (f"{p}/v1/sensors/S1/availability", b"   "),
        (f"{p}/v1/sensors/S1/state", b" \n "),
        (f"{ot}/liuyang/phone", b"\t"),
        # ignored, by design or as a duplicate
        (f"{p}/v1/sensors/S1/state", {"ts": now, "lel": 1.0, "msg_id": "a1"}),
        (f"{ot}/liuyang/phone", {"_type": "waypoint", "desc": "home", "lat": lat, "lon": lon, "tst": int(now)}),
        (f"{ot}/liuyang/phone", {"_type": "card", "name": "Liu Yang"}),
        (f"{z}/bridge/state", {"state": "online"}),
        (f"{z}/hall", {"state": "ON", "linkquality": 80}),
        (f"{p}/v1/inspectors/I1/dispatch", {"task_id": "t1"}),
        (f"{p}/v1/inspectors/I1/tasks", {"task_id": "t2", "kind": "draw"}),  # a draw's task
        (f"{z}/hall/availability", {"state": "online"}),
    ]
    for topic, payload in stream:
        pub.publish(topic, payload)
    received = len(stream) + 2 * echo

    def settled():
        m = metrics(system)
        applied = sum(family(m, "anjian_messages_in_total").values())
        dead = sum(family(m, "anjian_messages_rejected_total").values())
        ignored = sum(family(m, "anjian_messages_ignored_total").values())
        got = m.get("anjian_messages_received_total", 0)
        return m if got == received and applied + dead + ignored == got else None

    m = wait_until(settled, timeout_s=15)
    assert family(m, "anjian_messages_in_total") == {"location": 2, "gas_state": 2}
    assert family(m, "anjian_messages_rejected_total") == {
        "bad_json": 4, "ts_in_future": 1, "unknown_device": 1, "unknown_topic": 2}
    assert family(m, "anjian_messages_ignored_total") == {
        "duplicate_msg_id": 1, "not_a_position": 2, "bridge_traffic": 1, "not_a_gas_detector": 1,
        "own_outbound": 2, "unregistered_z2m_availability": 1, **({"duplicate_delivery": 2} if echo else {})}
    assert family(m, "anjian_messages_accounted_total") == {
        "applied": 4, "dead_lettered": 8, "ignored": 8 + 2 * echo}
    # ...and it stays so: nothing is counted late or twice.
    time.sleep(1.5)
    assert settled() is not None
