"""Alarms first, under overload: ten times a city's load, with the parts in their own processes (issue 14 §3).

    .venv/bin/python bench/bench_overload.py [--minutes 10] [--inspectors 20000] [--fix-every-s 5]
        [--sensors 50000] [--heartbeat-s 60] [--alarm-every-s 1] [--db postgresql|sqlite] [--no-browser]
        [--nice-alerts -5] [--profile DIR] [--partition [--nice-sensors -5] [--nice-locations N]] [--nice-services N]
        [--duplicates N]

Runs the system as production does, one process per part (docs/architecture.md,
"Processes"), on the local Mosquitto (1883) and Redis (6379), and on a fresh
PostgreSQL database made for the run and dropped after it (``--db sqlite``: a
file): ``app.py ingest --no-alerts`` (one worker; ``--partition``: two, one per
partition of the topics, ``ANJIAN_INGEST_TOPICS`` sensors and locations), ``app.py alerts`` (at nice -5,
as its systemd unit runs it, when this runs as root) and ``app.py web``
(gunicorn).  The city is the generated Longhua city at ``city``
scale (130,000 enterprises, 2,000 inspectors, 50,000 gas detectors); the
``--inspectors`` that report are registered on top of it (2,000 is the city,
20,000 ten times it).  For ``--minutes``, from processes of their own
(multiprocessing, not threads of this one):

- location fixes: each of ``--inspectors`` every ``--fix-every-s`` (QoS 0, with a
  msg_id and a seq, as the phone app sends them), from ``--load-procs`` processes
  (``bench_alarm_latency.load_publisher``);
- heartbeats: each of the city's ``--sensors`` detectors every ``--heartbeat-s``
  (QoS 1, ``lel`` near 0, ``alarm`` none, a msg_id; 60 s is a mains-powered
  detector's usual report period, the busy end: battery NB-IoT detectors report
  every few minutes to hours);

and from this process a high gas alarm every ``--alarm-every-s``, each on a
detector of its own (QoS 1).  Measured:

- alarm -> API: from the publish to the open alert listed by ``GET
  /api/v1/alerts`` (polled every 20 ms with a dispatcher token, ``since`` the
  oldest alarm still awaited);
- alarm -> DOM: to the alert's row (``#queue-row-ID``) in the dispatcher console
  in Debian's chromium (Playwright; a MutationObserver stamps ``Date.now()``);
- memory: RSS of each process (the web: gunicorn's master and workers together)
  and Redis ``used_memory``, every 5 s; CPU of each;
- shedding: the worker's shed count, and what ``GET /api/v1/health`` says
  (``ingest_shed``, ``status``, ``reasons``);
- the drain: from the load's end until the worker's queues are empty, it has
  received nothing for 2 s, and the alert engine has read its whole stream.

``--duplicates N`` also stages N duplicate visits during the load, 30 s into it
(``bench_alarm_latency.time_duplicates``: two inspectors of different units at
one enterprise, each staying the dwell), and times each from the fix that
completes the second stay to the duplicate event: the visit path under the
load, beside the alarms (target: duplicate detection within 1 s).

``--profile DIR`` runs ingest and alerts under yappi (every thread; CPU clock, or
wall with OVL_PROFILE_CLOCK=wall) and writes their profiles there when they stop.

Targets: alarm -> API p95 <= 200 ms, alarm -> DOM p95 <= 1 s, memory bounded.
Each run has its own MQTT topic prefix and Redis namespace, deleted after it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_alarm_latency import paced, pct, start_load, time_duplicates  # noqa: E402
from bench_ingest import BENCH_SESSION_EXPIRY_S, BROKER, PG, REDIS  # noqa: E402
from bench_screens import CHROMIUM, CHROMIUM_ARGS, PASSWORD, Screen, System  # noqa: E402
from data.live import GAS_ALARMS, GAS_LANES  # noqa: E402

CITY_INSPECTORS = 2_000
SAMPLE_EVERY_S = 5.0
# The run's own keys in Redis are measured this often (a SCAN and MEMORY USAGE of each key).
NAMESPACE_EVERY_S = 60.0
# An alarm not listed by the API this long after its publish counts as missed.
ALARM_GIVE_UP_S = 30.0
# The drain is over when nothing more arrived at the worker for this long.
DRAIN_QUIET_S = 2.0

# Stamps Date.now() when a row of the dispatcher's queue first appears.
ROWS_JS = """() => {
  window.__rows = window.__rows || {};
  const stamp = () => {
    const now = Date.now();
    for (const tr of document.querySelectorAll('#dispatch-queue tr[id^="queue-row-"]')) {
      const id = tr.id.slice(10);
      if (!(id in window.__rows)) window.__rows[id] = now;
    }
  };
  stamp();
  new MutationObserver(stamp).observe(document.body, {childList: true, subtree: true});
}"""


def heartbeat_publisher(url: str, prefix: str, ids: list[str], period_s: float, started, stop, sent) -> None:
    """A state message of each of ``ids`` every ``period_s`` (QoS 1), spread evenly,
    until ``stop``; ``sent`` (a shared counter) holds how many were handed to paho."""
    import random
    from urllib.parse import urlsplit

    import orjson
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    u = urlsplit(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-heartbeats", protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)  # QoS 1: not one PUBACK round trip per 20 messages
    c.connect(u.hostname, u.port or 1883)
    c.loop_start()
    rnd = random.Random(3)
    topics = [f"{prefix}/v1/sensors/{i}/state" for i in ids]
    seq = [0] * len(ids)
    n = 0
    started.set()

    def counted():
        sent.value = n

    for k in paced(len(ids) / period_s, len(ids), stop, start=rnd.randrange(len(ids)), on_step=counted):
        seq[k] += 1
        body = {"ts": round(time.time(), 3), "lel": round(rnd.uniform(0, 3), 1), "alarm": "none", "batt": 90,
                "msg_id": f"{ids[k]}-hb{seq[k]}"}
        c.publish(topics[k], orjson.dumps(body), qos=1)
        n += 1
    c.disconnect()
    c.loop_stop()


def ping_worker(workers: dict) -> dict:
    """The heartbeat of the worker that takes the fixes (with ``--partition``, the
    locations one), whose queue, shed count and lag the report shows."""
    return next((w for w in workers.values() if w.get("topics") != "sensors"), next(iter(workers.values()), {}))


class Parts:
    """``app.py ingest --no-alerts``, ``app.py alerts`` and ``app.py web`` as child processes;
    with ``partition``, two ingest processes, ``ingest-sensors`` (ANJIAN_INGEST_TOPICS=sensors)
    and ``ingest`` (locations)."""

    def __init__(self, ns: str, db_url: str, tmp: Path, port: int, partition: bool = False):
        self.tmp = tmp
        self.partition = partition
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "ANJIAN_MQTT_URL": BROKER, "ANJIAN_REDIS_URL": REDIS, "ANJIAN_DATABASE_URL": db_url,
            "ANJIAN_DATA_DIR": str(tmp), "ANJIAN_MQTT_PREFIX": ns, "ANJIAN_REDIS_NAMESPACE": ns,
            "ANJIAN_OWNTRACKS_TOPIC": f"{ns}-ot", "ANJIAN_Z2M_TOPIC": f"{ns}-z2m",
            "ANJIAN_MQTT_CLIENT_ID": f"{ns}-ingest", "ANJIAN_MQTT_SHARE_GROUP": ns,
            "ANJIAN_MQTT_SESSION_EXPIRY_S": str(BENCH_SESSION_EXPIRY_S), "ANJIAN_INGEST_WORKERS": "1",
            "ANJIAN_WEB_PORT": str(port), "ANJIAN_TILES": "none", "ANJIAN_SECRET_KEY": uuid.uuid4().hex,
            "ANJIAN_LOG_LEVEL": "WARNING", "ANJIAN_REPORT_SCHEDULE": "false",
        }
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, profile_dir: Path | None, nice: dict[str, int]) -> None:
        parts = {"ingest": ["ingest", "--no-alerts"], "alerts": ["alerts"], "web": ["web"]}
        env = {part: self.env for part in parts}
        if self.partition:
            parts = {"ingest-sensors": ["ingest", "--no-alerts"], **parts}
            env["ingest-sensors"] = {**self.env, "ANJIAN_INGEST_TOPICS": "sensors"}
            env["ingest"] = {**self.env, "ANJIAN_INGEST_TOPICS": "locations"}
        for part, argv in parts.items():
            log = open(self.tmp / f"{part}.log", "w")  # noqa: SIM115 - the child holds it
            cmd = [sys.executable, str(ROOT / "app.py"), *argv]
            if profile_dir is not None and part != "web":
                # yappi over every thread of the part, written when it exits (SIGTERM ends it cleanly).
                cmd = [sys.executable, "-c", PROFILE_WRAPPER, str(profile_dir / f"{part}.txt"), *cmd[1:]]
            if nice.get(part):
                cmd = ["nice", "-n", str(nice[part]), *cmd]
            self.procs[part] = subprocess.Popen(cmd, cwd=ROOT, env=env[part], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2) as resp:
                    if (json.loads(resp.read()).get("ingest_workers") or 0) >= (2 if self.partition else 1):
                        return
            except OSError:
                pass
            for part, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{part} exited ({p.returncode}); see {self.tmp / (part + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the parts did not come up; logs in {self.tmp}")
            time.sleep(0.5)

    def stop(self) -> None:
        from data.embedded import stop_process

        for p in self.procs.values():
            stop_process(p, timeout_s=30)


PROFILE_WRAPPER = """
import atexit, io, runpy, sys
import yappi
out = sys.argv[1]
sys.argv = sys.argv[2:]
yappi.set_clock_type(__import__("os").environ.get("OVL_PROFILE_CLOCK", "cpu"))
yappi.start()
def dump():
    yappi.stop()
    buf = io.StringIO()
    yappi.get_func_stats().sort("tsub", "desc").print_all(out=buf, columns={0: ("name", 70), 1: ("ncall", 10),
                                                                              2: ("tsub", 8), 3: ("ttot", 8)})
    yappi.get_thread_stats().print_all(out=buf)
    open(out, "w").write(buf.getvalue())
