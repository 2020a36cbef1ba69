"""Private service processes for fault tests: a Mosquitto or a Redis on a free
port of its own, so a test can stop and start it without disturbing anything
else."""

from __future__ import annotations

import subprocess
from pathlib import Path

from data.embedded import free_port, mosquitto_conf, wait_listening


class _ServerProcess:
    """A server process on its own port: ``start`` runs ``argv()`` and waits for the port."""

    port: int
    proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening("127.0.0.1", self.port)

    def stop(self):
        """A graceful stop (SIGTERM): a persistent server saves its state."""
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def kill(self):
        """kill -9: only what the server saved before survives."""
        if self.proc:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


class Mosquitto(_ServerProcess):
    """A private, persistent Mosquitto that keeps sessions across restarts, with
    the embedded broker's configuration (data.embedded.mosquitto_conf)."""

    def __init__(self, tmp: Path):
        self.port = free_port(21883)
        self.dir = tmp / "mosq"
        self.dir.mkdir()
        self.conf = self.dir / "m.conf"
        self.conf.write_text(mosquitto_conf(self.port, self.dir))

    @property
    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return ["mosquitto", "-c", str(self.conf)]


class RedisServer(_ServerProcess):
    """A private Redis that keeps its data (append-only file) across restarts."""

    def __init__(self, tmp: Path):
        self.port = free_port(26379)
        self.dir = tmp / "redis"
        self.dir.mkdir()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes"]
