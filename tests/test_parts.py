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
from pathlib import Path

import pytest

from data.embedded import free_port, wait_listening
from tests.appkit import clean_env, get_json
from tests.mqttkit import wait_until
from tests.servicekit import Mosquitto, RedisServer

ROOT = Path(__file__).resolve().parents[1]
APP = [sys.executable, str(ROOT / "app.py")]


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
                    ANJIAN_WEB_PORT=port, ANJIAN_INGEST_WORKERS=2)
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
        t0 = time.monotonic()
        # A third process asking for a worker number in use is refused, in one line,
        # before it connects (it would take worker 1's session over).
        clash = subprocess.run([*APP, "ingest", "--worker-no", "1"], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=120)
        lines = [ln for ln in (clash.stdout + clash.stderr).splitlines() if ln.strip() and " INFO " not in ln]
        assert clash.returncode == 1 and len(lines) == 1, (clash.returncode, lines)
        assert "anjian-ingest-1" in lines[0] and "already running" in lines[0] and "--worker-no" in lines[0]
        time.sleep(max(0.0, watch_s - (time.monotonic() - t0)))
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


CONNECTING = [["migrate"], ["demo-city"], ["ingest"], ["alerts"], ["web"], ["simulate"],
              ["import", "enterprises", str(ROOT / "data" / "samples" / "enterprises.gpkg")],
              ["token", "create", "--role", "admin"], ["user", "create", "chen", "--role", "dispatcher"],
              ["audit", "verify"]]


def _pg_url(user: str, db: str) -> str:
    from sqlalchemy.engine import make_url

    from tests.conftest import TEST_PG_URL

    u = make_url(TEST_PG_URL).set(username=user, database=db, query={})
    return u.render_as_string(hide_password=False)


