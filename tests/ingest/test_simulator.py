"""The simulator against the real Mosquitto: every format arrives, the window holds."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from datetime import datetime
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from data.demo_city import (MANUAL_OWNTRACKS_ID, MANUAL_Z2M_NAME, RESERVED_INSPECTOR_IDS, RESERVED_SENSOR_IDS,
                             generate_city, write_city)
from geo.china import CHINA_TZ
from geo.coords import gcj02_to_wgs84, haversine_m
from ingest.simulator import CitySnapshot, Simulator, run_simulator
from tests.conftest import TEST_MQTT_URL

SHENZHEN = (113.70, 22.40, 114.65, 22.90)


@pytest.fixture(scope="module")
def tiny():
    return generate_city(7, "tiny")


class Recorder:
    """Subscribes to the test's three topic trees and keeps every message."""

    def __init__(self, settings):
        parts = urlsplit(TEST_MQTT_URL)
        self.messages: list[mqtt.MQTTMessage] = []
        self.closing = False
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(parts.hostname, parts.port or 1883)
        self.client.loop_start()
        self.client.subscribe(
            [(f"{settings.mqtt_prefix}/#", 1), (f"{settings.owntracks_topic}/#", 1), (f"{settings.z2m_topic}/#", 1)]
        )
        assert subscribed.wait(5)

    def _on_message(self, client, userdata, msg):
        with self.lock:
            if not self.closing:
                self.messages.append(msg)

    def retained(self, topic_filter: str, wait_s: float = 0.5) -> list[mqtt.MQTTMessage]:
        """What a new subscriber gets as retained messages on ``topic_filter``."""
        parts = urlsplit(TEST_MQTT_URL)
        got: list[mqtt.MQTTMessage] = []
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        c.on_message = lambda client, userdata, msg: got.append(msg)
        c.connect(parts.hostname, parts.port or 1883)
        c.loop_start()
        c.subscribe(topic_filter, qos=1)
        time.sleep(wait_s)
        c.disconnect()
        c.loop_stop()
        return [m for m in got if m.retain]

    def close(self):
        # Clear what the simulator left retained, so the shared broker does not collect it.
        with self.lock:
            self.closing = True
            topics = {m.topic for m in self.messages if m.topic.endswith("/availability")
                      or b'"_type":"location"' in m.payload}
        for topic in topics:
            self.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()


def sim_settings(settings, **kw):
    base = dict(
        sim_speedup=600.0,  # 20-90 min stays last 2-9 s, a 30 s ping interval 0.05 s
        sim_min_dwell_real_s=0.0,
        sim_active_inspectors=40,
        sim_active_sensors=120,
        sim_max_msgs_per_s=3000.0,
        sim_publish_window=50,
        sim_duplicate_visit_share=0.5,
        sim_bad_per_h=600.0,  # one a second at this speed-up
        # Several of each sensor episode in a few seconds, so every kind shows.
        sim_alarm_rate_per_h=36.0,
        sim_fault_rate_per_h=24.0,
        sim_offline_rate_per_h=24.0,
    )
    base.update(kw)
    return settings.model_copy(update=base)


def run_for(sim: Simulator, seconds: float) -> None:
    stop = threading.Event()
    t = threading.Thread(target=sim.run, args=(stop,))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join(15)
    assert not t.is_alive()


def ts_seconds(v) -> float:
    if isinstance(v, str):
        return datetime.fromisoformat(v).timestamp()
    return v / 1000.0 if v > 1e11 else float(v)


