"""The embedded MQTT broker that `python app.py` starts when no broker is configured.

``auto`` prefers a ``mosquitto`` binary on the PATH (MQTT 5, shared
subscriptions, fast) and falls back to amqtt in-process (pure Python, MQTT
3.1.1 only, no shared subscriptions, ~2k msg/s measured here).  Either way it
binds 127.0.0.1 only, on 1883 or the next free port (docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import shutil
import subprocess
import threading
from pathlib import Path

# The process helpers live with the embedded Redis's (a lower layer); re-exported
# here for the tests and benches that start private brokers.
from data.embedded import free_port, spawn, stop_process, wait_listening

__all__ = ["EmbeddedBroker", "free_port", "mosquitto_conf", "stop_process", "wait_listening"]

log = logging.getLogger(__name__)


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
