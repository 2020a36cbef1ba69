"""The device registry an ingest worker resolves messages against.

Loaded from SQL into memory (a few MB at city scale) and looked at again every
``registry_refresh_s``, or sooner when an unknown device shows up (so a device
imported a moment ago is recognised without a restart).  Looking is one read of
``registry_version``, a counter that SQL triggers move on every change to the
sensors or inspectors (migration 0011); the registry is read again only when it
moved, and in any case every FULL_RELOAD_S.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select

from data.models import Inspector, RegistryVersion, Sensor

log = logging.getLogger(__name__)

# An unknown device may trigger a reload, but not more often than this, so a
# flood of messages from unregistered devices cannot hammer the database.
MIN_RELOAD_INTERVAL_S = 2.0
# The whole registry is read again at least this often, changed or not: what a
# database without the version's triggers (a restore that left them out) would
# otherwise never show.
FULL_RELOAD_S = 600.0


@dataclass(slots=True, frozen=True)
class SensorInfo:
    id: str
    enterprise_id: str | None
    low_lel: float | None
    high_lel: float | None
    heartbeat_s: int | None
    street_id: str | None
    grid_id: str | None


@dataclass(slots=True, frozen=True)
class InspectorInfo:
    id: str
    unit_id: str
    name: str


class Registry:
    def __init__(self, engine: Engine, refresh_s: float = 30.0):
        self.engine = engine
        self.refresh_s = refresh_s
        self.inspectors: dict[str, InspectorInfo] = {}
        self.owntracks: dict[str, str] = {}
        self.sensors: dict[str, SensorInfo] = {}
        self.z2m: dict[str, str] = {}
        self.loaded_at = 0.0
        self.checked_at = 0.0  # when SQL's registry_version was last compared with ours
        self.version: int | None = None  # registry_version as of the last load
        self.loads = 0
        self._lock = threading.Lock()
        self._loader: threading.Thread | None = None
        self._next_try = 0.0

    def load(self) -> None:
        with self.engine.connect() as conn:
            # The version first: a change committed between it and the rows is in
            # the rows and moves the version past ours, so it is read once more.
            version = self._read_version(conn)
            insp = conn.execute(select(Inspector.id, Inspector.unit_id, Inspector.name, Inspector.owntracks_id)).all()
            sens = conn.execute(
                select(Sensor.id, Sensor.enterprise_id, Sensor.low_lel, Sensor.high_lel, Sensor.heartbeat_s,
                       Sensor.street_id, Sensor.grid_id, Sensor.z2m_name)
            ).all()
        inspectors = {r.id: InspectorInfo(r.id, r.unit_id, r.name) for r in insp}
        owntracks = {r.owntracks_id: r.id for r in insp if r.owntracks_id}
        sensors = {
            r.id: SensorInfo(r.id, r.enterprise_id, r.low_lel, r.high_lel, r.heartbeat_s, r.street_id, r.grid_id)
            for r in sens
        }
        z2m = {r.z2m_name: r.id for r in sens if r.z2m_name}
        with self._lock:
            self.inspectors, self.owntracks, self.sensors, self.z2m = inspectors, owntracks, sensors, z2m
            self.version = version
            self.loaded_at = self.checked_at = time.monotonic()
            self.loads += 1

    @staticmethod
    def _read_version(conn) -> int | None:
        return conn.execute(select(RegistryVersion.version)
                            .where(RegistryVersion.id == RegistryVersion.DEVICES)).scalar_one_or_none()

    def changed(self) -> bool:
        """Whether SQL's registry moved since the last load (one read of one row), or a
        full reload is due."""
        self.checked_at = time.monotonic()
        if self.version is None or self.checked_at - self.loaded_at >= FULL_RELOAD_S:
            return True
        with self.engine.connect() as conn:
            return self._read_version(conn) != self.version

    def refresh(self) -> bool:
        """Reload if ``changed``; True when it did."""
        if self.changed():
            self.load()
            return True
        return False

    def maybe_refresh(self, *, unknown_seen: bool = False) -> bool:
        """Look at SQL's registry when due; True when the registry was reloaded by this call.

        An unknown device looks at once (at most every MIN_RELOAD_INTERVAL_S), so
        that a device imported a moment ago resolves.  The periodic look runs on a
        background thread while the caller goes on with the registry it has: at
        city scale a load takes ~0.3 s of Python, which held the ingest batch or
        the alert engine (and the alarms behind it) every time.  Either reloads
        only when the registry changed (``changed``).
        """
        now = time.monotonic()
        if not self.loaded_at:
            self.load()
            return True
        age = now - self.checked_at
        if unknown_seen and age >= MIN_RELOAD_INTERVAL_S:
            return self.refresh()
        if age >= self.refresh_s and now >= self._next_try:
            self._next_try = now + MIN_RELOAD_INTERVAL_S
            if self._loader is None or not self._loader.is_alive():
                self._loader = threading.Thread(target=self._refresh_logged, name="registry-refresh", daemon=True)
                self._loader.start()
        return False

    def _refresh_logged(self) -> None:
        try:
            self.refresh()
        except Exception as e:  # noqa: BLE001 - the next call retries; the old registry stays in use
            log.warning("registry refresh failed (%s); keeping the registry loaded %.0f s ago", e,
                        time.monotonic() - self.loaded_at)

    def any_registered(self, inspectors=(), owntracks=(), sensors=(), z2m=()) -> bool:
        """Whether SQL knows any of these devices (by our id, OwnTracks id or
        Zigbee2MQTT name): one indexed query each, for when a reload is not
        allowed yet but an unknown device may just have been imported."""
        checks = [(Inspector.id, inspectors), (Inspector.owntracks_id, owntracks), (Sensor.id, sensors),
                  (Sensor.z2m_name, z2m)]
        with self.engine.connect() as conn:
            for col, values in checks:
                values = list(dict.fromkeys(values))[:500]
                if values and conn.execute(select(col).where(col.in_(values)).limit(1)).first() is not None:
                    return True
        return False