def test_every_connecting_command_answers_a_missing_role_or_database_with_one_line(tmp_path):
    """A real PostgreSQL URL naming a role (or a database) that does not exist: every
    command that connects says so in one line and exits 1 (it printed 118 lines of
    traceback), and the line tells how to create them."""
    from tests.conftest import unique

    role, db = unique("norole"), unique("nodb")
    base = dict(ANJIAN_DATA_DIR=tmp_path, ANJIAN_MQTT_URL="mqtt://127.0.0.1:1883",
                ANJIAN_REDIS_URL="redis://127.0.0.1:6379/0", ANJIAN_NEW_USER_PASSWORD="pw-not-used")
    runs = {(" ".join(c), "role"): (c, clean_env(**base, ANJIAN_DATABASE_URL=_pg_url(role, "anjian")))
            for c in CONNECTING}
    runs[("migrate", "database")] = (["migrate"], clean_env(**base, ANJIAN_DATABASE_URL=_pg_url("postgres", db)))
    procs = {k: subprocess.Popen([*APP, *c], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for k, (c, env) in runs.items()}
    out = {}
    for k, p in procs.items():
        try:
            out[k] = (p.communicate(timeout=180)[0], p.returncode)
        except subprocess.TimeoutExpired:
            p.kill()
            out[k] = (p.communicate()[0], "timeout")
    for (cmd, what), (text, rc) in out.items():
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert rc == 1 and len(lines) == 1, (cmd, what, rc, text[-3000:])
        if what == "role":
            assert f'role "{role}" does not exist' in lines[0], (cmd, lines)
            assert f"sudo -u postgres psql -c \"CREATE ROLE {role} LOGIN PASSWORD" in lines[0]
            assert f"sudo -u postgres createdb -O {role} anjian" in lines[0]
        else:
            assert f'database "{db}" does not exist' in lines[0], (cmd, lines)
            assert f"sudo -u postgres createdb -O postgres {db}" in lines[0]


def test_the_sample_files_import_into_an_empty_database_and_beside_the_demo_city(engine, settings):
    """The files the README imports exist, import without errors into a fresh database,
    and, beside the demo city, land inside Longhua's streets without clashing with it."""
    from sqlalchemy import select

    from data.demo_city import ensure_demo_city
    from data.importer import import_file
    from data.models import Enterprise, Sensor

    samples = ROOT / "data" / "samples"
    assert ensure_demo_city(engine, settings.model_copy(update={"sim_scale": "tiny"}))
    reports = [import_file(engine, "enterprises", samples / "enterprises.gpkg", progress=False),
               import_file(engine, "sensors", samples / "sensors.csv", progress=False),
               import_file(engine, "enterprises", samples / "enterprises.csv", progress=False)]
    assert all(r.ok for r in reports), [r.summary() for r in reports]
    assert [(r.inserted, r.unchanged) for r in reports] == [(20, 0), (10, 0), (0, 20)], "the CSV is the same rows"
    with engine.connect() as conn:
        ents = conn.execute(select(Enterprise.id, Enterprise.street_id).where(Enterprise.id.like("SAMPLE-%"))).all()
        sensors = conn.execute(select(Sensor.id, Sensor.street_id).where(Sensor.id.like("SAMPLE-%"))).all()
    assert len(ents) == 20 and all(street for _, street in ents), ents
    assert len(sensors) == 10 and all(street for _, street in sensors), sensors


def readme_parts_lines() -> list[str]:
    """The sh block of the README's "Running the parts separately" section, line by line."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Running the parts separately", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the section has an sh block"
    return [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def substitute(lines: list[str], subs: dict[str, str]) -> list[str]:
    """Replace each README value by the test's; each must occur in the block (else the
    README changed its addresses or names, and the test must be looked at)."""
    block = "\n".join(lines)
    missing = [old for old in subs if old not in block]
    assert not missing, f"the README's parts block no longer contains {missing}"
    out = []
    for ln in lines:
        for old, new in subs.items():
            ln = ln.replace(old, new)
        out.append(ln)
    return out


def login(base: str, username: str, password: str):
    """Log in through /login as a browser does; returns an opener with the session cookie."""
    import http.cookiejar
    import urllib.parse

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{base}/login", timeout=10) as r:
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.read().decode()).group(1)
    form = urllib.parse.urlencode({"username": username, "password": password, "csrf": csrf}).encode()
    with opener.open(f"{base}/login", data=form, timeout=10) as r:
        assert r.status == 200 and "/login" not in r.url, (r.status, r.url)
    return opener


@pytest.mark.slow
def test_the_readme_parts_section_line_by_line(tmp_path):
    """Every line of the README's parts block, as written, against PostgreSQL (a role and
    a database of the test's own, dropped afterwards), a private Redis and a private
    Mosquitto.  Substituted: the service addresses and ports, the role and database
    names, the web port, and `.venv/bin/python` by the interpreter running the tests
    (CI's is that .venv).  Added to the environment: a data directory in tmp_path and
    the new login's password (ANJIAN_NEW_USER_PASSWORD, which the README names).  Lines
    ending in `&` run in the background; before the first `mosquitto_pub` the test
    waits, as a user would, until /api/v1/health shows the two ingest workers; the
    `curl` line is repeated until the gas alarm is in its answer.  Then the new login
    sees the same alarm, and every background process stops on SIGINT."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import TEST_PG_URL, unique

    pg = make_url(TEST_PG_URL)
    role, db = unique("anjian_r"), unique("anjian_d")
    broker, redis_server = Mosquitto(tmp_path), RedisServer(tmp_path)
    broker.start()
    redis_server.start()
    port = free_port(18250)
    base = f"http://127.0.0.1:{port}"
    password = "pw-" + unique()
    lines = substitute(readme_parts_lines(), {
        "sudo -u postgres ": f"env PGHOST={pg.host} PGPORT={pg.port or 5432} PGUSER={pg.username} ",
        "CREATE ROLE anjian ": f"CREATE ROLE {role} ",
        "createdb -O anjian anjian": f"createdb -O {role} {db}",
        "mqtt://127.0.0.1:1883": broker.url,
        "redis://127.0.0.1:6379/0": redis_server.url,
        "postgresql+psycopg://anjian:anjian-pw@127.0.0.1:5432/anjian":
            f"postgresql+psycopg://{role}:anjian-pw@{pg.host}:{pg.port or 5432}/{db}",
        "-p 1883": f"-p {broker.port}",
        "http://127.0.0.1:8050": base,
        ".venv/bin/python": sys.executable,
    })
    env = clean_env(ANJIAN_DATA_DIR=tmp_path / "var", ANJIAN_WEB_PORT=port, ANJIAN_NEW_USER_PASSWORD=password)
    procs = Procs(tmp_path)
    admin = create_engine(TEST_PG_URL, isolation_level="AUTOCOMMIT")
    ran: list[tuple[str, str]] = []
    alarm = None
    try:
        for k, line in enumerate(lines):
            if m := re.fullmatch(r"export (\w+)=(\S+)\s*(#.*)?", line.strip()):
                env[m.group(1)] = m.group(2)
                continue
            if m := re.fullmatch(r"(.*?)\s*&\s*(#.*)?", line.strip()):
                procs.start(f"bg{k}", ["bash", "-c", f"exec {m.group(1)}"], env, ROOT)
                continue
            if line.startswith("mosquitto_pub"):
                def ready():
                    procs.check_alive()
                    try:
                        return get_json(f"{base}/api/v1/health")["ingest_workers"] == 2
                    except OSError:
                        return False

                wait_until(ready, 180, 0.5)
            if m := re.fullmatch(r"(\w+)=\$\((.*)\)", line.strip()):
                out = subprocess.run(["bash", "-c", m.group(2)], env=env, cwd=ROOT, capture_output=True, text=True,
                                     timeout=300)
                assert out.returncode == 0 and out.stdout.strip(), (line, out.stdout, out.stderr[-2000:])
                env[m.group(1)] = out.stdout.strip()
                ran.append((line, out.stdout))
                continue
            deadline = time.monotonic() + (90 if line.startswith("curl") else 0)
            while True:
                out = subprocess.run(["bash", "-c", line], env=env, cwd=ROOT, capture_output=True, text=True,
                                     timeout=300)
                assert out.returncode == 0, (line, out.stdout[-2000:], out.stderr[-3000:])
                if not line.startswith("curl"):
                    break
                body = json.loads(out.stdout)
                found = [a for a in (body if isinstance(body, list) else body.get("alerts", []))
                         if a["type"] == "gas_alarm" and a["sensor_id"] == "SAMPLE-S01"]
                if found or time.monotonic() > deadline:
                    break
                procs.check_alive()
                time.sleep(1)
            if line.startswith("curl"):
                assert found, ("the gas alarm published with mosquitto_pub is not in", line, out.stdout[-2000:],
                               {name: procs.output(name)[-1500:] for name in procs.logs})
                alarm = found[0]
            ran.append((line, out.stdout))
        assert alarm is not None, "the block ends with a curl of the alerts"
        assert alarm["state"] == "open" and alarm["enterprise_id"] == "SAMPLE-E01" and alarm["street_id"]
        assert ran[-1][1].startswith("audit chain OK"), ran[-1]
        # The login made by `user create` sees the alarm too.
        user = next(ln for ln in lines if " user create " in ln).split(" user create ", 1)[1].split()[0]
        with login(base, user, password).open(f"{base}/api/v1/alerts?state=open", timeout=10) as r:
            assert any(a["id"] == alarm["id"] for a in json.loads(r.read()))
        procs.check_alive()
    finally:
        codes = procs.stop()
        broker.stop()
        redis_server.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()
    assert codes == {n: 0 for n in codes}, {n: (c, procs.output(n)[-1500:]) for n, c in codes.items() if c}


def test_simulate_on_an_empty_database_says_to_write_a_city(tmp_path):
    """After `migrate` alone the database holds no city: `simulate` said so with a
    ValueError traceback; now one line names `demo-city`, and `demo-city` makes it run."""
    env = clean_env(ANJIAN_DATA_DIR=tmp_path, ANJIAN_MQTT_URL="mqtt://127.0.0.1:1883",
                    ANJIAN_REDIS_URL="redis://127.0.0.1:6379/0")
    subprocess.run([*APP, "migrate"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    out = subprocess.run([*APP, "simulate"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    assert out.returncode == 1 and len(lines) == 1 and "python app.py demo-city" in lines[0], (out.returncode, lines)
    out = subprocess.run([*APP, "demo-city", "--scale", "tiny"], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("demo city written (tiny"), out
    again = subprocess.run([*APP, "demo-city"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "already holds a city" in again.stdout and "600 enterprises" in again.stdout