atexit.register(dump)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class Sampler(threading.Thread):
    """Every SAMPLE_EVERY_S: RSS and CPU of each part, Redis's memory, the worker's
    heartbeat, GET /api/v1/health, and how old the live map's positions of
    ``watched`` inspectors are (now minus the time of the fix it shows: what a
    dispatcher choosing the nearest inspector sees; a fix every 5 s alone makes
    it up to 5 s)."""

    def __init__(self, parts: Parts, r, ns: str, extra_pids: dict[str, int], watched: list[str] = ()):
        super().__init__(daemon=True)
        self.parts, self.r, self.ns, self.extra = parts, r, ns, extra_pids
        self.watched = list(watched)
        self.samples: list[dict] = []
        self.halt = threading.Event()
        self._ns_at = 0.0

    def namespace_mb(self) -> float:
        """Memory of this run's keys (MEMORY USAGE of each): the Redis server is shared."""
        total, pipe, n = 0, self.r.pipeline(transaction=False), 0
        for k in self.r.scan_iter(match=f"{self.ns}:*", count=2000):
            pipe.memory_usage(k)
            n += 1
            if n % 2000 == 0:
                total += sum(x or 0 for x in pipe.execute())
        total += sum(x or 0 for x in pipe.execute())
        return total / 2**20

    def _procs(self) -> dict:
        import psutil

        out = {}
        for part, p in self.parts.procs.items():
            try:
                root = psutil.Process(p.pid)
                out[part] = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                out[part] = []
        for name, pid in self.extra.items():
            try:
                out[name] = [psutil.Process(pid)]
            except psutil.NoSuchProcess:
                out[name] = []
        return out

    def sample(self) -> dict:
        import psutil

        s: dict = {"t": time.time(), "rss_mb": {}, "cpu_s": {}}
        for part, procs in self._procs().items():
            rss = cpu = 0.0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    ct = p.cpu_times()
                    cpu += ct.user + ct.system
                except psutil.NoSuchProcess:
                    pass
            s["rss_mb"][part], s["cpu_s"][part] = rss / 2**20, cpu
        s["redis_mb"] = self.r.info("memory")["used_memory"] / 2**20
        if s["t"] - self._ns_at >= NAMESPACE_EVERY_S:
            self._ns_at = s["t"]
            s["ns_mb"] = self.namespace_mb()
        from data.live import LiveState

        live = LiveState(self.r, self.ns)
        s["workers"] = live.workers(max_age_s=30)
        s["received"] = sum(live.counters("received").values())
        s["in"] = live.counters("in")
        s["dropped"] = live.counters("dropped")
        if self.watched:
            ages = sorted(s["t"] - f.ts for f in live.inspector_fixes(self.watched).values())
            s["map_age_s"] = (statistics.median(ages), pct(ages, 95), ages[-1]) if ages else None
        # How far behind the alert engine is, and how long since the ingest last added a gas event.
        try:
            groups = [g for lane in GAS_LANES for g in self.r.xinfo_groups(f"{self.ns}:{lane}")]
            s["engine_behind"] = sum((g.get("lag") or 0) + g.get("pending", 0) for g in groups)
            last_id = self.r.xinfo_stream(f"{self.ns}:gas:events")["last-generated-id"]
            s["gas_event_age_s"] = time.time() - int(last_id.split(b"-")[0]) / 1000
        except Exception:  # noqa: BLE001 - no stream yet
            s["engine_behind"], s["gas_event_age_s"] = 0, None
        try:
            with urllib.request.urlopen(f"{self.parts.url}/api/v1/health", timeout=5) as resp:
                h = json.loads(resp.read())
            s["health"] = {k: h.get(k) for k in ("status", "ingest_shed", "ingest_queue", "ingest_lag_s", "reasons",
                                                 "sequence_gaps", "broker_dropped")}
        except OSError as e:
            s["health"] = {"error": str(e)}
        return s

    def run(self) -> None:
        while not self.halt.wait(SAMPLE_EVERY_S if self.samples else 0):
            try:
                self.samples.append(self.sample())
            except Exception as e:  # noqa: BLE001 - a sample lost is not a bench lost
                print(f"  sample failed: {e}", flush=True)