def test_every_format_arrives_with_contract_fields(settings, tiny):
    s = sim_settings(settings)
    rec = Recorder(s)
    sim = Simulator(s, tiny)
    t0 = time.time()
    run_for(sim, 5.0)
    time.sleep(0.5)
    # Availability (LWT-style) and OwnTracks locations stay retained on the broker.
    assert rec.retained(f"{s.mqtt_prefix}/v1/sensors/+/availability")
    assert rec.retained(f"{s.owntracks_topic}/+/+")
    rec.close()
    stats = sim.stats
    msgs = list(rec.messages)
    p, ot, z = s.mqtt_prefix, s.owntracks_topic, s.z2m_topic
    # The devices kept for trying by hand (README) are never published for.
    kept = [*RESERVED_INSPECTOR_IDS, *RESERVED_SENSOR_IDS, MANUAL_OWNTRACKS_ID, MANUAL_Z2M_NAME]
    assert not [m.topic for m in msgs if any(f"/{k}/" in m.topic + "/" for k in kept)]

    by_kind = defaultdict(list)
    for m in msgs:
        t = m.topic
        if t.startswith(f"{p}/v1/inspectors/") and t.endswith("/location"):
            by_kind["location"].append(m)
        elif t.startswith(f"{p}/v1/sensors/") and t.endswith("/state"):
            by_kind["state"].append(m)
        elif t.startswith(f"{p}/v1/") and t.endswith("/availability"):
            by_kind["availability"].append(m)
        elif t.startswith(f"{ot}/") and t.endswith("/event"):
            by_kind["ot_event"].append(m)
        elif t.startswith(f"{ot}/"):
            by_kind["ot"].append(m)
        elif t.startswith(f"{z}/") and t.endswith("/availability"):
            by_kind["z2m_availability"].append(m)
        elif t.startswith(f"{z}/"):
            by_kind["z2m"].append(m)
    for kind in ("location", "state", "availability", "ot", "ot_event", "z2m", "z2m_availability"):
        assert by_kind[kind], f"no {kind} messages; stats {dict(stats.published)}"

    bad_payloads = 0
    # Our own locations: {ts, lat, lon} plus acc, speed, batt, msg_id; WGS-84 or marked crs.
    seen_ids = defaultdict(int)
    last_ts: dict[str, float] = {}
    backwards = 0
    fixes: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for m in by_kind["location"]:
        try:
            d = json.loads(m.payload)
            lat, lon = float(d["lat"]), float(d["lon"])
            ts = ts_seconds(d["ts"])
        except (ValueError, KeyError, TypeError):
            bad_payloads += 1
            continue
        if d.get("crs") == "gcj02":
            lon, lat = gcj02_to_wgs84(lon, lat)
        if not (SHENZHEN[0] <= lon <= SHENZHEN[2] and SHENZHEN[1] <= lat <= SHENZHEN[3]) or not math.isfinite(lat):
            bad_payloads += 1
            continue
        if abs(ts - time.time()) > 300:
            bad_payloads += 1
            continue
        if "msg_id" not in d:
            bad_payloads += 1  # the deliberately bad ones carry none
            continue
        assert {"acc", "speed", "batt", "msg_id"} <= d.keys()
        assert 3 <= d["acc"] <= 15 and 0 <= d["batt"] <= 100 and d["speed"] >= 0
        assert t0 - 1 <= ts <= time.time() + 1  # real clock, not simulated time
        iid = m.topic.split("/")[-2]
        seen_ids[(iid, d["msg_id"])] += 1
        if ts < last_ts.get(iid, 0):
            backwards += 1
        last_ts[iid] = max(ts, last_ts.get(iid, 0))
        fixes[iid].append((ts, lon, lat))
    assert any(n == 2 for n in seen_ids.values()), "no duplicated delivery (same msg_id)"
    assert backwards > 0, "no out-of-order delivery"
    assert stats.duplicates > 0 and stats.out_of_order > 0

    # OwnTracks locations and transitions, as the booklet has them.
    for m in by_kind["ot"]:
        d = json.loads(m.payload)
        if d["_type"] == "lwt":
            continue
        assert d["_type"] == "location"
        assert {"tst", "lat", "lon", "acc", "vel", "batt", "tid"} <= d.keys()
        assert isinstance(d["tst"], int) and abs(d["tst"] - time.time()) < 300
        assert d["topic"] == m.topic and len(m.topic.split("/")) == 3
    for m in by_kind["ot_event"]:
        d = json.loads(m.payload)
        assert d["_type"] == "transition" and d["event"] in ("enter", "leave")
        assert {"tst", "lat", "lon", "acc", "tid", "wtst", "desc"} <= d.keys()

    # Sensors: own scheme {ts, lel | alarm, batt, msg_id}; Zigbee2MQTT Aqara fields.
    alarms = set()
    for m in by_kind["state"]:
        try:
            d = json.loads(m.payload)
            ts = ts_seconds(d["ts"])
        except (ValueError, KeyError, TypeError):
            bad_payloads += 1
            continue
        if "msg_id" not in d:
            bad_payloads += 1
            continue
        assert abs(ts - time.time()) < 300
        assert "lel" in d or d.get("alarm") == "fault"
        assert 0 <= d.get("lel", 0) <= 100 and 0 <= d["batt"] <= 100
        alarms.add(d.get("alarm"))
    assert {"none", "fault"} <= alarms and alarms & {"low", "high"}
    z2m_names = set()
    for m in by_kind["z2m"]:
        d = json.loads(m.payload)
        assert isinstance(d["gas"], bool) and 0 <= d["gas_density"] <= 100
        assert {"battery", "linkquality"} <= d.keys()
        z2m_names.add(m.topic[len(z) + 1:])
    assert any(n.count("/") == 3 for n in z2m_names), "no friendly name with '/'"
    # Availability: bare or {"state": ...}, retained on the broker.
    states = {m.payload.decode() for m in by_kind["availability"]}
    assert {"online", '{"state":"online"}'} & states
    assert any(json.loads(m.payload)["state"] == "offline" for m in by_kind["z2m_availability"]) or any(
        b"offline" in m.payload for m in by_kind["availability"]
    )

    # Deliberately bad messages were sent, and they are the ones that fail the checks above.
    assert sum(stats.bad.values()) >= 2
    assert bad_payloads >= 1

    # Staged duplicates: another unit had just been there, and the inspector went there.
    assert stats.staged_duplicates
    ents = tiny.enterprises.set_index("id")
    arrived = 0
    for dup in stats.staged_duplicates:
        assert dup.unit_id != dup.earlier_unit_id
        e = ents.loc[dup.enterprise_id]
        near = [f for f in fixes.get(dup.inspector_id, []) if f[0] >= dup.sent_at - 1
                and haversine_m(f[1], f[2], e.lon, e.lat) < 60]
        arrived += bool(near)
    assert arrived >= 1

    # Nothing lost, nothing dropped by paho, window respected.
    assert stats.dropped == 0 and stats.max_in_flight <= 50


