"""The demo's body camera: Debian's ffmpeg encodes a live HLS test pattern that a player on
another origin can fetch (CORS), and the simulator announces it for a few inspectors with
messages the real decoder accepts."""

from __future__ import annotations

import shutil
import time
import urllib.request

import pytest

from data.demo_city import generate_city
from ingest.decode import TopicScheme, decode
from ingest.demo_camera import DemoCamera
from ingest.simulator import Simulator
from tests.ingest.test_simulator import Recorder, run_for, sim_settings


def test_the_camera_serves_a_live_playlist_and_stops(tmp_path):
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is missing: scripts/ensure-services.sh installs Debian's ffmpeg")
    cam = DemoCamera(tmp_path / "cam")
    url = cam.start()
    try:
        assert url and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=5) as r:
            playlist = r.read().decode()
            assert r.headers["Access-Control-Allow-Origin"] == "*"
        assert playlist.startswith("#EXTM3U") and "#EXT-X-ENDLIST" not in playlist  # live: it goes on
        segment = next(line for line in playlist.splitlines() if line.endswith(".ts"))
        with urllib.request.urlopen(url.rsplit("/", 1)[0] + "/" + segment, timeout=5) as r:
            assert r.read(1) == b"\x47"  # an MPEG-TS sync byte
        proc = cam._proc
    finally:
        cam.stop()
    assert proc.poll() is not None, "ffmpeg still running after stop()"


def test_the_simulator_announces_streams_for_a_few_inspectors(settings):
    s = sim_settings(settings, sim_active_inspectors=6, sim_active_sensors=2, sim_bad_per_h=0.0)
    rec = Recorder(s)
    sim = Simulator(s, generate_city(7, "tiny"), stream_url="http://127.0.0.1:9/index.m3u8", stream_agents=2)
    run_for(sim, 4.0)
    time.sleep(0.3)
    rec.close()
    scheme = TopicScheme(prefix=s.mqtt_prefix, owntracks_base=s.owntracks_topic, z2m_base=s.z2m_topic)
    notices = [decode(m.topic, m.payload, scheme, time.time()) for m in rec.messages if m.topic.endswith("/stream")]
    assert {n.inspector_id for n in notices} == sim.streaming and len(sim.streaming) == 2
    for iid in sim.streaming:
        states = [n.state for n in notices if n.inspector_id == iid]
        assert states[0] == "live" and states[-1] == "ended", states  # and off when the demo stops
        assert all(a != b for a, b in zip(states, states[1:])), states  # live, ended, live, ...
        assert {n.hls_url for n in notices if n.inspector_id == iid} == {f"http://127.0.0.1:9/index.m3u8?cam={iid}"}
    assert sim.stats.published["stream"] == len(notices)