class Alarms:
    """One high gas alarm every ``every_s`` on sensors of their own (QoS 1), and a
    poller that times each until ``GET /api/v1/alerts`` lists its open alert."""

    def __init__(self, url: str, ns: str, token: str, sensors: list[str], every_s: float):
        self.url, self.ns, self.token, self.sensors, self.every_s = url, ns, token, sensors, every_s
        self.published: dict[str, float] = {}  # sensor -> publish time (epoch s)
        self.pending: dict[str, float] = {}
        self.api_ms: dict[str, float] = {}
        self.alert_of: dict[str, int] = {}  # sensor -> alert id
        self.missed: list[str] = []
        self.lane_at: dict[str, float] = {}  # sensor -> when its entry went into the alarm lane (lane_times)
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.polls = 0
        self.poll_ms: list[float] = []  # each poll's own round trip: request to parsed answer

    def publish_loop(self) -> None:
        from tests.mqttkit import Publisher

        with Publisher(BROKER) as pub:
            next_t = time.monotonic()
            for sid in self.sensors:
                if self.halt.is_set():
                    break
                t = time.time()
                with self.lock:
                    self.published[sid] = t
                    self.pending[sid] = t
                pub.publish(f"{self.ns}/v1/sensors/{sid}/state",
                            {"ts": round(t, 3), "lel": 66, "alarm": "high", "msg_id": uuid.uuid4().hex})
                next_t += self.every_s
                self.halt.wait(max(0.0, next_t - time.monotonic()))

    def poll_loop(self) -> None:
        while not (self.halt.is_set() and not self.pending):
            with self.lock:
                oldest = min(self.pending.values(), default=None)
            if oldest is None:
                time.sleep(0.02)
                continue
            req = urllib.request.Request(
                f"{self.url}/api/v1/alerts?state=open&type=gas_alarm&limit=2000&since={oldest - 1:.3f}",
                headers={"Authorization": f"Bearer {self.token}"})
            t_req = time.time()
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    rows = json.loads(resp.read())
            except OSError:
                rows = []
            now = time.time()
            self.polls += 1
            self.poll_ms.append((now - t_req) * 1000)
            with self.lock:
                for a in rows:
                    sid = a.get("sensor_id")
                    if sid in self.pending:
                        self.api_ms[sid] = (now - self.pending.pop(sid)) * 1000
                        self.alert_of[sid] = a["id"]
                for sid, t in list(self.pending.items()):
                    if now - t > ALARM_GIVE_UP_S:
                        self.missed.append(sid)
                        del self.pending[sid]
            time.sleep(0.02)


