"""The README's "Try it with real clients", as a person runs it: every
mosquitto_pub line names a device the demo city keeps for trying by hand (one the
simulator never drives), and each shows its effect through the API while the
simulator drives the rest of the city."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from data.demo_city import (MANUAL_INSPECTOR, MANUAL_OWNTRACKS_INSPECTOR, MANUAL_SENSOR, MANUAL_Z2M_SENSOR,
                            RESERVED_INSPECTOR_IDS, RESERVED_SENSOR_IDS, generate_city)
from ingest.simulator import CitySnapshot, Simulator
from tests.mqttkit import wait_until
from tests.close import deg

ROOT = Path(__file__).resolve().parents[1]


def readme_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Try it with real clients")
    section = text[start:text.index("\n## ", start + 5)]
    return section.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()


def publish_lines() -> list[str]:
    return [line for line in readme_lines() if line.startswith("mosquitto_pub")]


def topic_of(line: str) -> str:
    args = shlex.split(line.replace("$(date +%s)", "0"))
    return args[args.index("-t") + 1]


def device_of(topic: str, city) -> tuple[str, str]:
    """("inspector" | "sensor", id) that a README topic addresses in ``city``."""
    parts = topic.split("/")
    if parts[0] == "anjian":
        assert parts[1] == "v1" and parts[2] in ("inspectors", "sensors"), topic
        return parts[2][:-1], parts[3]
    if parts[0] == "owntracks":
        hit = city.inspectors[city.inspectors.owntracks_id == "/".join(parts[1:3])]
        assert len(hit) == 1, f"{topic}: no inspector of the demo city has OwnTracks id {'/'.join(parts[1:3])}"
        return "inspector", hit.id.iloc[0]
    if parts[0] == "zigbee2mqtt":
        hit = city.sensors[city.sensors.z2m_name == "/".join(parts[1:])]
        assert len(hit) == 1, f"{topic}: no sensor of the demo city has the Zigbee2MQTT name {'/'.join(parts[1:])}"
        return "sensor", hit.id.iloc[0]
    raise AssertionError(f"unexpected topic {topic}")


def test_the_readme_names_devices_kept_for_trying_by_hand(settings):
    city = generate_city(settings.sim_seed, "tiny")
    devices = [device_of(topic_of(line), city) for line in publish_lines()]
    assert sorted(devices) == sorted([("inspector", MANUAL_INSPECTOR), ("inspector", MANUAL_OWNTRACKS_INSPECTOR),
                                      ("sensor", MANUAL_SENSOR), ("sensor", MANUAL_Z2M_SENSOR)])
    assert set(city.inspectors.id) >= RESERVED_INSPECTOR_IDS and set(city.sensors.id) >= RESERVED_SENSOR_IDS
    # Every device of the city driven, but never the ones kept for trying by hand.
    everyone = settings.model_copy(update={"sim_active_inspectors": 10_000, "sim_active_sensors": 10_000})
    sim = Simulator(everyone, city)
    assert {a.id for a in sim.agents} == set(city.inspectors.id) - RESERVED_INSPECTOR_IDS
    assert {s.id for s in sim.sensors} == set(city.sensors.id) - RESERVED_SENSOR_IDS


@pytest.mark.slow
def test_each_readme_example_shows_its_effect_through_the_api(settings, sqlite_engine, redis_client):
    # The test command installs both (scripts/ensure-services.sh): missing, this fails, never skips.
    assert shutil.which("mosquitto_pub") and shutil.which("curl"), "needs mosquitto-clients and curl (make services)"
    from alerts.escalation import Ladder
    from data.alert_store import AlertStore
    from data.auth import create_token
    from data.demo_city import ensure_demo_city
    from data.live import LiveState
    from ingest.alert_engine import AlertEngine
    from ingest.worker import IngestWorker
    from tests.dashboard import webkit
    from tests.ingest.test_simulator import Recorder, sim_settings

    s = settings.model_copy(update={"sim_scale": "tiny", "tiles": "none"})
    assert ensure_demo_city(sqlite_engine, s)
    ns = s.mqtt_prefix
    worker = IngestWorker(s, sqlite_engine, redis_client)
    store = AlertStore(sqlite_engine, LiveState(redis_client, ns), Ladder.from_settings(s), mqtt_prefix=ns)
    alert_engine = AlertEngine(s, sqlite_engine, redis_client, store, s.mqtt_url)
    ctx, server, _app = webkit.build_web(s, sqlite_engine, redis_client)
    # The simulator drives every other device of the city, fast.
    rec = Recorder(s)
    sim = Simulator(sim_settings(s, sim_bad_per_h=0.0, sim_alarm_rate_per_h=0.0),
                    CitySnapshot.from_engine(sqlite_engine))
    stop = threading.Event()
    sim_thread = threading.Thread(target=sim.run, args=(stop,), daemon=True)
    worker.start()
    alert_engine.start()
    srv = webkit.ServerThread(server).__enter__()
    try:
        assert worker.conn.subscribed.wait(10)
        sim_thread.start()
        time.sleep(1.0)
        broker = urlsplit(s.mqtt_url)
        for line in publish_lines():  # as written, on the test's broker and topic prefixes
            line = (line.replace("-p 1884", f"-h {broker.hostname} -p {broker.port or 1883}")
                    .replace(" -t anjian/", f" -t {ns}/").replace(" -t owntracks/", f" -t {s.owntracks_topic}/")
                    .replace(" -t zigbee2mqtt/", f" -t {s.z2m_topic}/"))
            subprocess.run(["bash", "-c", line], check=True, timeout=20)
        token, _ = create_token(sqlite_engine, "dispatcher")

        def curl(path_part: str) -> str:
            line = next(ln for ln in readme_lines() if ln.startswith("curl -s") and path_part in ln)
            out = subprocess.run(["bash", "-c", line.replace("127.0.0.1:8050", f"127.0.0.1:{srv.port}")],
                                 env={**os.environ, "TOKEN": token}, capture_output=True, text=True, timeout=20)
            return out.stdout

        def objects(path_part: str) -> dict:
            return {o["id"]: o for o in map(json.loads, curl(path_part).split())}

        def open_gas_alarms() -> set:
            return {a["sensor_id"] for a in json.loads(curl("alerts?state=open")) if a["type"] == "gas_alarm"}

        insp = wait_until(lambda: (o := objects("/api/v1/inspectors")) and len(o) == 2 and o, 20, 0.5)
        sens = wait_until(lambda: (o := objects("/api/v1/sensors"))
                          and {v["state"] for v in o.values()} == {"high"} and o, 20, 0.5)
        assert sorted(sens) == [MANUAL_SENSOR, MANUAL_Z2M_SENSOR]
        assert wait_until(lambda: open_gas_alarms() >= {MANUAL_SENSOR, MANUAL_Z2M_SENSOR}, 30, 0.5)
        time.sleep(3.0)  # the simulator goes on; what was published by hand stays
        assert sim.stats.published["location"] > 100, "the simulator drove the others meanwhile"
        insp = objects("/api/v1/inspectors")
        assert (insp[MANUAL_INSPECTOR]["lat"], insp[MANUAL_INSPECTOR]["lon"]) == deg((22.6563, 114.0312))
        assert (insp[MANUAL_OWNTRACKS_INSPECTOR]["lat"], insp[MANUAL_OWNTRACKS_INSPECTOR]["lon"]) == \
            deg((22.6570, 114.0330))
        assert insp[MANUAL_OWNTRACKS_INSPECTOR]["source"] == "owntracks"
        assert {v["state"] for v in objects("/api/v1/sensors").values()} == {"high"}
        assert len([a for a in json.loads(curl("alerts?state=open"))
                    if a["type"] == "gas_alarm" and a["sensor_id"] == MANUAL_SENSOR]) == 1
        assert json.loads(curl("deadletters?limit=5")) is not None
    finally:
        stop.set()
        sim_thread.join(15)
        srv.__exit__(None, None, None)
        ctx.feed.stop()
        alert_engine.stop()
        worker.stop()
        rec.close()  # clears what the simulator left retained on the shared broker