def test_publish_window_holds_and_no_qos1_message_is_lost(settings, tiny):
    # A fix every 20 ms from each of 40 inspectors and no pacing to speak of:
    # the window, not the rate limit, is what holds the publisher back.
    s = sim_settings(settings, sim_publish_window=4, sim_max_msgs_per_s=50_000.0, sim_bad_per_h=0.0,
                     sim_ping_interval_s=3.0)
    rec = Recorder(s)
    sim = Simulator(s, CitySnapshot.from_city(tiny))
    samples = []

    def watch(stop):
        while not stop.is_set():
            samples.append(sim.in_flight())
            time.sleep(0.001)

    stop_watch = threading.Event()
    w = threading.Thread(target=watch, args=(stop_watch,))
    w.start()
    run_for(sim, 3.0)
    stop_watch.set()
    w.join()
    time.sleep(0.5)
    rec.close()
    stats = sim.stats
    assert stats.max_in_flight <= 4 and max(samples) <= 4
    assert stats.max_in_flight == 4  # the window was actually the limit
    qos1_published = sum(n for kind, n in stats.published.items() if kind != "location")
    qos1_received = sum(1 for m in rec.messages if m.qos == 1)
    assert qos1_published > 500
    assert qos1_received == qos1_published
    assert stats.acked == sum(stats.published.values()) and stats.dropped == 0