def make_database(kind: str, ns: str, tmp: Path) -> tuple[str, object]:
    """A fresh database for the run: (its URL, a function that drops it)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'anjian.sqlite3'}", lambda: None
    from sqlalchemy import create_engine, text

    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{ns}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{ns}" WITH (FORCE)'))
        admin.dispose()

    return PG.rsplit("/", 1)[0] + f"/{ns}", drop


def prepare_city(db_url: str, ns: str, tmp: Path):
    """The city at ``city`` scale, a dispatcher to log in and a dispatcher token."""
    from config.settings import load_settings
    from data.auth import create_token, create_user
    from data.db import make_engine, migrate
    from data.demo_city import generate_city, write_city

    s = load_settings(mqtt_url=BROKER, redis_url=REDIS, database_url=db_url, data_dir=tmp, mqtt_prefix=ns,
                      redis_namespace=ns)
    engine = make_engine(db_url)
    migrate(engine)
    city = generate_city(s.sim_seed, "city")
    write_city(engine, city)
    create_user(engine, "disp-b", PASSWORD, "dispatcher")
    token, _ = create_token(engine, "dispatcher")
    return s, engine, city, token


def _pids(name: str) -> list[int]:
    return [int(p) for p in subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()]


def _renice(pid: int, n: int) -> int | None:
    """Set ``pid``'s nice value to ``n``; its value before (None: it has exited)."""
    try:
        before = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, n)
        return before
    except ProcessLookupError:
        return None


def renice_services(n: int) -> dict[int, int]:
    """Set the nice value of every Mosquitto, Redis and PostgreSQL process (the
    postmaster too, so that new backends inherit it) to ``n``; returns pid -> the
    value before, for ``restore_nice``."""
    before = {pid: v for name in ("mosquitto", "redis-server", "postgres") for pid in _pids(name)
              if (v := _renice(pid, n)) is not None}
    if not before:
        raise SystemExit("--nice-services: no mosquitto, redis-server or postgres process found")
    return before


def restore_nice(before: dict[int, int]) -> None:
    """Each reniced process back to its value before; backends forked meanwhile (which
    inherited the postmaster's) to 0."""
    for pid, value in before.items():
        _renice(pid, value)
    for pid in _pids("postgres"):
        if pid not in before:
            _renice(pid, 0)


def dom_latencies(rows: dict, alarms: Alarms) -> tuple[dict[str, float], int]:
    """sensor -> ms from publish to its row in the console (``rows``: the page's
    alert id -> first seen, ms); and rows seen in all."""
    out = {}
    with alarms.lock:
        for sid, alert_id in alarms.alert_of.items():
            seen = rows.get(str(alert_id))
            if seen is not None:
                out[sid] = seen - alarms.published[sid] * 1000
    return out, len(rows)


def main() -> int:
    global BROKER  # --broker shipped: the run's own
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    ap.add_argument("--broker", choices=("system", "shipped"), default="system",
                    help="system: the machine's Mosquitto on 1883 as it is configured (Debian's defaults here); "
                         "shipped: a Mosquitto of the run's own with the configuration Anjian ships")
    ap.add_argument("--inspectors", type=int, default=10 * CITY_INSPECTORS,
                    help=f"inspectors reporting (the city: {CITY_INSPECTORS}; ten times: {10 * CITY_INSPECTORS})")
    ap.add_argument("--fix-every-s", type=float, default=5.0, help="each inspector's fix period")
    ap.add_argument("--sensors", type=int, default=50_000, help="detectors heartbeating (of the city's 50,000)")
    ap.add_argument("--heartbeat-s", type=float, default=60.0, help="each detector's heartbeat period")
    ap.add_argument("--alarm-every-s", type=float, default=1.0)
    ap.add_argument("--load-procs", type=int, default=2, help="processes publishing the fixes")
    ap.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--no-browser", action="store_true", help="skip the dispatcher console (alarm -> DOM)")
    ap.add_argument("--partition", action="store_true",
                    help="two ingest processes, one per partition of the topics (ANJIAN_INGEST_TOPICS sensors and "
                         "locations), instead of one")
    ap.add_argument("--drain-timeout-s", type=float, default=600.0)
    ap.add_argument("--nice-alerts", type=int, default=-5 if os.geteuid() == 0 else 0, metavar="N",
                    help="run the alert engine at this nice value: -5, as its systemd unit does "
                         "(config/systemd/anjian-alerts.service), when run as root (a lower value needs root), "
                         "else 0")
    ap.add_argument("--nice-sensors", type=int, default=None, metavar="N",
                    help="with --partition, run the gas detectors' ingest process at this nice value (default: as "
                         "--nice-alerts, as config/systemd/anjian-ingest-sensors@.service does)")
    ap.add_argument("--nice-locations", type=int, default=0, metavar="N",
                    help="with --partition, run the locations' ingest process at this nice value (0: as "
                         "config/systemd/anjian-ingest@.service does)")
    ap.add_argument("--nice-services", type=int, default=None, metavar="N",
                    help="renice this machine's Mosquitto, Redis and PostgreSQL processes (the services on an "
                         "alarm's way, which every part shares) to N for the run, and back after it (root)")
    ap.add_argument("--duplicates", type=int, default=0, metavar="N",
                    help="stage N duplicate visits 30 s into the load and time their detection (0: none)")
    ap.add_argument("--profile", type=Path, metavar="DIR",
                    help="run ingest and alerts under yappi (every thread, CPU clock; slows them) and write "
                         "their profiles to DIR")
    args = ap.parse_args()

    import redis

    from data.embedded import free_port, mosquitto_conf, wait_listening

    ns = f"ovl{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="bench-overload-"))
    broker_proc = None
    if args.broker == "shipped":
        # A Mosquitto of the run's own with the configuration Anjian ships (the embedded
        # broker's; docs/deploy.md): max_queued_messages 1,000,000 where the machine's
        # Debian default is 1,000, and max_inflight_messages 1,000 where it is 20.
        port = free_port(18830)
        (tmp / "mosq").mkdir()
        conf = tmp / "mosq" / "mosquitto.conf"
        conf.write_text(mosquitto_conf(port, tmp / "mosq", log_file=tmp / "mosq" / "mosquitto.log"))
        broker_proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        wait_listening("127.0.0.1", port)
        BROKER = f"mqtt://127.0.0.1:{port}"
        print(f"broker: a Mosquitto of its own with the shipped configuration, {BROKER} (log {conf.parent})")
    else:
        print(f"broker: the machine's, {BROKER}, with its own configuration")
    r = redis.Redis.from_url(REDIS)
    db_url, drop_db = make_database(args.db, ns, tmp)
    parts = Parts(ns, db_url, tmp, free_port(18700), partition=args.partition)
    ctx = mp.get_context("spawn")
    hb_stop = ctx.Event()
    load = None
    hb_proc = None
    engine = None
    reniced: dict[int, int] = {}
    try:
        t0 = time.perf_counter()
        s, engine, city, token = prepare_city(db_url, ns, tmp)
        fix_rate = args.inspectors / args.fix_every_s
        alarm_n = int(args.minutes * 60 / args.alarm_every_s) + 5
        sensors = sorted(city.sensors["id"])
        alarm_sensors, hb_sensors = sensors[-alarm_n:], sensors[: max(0, len(sensors) - alarm_n)][: args.sensors]
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        nice_sensors = args.nice_alerts if args.nice_sensors is None else args.nice_sensors
        if args.nice_services is not None:
            reniced = renice_services(args.nice_services)
        parts.start(args.profile, {"alerts": args.nice_alerts, "ingest-sensors": nice_sensors,
                                   "ingest": args.nice_locations if args.partition else 0})
        settle(engine)
        print(f"city ({len(city.enterprises)} enterprises, {len(city.sensors)} detectors) on {args.db}, parts up, "
              f"in {time.perf_counter() - t0:.0f} s; logs in {tmp}", flush=True)
        print(f"uptime before: {os.popen('uptime').read().strip()}; alert engine at nice {args.nice_alerts}"
              + (f", the detectors' ingest at nice {nice_sensors}, the locations' at nice {args.nice_locations}"
                 if args.partition else "")
              + (f", Mosquitto, Redis and PostgreSQL at nice {args.nice_services}" if reniced else ""), flush=True)
        # The load, from processes of its own.
        hb_started, hb_sent = ctx.Event(), ctx.Value("q", 0, lock=False)
        hb_proc = ctx.Process(target=heartbeat_publisher, args=(BROKER, ns, hb_sensors, args.heartbeat_s, hb_started,
                                                               hb_stop, hb_sent), daemon=True)
        hb_proc.start()
        load = start_load(s, engine, city, fix_rate, args.inspectors, args.load_procs, msg_ids=True)
        hb_started.wait(60)
        pids = {f"fixes{k}": p.pid for k, (p, _) in enumerate(load["procs"])} | {"heartbeats": hb_proc.pid}
        watched = [f"ILOAD-{k:04d}" for k in range(0, args.inspectors, max(1, args.inspectors // MAP_WATCHED))]
        sampler = Sampler(parts, r, ns, pids, watched)
        sampler.start()
        t_load = time.time()
        print(f"load: {args.inspectors} inspectors every {args.fix_every_s:g} s = {fix_rate:.0f} fixes/s (QoS 0), "
              f"{len(hb_sensors)} detectors every {args.heartbeat_s:g} s = {len(hb_sensors) / args.heartbeat_s:.0f} "
              f"heartbeats/s (QoS 1), one alarm every {args.alarm_every_s:g} s (QoS 1), for {args.minutes:g} min",
              flush=True)
        alarms = Alarms(parts.url, ns, token, alarm_sensors, args.alarm_every_s)
        screen = pw = browser = None
        if not args.no_browser:
            from playwright.sync_api import sync_playwright

            pw = sync_playwright().start()
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            screen = Screen(browser, parts.url).login("disp-b", "/dispatch")
            screen.page.wait_for_selector("#dispatch-queue", timeout=60_000)
            screen.page.evaluate(ROWS_JS)
        threads = [threading.Thread(target=alarms.publish_loop, daemon=True),
                   threading.Thread(target=alarms.poll_loop, daemon=True)]
        for t in threads:
            t.start()
        dups: dict = {}
        if args.duplicates:
            dup_thread = threading.Thread(target=stage_duplicates, args=(s, engine, r, city, args.duplicates, parts.url,
                                                                         token, dups), daemon=True)
            dup_thread.start()
        end = t_load + args.minutes * 60
        saved_rows: dict = {}
        last_report = time.time()
        while time.time() < end:
            if screen is not None:
                try:
                    screen.page.wait_for_timeout(1000)  # keeps Playwright's events flowing
                except Exception as e:  # noqa: BLE001 - the browser gave out: the rest of the run still counts
                    print(f"  the dispatcher console failed ({e}); alarm -> DOM counts its rows up to here",
                          flush=True)
                    screen = None
            else:
                time.sleep(1)
            if time.time() - last_report >= 60 and sampler.samples:
                last_report = time.time()
                if screen is not None:
                    saved_rows = screen.page.evaluate("window.__rows || {}")
                x = sampler.samples[-1]
                w = ping_worker(x["workers"])
                with alarms.lock:
                    got = list(alarms.api_ms.values())
                print(f"  +{(x['t'] - t_load) / 60:4.1f} min: ingest {x['rss_mb']['ingest']:.0f} MB, alerts "
                      f"{x['rss_mb']['alerts']:.0f} MB, web {x['rss_mb']['web']:.0f} MB, Redis {x['redis_mb']:.0f} MB;"
                      f" worker queue {w.get('queue')}, shed {w.get('shed')}, lag {w.get('lag_s', 0):.1f} s; "
                      f"engine behind {x.get('engine_behind')} events; map age p50/p95 "
                      f"{_ages(x.get('map_age_s'))}; "
                      f"alarms {len(got)} listed, p95 {pct(got, 95) if got else 0:.0f} ms; "
                      f"health {x['health'].get('status')} (shed {x['health'].get('ingest_shed')})", flush=True)
        # The load stops; the alarms still awaited are waited for.
        alarms.halt.set()
        t_stop = time.time()
        load["stop"].set()
        hb_stop.set()
        for p, _ in load["procs"]:
            p.join(30)
        hb_proc.join(30)
        # Read once the publishers have ended: each finishes the 10 ms step it is in
        # (20 fixes at 2,000/s), which a count read at the stop left out.
        offered = sum(v.value for v in load["sent"])
        hb_offered = hb_sent.value
        drain_s, drained = drain(r, ns, parts, args.drain_timeout_s, t_stop)
        for t in threads:
            t.join(ALARM_GIVE_UP_S + 5)
        dom, rows_seen = dom_latencies(saved_rows, alarms)
        if screen is not None:
            screen.page.wait_for_timeout(3000)
            dom, rows_seen = dom_latencies(screen.page.evaluate("window.__rows || {}"), alarms)
            screen.close()
        if browser is not None:
            browser.close()
            pw.stop()
        sampler.halt.set()
        sampler.join(15)
        sampler._ns_at = 0.0
        final = sampler.sample()
        print(f"uptime after: {os.popen('uptime').read().strip()}", flush=True)
        alarms.lane_at = lane_times(sampler.r, sampler.ns, list(alarms.api_ms))
        report(args, sampler.samples + [final], alarms, dom, rows_seen, t_load, t_stop, offered, hb_offered,
               drain_s, drained, engine)
        if args.duplicates:
            # Staging may outlast the load when fixes are late: its window is reported.
            dup_thread.join(DUP_WAIT_S * 2)
            report_duplicates(dups, args.duplicates, t_load, t_stop)
        # The web's own time per Dash callback over the run (its /metrics; bench_screens reads them the same way).
        means = System.callback_means(SimpleNamespace(url=parts.url, token=token))
        print("web: mean server time per callback over the run: " + ", ".join(
            f"{name} {ms:.0f} ms (n={n})" for name, (n, ms) in sorted(means.items()) if n))
        alive = {k: p.poll() is None for k, p in parts.procs.items()}
        print(f"parts alive at the end: {alive}")
        return 0
    finally:
        hb_stop.set()
        if load is not None:
            load["stop"].set()
        parts.stop()
        restore_nice(reniced)
        if engine is not None:
            engine.dispose()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        for k in range(0, len(keys), 1000):
            r.delete(*keys[k:k + 1000])
        drop_db()
        if broker_proc is not None:
            broker_proc.terminate()
            broker_proc.wait(30)


DUP_WAIT_S = 180.0
MAP_WATCHED = 1000  # inspectors of the load whose live position's age is sampled


def stage_duplicates(s, engine, r, city, n: int, url: str, token: str, out: dict, after_s: float = 30.0) -> None:
    """``time_duplicates`` during the load, ``after_s`` into it; what it found in ``out``."""
    time.sleep(after_s)

    def api_get(path: str):
        req = urllib.request.Request(f"{url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    out["started"] = time.time()
    try:
        # Fixes wait behind the load's (alarms have a lane of their own; fixes do not): the
        # probe and each duplicate are given up to DUP_WAIT_S, and the lag is what is measured.
        out["ms"], out["missed"], out["listed"] = time_duplicates(s, engine, r, city, n, api_get, wait_s=DUP_WAIT_S,
                                                                  probe_timeout_s=DUP_WAIT_S)
    except BaseException as e:  # noqa: BLE001 - reported with the rest, the run goes on
        out["error"] = repr(e)
    out["ended"] = time.time()


def report_duplicates(dups: dict, n: int, t_load: float, t_stop: float) -> None:
    if "error" in dups or "ms" not in dups:
        print(f"duplicates: staging failed or did not finish: {dups.get('error', 'still running at the end')}")
        return
    ms = dups["ms"]
    when = (f"staged {(dups['started'] - t_load) / 60:.1f}-{(dups['ended'] - t_load) / 60:.1f} min from the load's "
            f"start; it stopped at {(t_stop - t_load) / 60:.1f} min")
    if ms:
        print(f"duplicate detection over {len(ms)} of {n} staged duplicates ({when}): p50 {statistics.median(ms):.0f} ms, "
              f"p95 {pct(ms, 95):.0f} ms, max {max(ms):.0f} ms (target <= 1000 ms)")
    else:
        print(f"duplicate detection: none of {n} staged duplicates detected within {DUP_WAIT_S:.0f} s ({when})")
    print(f"GET /api/v1/visits lists {dups['listed']} of {n} staged duplicates with duplicate_of set to the first "
          f"unit's visit")
    for line in dups["missed"]:
        print(f"missed: {line}")


def _ages(a) -> str:
    return f"{a[0]:.1f}/{a[1]:.1f} s" if a else "-"


def settle(engine, timeout_s: float = 180.0) -> None:
    """Wait for the alert engine's start-up work before the load: the daily scores'
    catch-up (data/scores_store.py; a fresh database has yesterday to score, ~10 s
    of CPU at city scale), which production does once after a start, not under
    every load."""
    from sqlalchemy import func, select, table

    runs = table("score_runs")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(runs)).scalar_one():
                return
        time.sleep(1.0)
    print(f"  the scores' catch-up did not finish within {timeout_s:.0f} s; the load starts anyway", flush=True)


def drain(r, ns: str, parts: Parts, timeout_s: float, t_stop: float) -> tuple[float, bool]:
    """Seconds from the load's end until the worker's queues are empty, nothing more
    arrived for DRAIN_QUIET_S (but the engine's own escalations), and the alert
    engine has read its whole stream."""
    from data.live import LiveState

    live = LiveState(r, ns)
    last_received, quiet_since = None, None
    while time.time() - t_stop < timeout_s:
        # Not counting the alert engine's own escalations and dispatches, which the
        # worker receives (under the prefix) and ignores: they go on after the load.
        received = sum(live.counters("received").values()) - live.counters("dropped").get("own_outbound", 0)
        workers = live.workers(max_age_s=30)
        w = {"queue": sum(x.get("queue", 0) for x in workers.values())}
        try:
            groups = [g for lane in GAS_LANES for g in r.xinfo_groups(f"{ns}:{lane}")]
            engine_behind = sum((g.get("lag") or 0) + g.get("pending", 0) for g in groups)
        except Exception:  # noqa: BLE001 - no stream yet
            engine_behind = 0
        now = time.time()
        if received != last_received or w.get("queue", 1) or engine_behind:
            last_received, quiet_since = received, None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= DRAIN_QUIET_S:
            return quiet_since - t_stop, True
        time.sleep(0.25)
    return time.time() - t_stop, False


def lane_times(r, ns: str, sids: list[str]) -> dict[str, float]:
    """sensor id -> when the ingest added its (first) entry to the alarm lane, from the
    entry's id (Redis's clock, in ms)."""
    wanted, out = set(sids), {}
    for entry_id, f in r.xrange(f"{ns}:{GAS_ALARMS}"):
        sid = f.get(b"sensor", b"").decode()
        if sid in wanted and sid not in out:
            out[sid] = int(entry_id.split(b"-")[0]) / 1000
    return out


def breakdown(engine, alarms: Alarms) -> list[str]:
    """Where each alarm's time went, from the clocks the system keeps: publish ->
    the ingest's paho thread took it (its reading's ``received_at``) -> the ingest
    added it to the alert engine's alarm lane (the stream entry's id) -> the alert
    engine inserted the alert (``created_at``) -> the API listed it (the poll)."""
    from sqlalchemy import select

    from data.models import Alert, SensorReadingRow

    sids = list(alarms.api_ms)
    if not sids:
        return []
    with engine.connect() as conn:
        received = dict(conn.execute(select(SensorReadingRow.sensor_id, SensorReadingRow.received_at)
                                     .where(SensorReadingRow.sensor_id.in_(sids), SensorReadingRow.level == "high")
                                     ).all())
        created = dict(conn.execute(select(Alert.sensor_id, Alert.created_at)
                                    .where(Alert.sensor_id.in_(sids), Alert.type == "gas_alarm")).all())
    legs: dict[str, list[float]] = {"publish -> ingest received": [], "received -> alert inserted": [],
                                    "received -> in the alarm lane": [], "in the lane -> alert inserted": [],
                                    "inserted -> API listed": []}
    lane_at = alarms.lane_at
    for sid in sids:
        t_pub, t_api = alarms.published[sid], alarms.published[sid] + alarms.api_ms[sid] / 1000
        if sid in received and sid in created:
            legs["publish -> ingest received"].append((received[sid] - t_pub) * 1000)
            legs["received -> alert inserted"].append((created[sid] - received[sid]) * 1000)
            if sid in lane_at:
                legs["received -> in the alarm lane"].append((lane_at[sid] - received[sid]) * 1000)
                legs["in the lane -> alert inserted"].append((created[sid] - lane_at[sid]) * 1000)
            legs["inserted -> API listed"].append((t_api - created[sid]) * 1000)
    out = ["where the alarm's time went (p50 / p95 / max ms): " + "; ".join(
        f"{k} {statistics.median(v):.0f} / {pct(v, 95):.0f} / {max(v):.0f}" for k, v in legs.items() if v)]
    if alarms.poll_ms:  # the measuring client's own share of "inserted -> API listed"
        v = alarms.poll_ms
        out.append(f"the API poll's own round trip over {len(v)} polls (p50 / p95 / max ms): "
                   f"{statistics.median(v):.0f} / {pct(v, 95):.0f} / {max(v):.0f}; a poll every 20 ms after the last answer")
    return out


def report(args, samples, alarms: Alarms, dom: dict, rows_seen: int, t_load, t_stop, offered, hb_offered,
           drain_s, drained, engine) -> None:
    from sqlalchemy import func, select

    from data.models import PingRow

    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(PingRow)).scalar_one()
    last = samples[-1]
    w = ping_worker(last["workers"])
    load_s = t_stop - t_load
    print(f"\n== overload: {args.inspectors} inspectors every {args.fix_every_s:g} s, {args.sensors} detectors every "
          f"{args.heartbeat_s:g} s, one alarm every {args.alarm_every_s:g} s, {load_s / 60:.1f} min, {args.db}")
    print(f"fixes: {offered} published ({offered / load_s:.0f}/s), {last['in'].get('location', 0)} applied, "
          f"{stored} stored, {w.get('shed', 0)} shed ({last['dropped'].get('shed', 0)} counted as ignored 'shed')")
    print(f"heartbeats: {hb_offered} published ({hb_offered / load_s:.0f}/s), "
          f"{sum(last['in'].get(k, 0) for k in ('gas', 'gas_state', 'sensor'))} sensor readings applied "
          f"(in: {dict(sorted(last['in'].items()))})")
    api = list(alarms.api_ms.values())
    if api:
        print(f"alarm -> API over {len(api)} alarms: p50 {statistics.median(api):.0f} ms, p95 {pct(api, 95):.0f} ms, "
              f"p99 {pct(api, 99):.0f} ms, max {max(api):.0f} ms; {len(alarms.missed)} not listed within "
              f"{ALARM_GIVE_UP_S:.0f} s (target p95 <= 200 ms)")
    if dom:
        v = list(dom.values())
        print(f"alarm -> DOM (dispatcher console) over {len(v)} alarms: p50 {statistics.median(v):.0f} ms, "
              f"p95 {pct(v, 95):.0f} ms, max {max(v):.0f} ms; {len(api) - len(v)} listed by the API but never "
              f"seen in the console ({rows_seen} rows seen in all) (target p95 <= 1000 ms)")
    # Per minute of the load: the alarms published in it.
    print("per minute: alarm -> API p50 / p95 / max ms")
    for m in range(int(load_s // 60) + 1):
        xs = [alarms.api_ms[s] for s, t in alarms.published.items()
              if s in alarms.api_ms and m * 60 <= t - t_load < (m + 1) * 60]
        if xs:
            print(f"  min {m + 1:2d}: {statistics.median(xs):5.0f} / {pct(xs, 95):5.0f} / {max(xs):5.0f}  (n={len(xs)})")
    for line in breakdown(engine, alarms):
        print(line)
    print(f"drain after the load stopped: {drain_s:.1f} s" + ("" if drained else " (NOT drained: gave up)"))
    healths = [x["health"] for x in samples if "status" in x["health"]]
    shed_seen = [h.get("ingest_shed") or 0 for h in healths]
    degraded = sum(1 for h in healths if h.get("status") != "ok")
    reasons = next((h.get("reasons") for h in healths if h.get("ingest_shed")), None)
    print(f"health: {degraded} of {len(healths)} samples degraded; ingest_shed up to {max(shed_seen, default=0)} "
          f"(pings shed in the last minute); e.g. reasons {reasons}")
    if healths:
        # Lost before the ingest: the fixes' seq gaps, and the broker's own count of its drops (docs/mqtt.md).
        print(f"lost before the ingest, as health last said: {healths[-1].get('sequence_gaps') or 0} fixes missing "
              f"in sequence gaps; the broker counted {healths[-1].get('broker_dropped') or 0} messages it dropped")
    ages = [x["map_age_s"] for x in samples if x.get("map_age_s") and t_load + 30 <= x["t"] <= t_stop]
    if ages:
        print(f"live map: age of the watched inspectors' positions over {len(ages)} samples of the load (from 30 s "
              f"in): p50 of the samples' medians {statistics.median(a[0] for a in ages):.1f} s, their p95 "
              f"{pct([a[1] for a in ages], 95):.1f} s, oldest {max(a[2] for a in ages):.1f} s "
              f"(a fix every {args.fix_every_s:g} s alone: up to {args.fix_every_s:g} s)")
    print("memory (MB) and CPU (share of one core) over time:")
    parts = list(last["rss_mb"])
    print("| t (min) | " + " | ".join(f"{p} RSS" for p in parts)
          + " | Redis used (server) | the run's keys | worker queue | shed | worker lag (s) | engine behind |")
    print("|---" * (len(parts) + 7) + "|")
    for x in [x for x in samples if "ns_mb" in x] + [samples[-1]]:
        w = ping_worker(x["workers"])
        print(f"| {(x['t'] - t_load) / 60:.1f} | " + " | ".join(f"{x['rss_mb'].get(p, 0):.0f}" for p in parts)
              + f" | {x['redis_mb']:.0f} | {x['ns_mb']:.0f}" + f" | {w.get('queue', '-')} | {w.get('shed', '-')} | {w.get('lag_s', 0):.1f}"
              f" | {x.get('engine_behind', '-')} |")
    first = samples[0]
    during = [x for x in samples if x["t"] <= t_stop][-1]
    span = max(during["t"] - first["t"], 1e-9)
    print("CPU during the load (cores): " + ", ".join(
        f"{p} {(during['cpu_s'][p] - first['cpu_s'].get(p, 0)) / span:.2f}" for p in parts))


if __name__ == "__main__":
    raise SystemExit(main())