def test_rate_limit(settings, tiny):
    s = sim_settings(settings, sim_max_msgs_per_s=200.0)
    rec = Recorder(s)  # only to clear the retained messages afterwards
    sim = Simulator(s, tiny)
    run_for(sim, 2.0)
    time.sleep(0.3)
    rec.close()
    total = sum(sim.stats.published.values())
    # 2 s at 200/s plus the 0.1 s burst; the connect takes part of the 2 s.
    assert 100 < total <= 200 * 2.0 + 20 + 1


def test_run_simulator_reads_the_city_from_sql(sqlite_engine, settings, tiny):
    write_city(sqlite_engine, tiny)
    s = sim_settings(settings, sim_active_inspectors=5, sim_active_sensors=5)
    rec = Recorder(s)
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("stats", run_simulator(s, sqlite_engine, stop)))
    t.start()
    time.sleep(1.5)
    stop.set()
    t.join(15)
    time.sleep(0.3)
    rec.close()
    stats = result["stats"]
    assert stats.published["location"] + stats.published["owntracks_location"] > 0
    assert stats.published["sensor_state"] + stats.published["z2m_state"] > 0
    assert len(rec.messages) >= sum(stats.published.values()) - stats.published["location"]


def test_inspectors_mostly_follow_their_plan_for_today(settings, tiny):
    """Issue 15's demo: an inspector with a plan for today goes to its enterprises in plan
    order on most trips; the other trips are unplanned (nearby), so plan against actual
    has both to show."""
    snap = CitySnapshot.from_city(tiny)
    ents = snap.enterprises[snap.enterprises.street_id.notna()].id.tolist()
    who = snap.inspectors.id.tolist()[0]
    plan = ents[5:11]
    snap.plans = {who: plan, "nobody-registered": ents[:3]}
    s = sim_settings(settings, sim_active_inspectors=3, sim_duplicate_visit_share=0.0)
    sim = Simulator(s, snap, seed=11)
    agent = next(a for a in sim.agents if a.id == who)  # chosen first among its unit's inspectors
    trips = []
    for _ in range(40):
        agent.ent = sim._choose_next(agent, time.time())
        trips.append(str(sim.e_id[agent.ent]))
    planned = [t for t in trips if t in plan]
    assert planned == plan  # every planned enterprise, once, in plan order
    assert sim.stats.planned_trips == len(plan)
    before_last = trips.index(plan[-1]) + 1
    assert 0 < before_last - len(plan) <= 4  # a few unplanned trips on the way (85 % follow the plan)
    assert not agent.plan  # then the day's plan is done: the rest are unplanned
    assert sim.stats.unplanned_trips == 40 - len(plan)


def test_today_plans_come_from_approved_plans_and_joint_tasks(sqlite_engine, settings, tiny):
    from data.city_frames import day_plans
    from data.plans_store import PlansStore
    from plans.model import week_of

    write_city(sqlite_engine, tiny)
    today = datetime.now(CHINA_TZ).date().isoformat()
    store = PlansStore(sqlite_engine, duplicate_window_s=86400, intervals_d=settings.interval_days())
    insp = tiny.inspectors.iloc[0]
    ents = tiny.enterprises.id.tolist()
    rows = [(1, {"enterprise_id": ents[0], "date": today, "inspector_ids": [insp.id]}),
            (2, {"enterprise_id": ents[1], "date": today, "inspector_ids": [insp.id]})]
    plan = store.save_plan(insp.unit_id, week_of(today), rows, "disp", time.time())
    assert day_plans(sqlite_engine, today) == {}  # a draft is not a plan to follow yet
    for action in ("submit", "approve"):
        store.act_on_plan(plan["id"], action, "disp", time.time())
    assert day_plans(sqlite_engine, today) == {insp.id: [ents[0], ents[1]]}
