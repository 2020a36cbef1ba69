"""What the web process needs, built once by app.py and handed to the server.

``snapshot()`` is the one read of live state that API routes and Dash pages
share: the city registry (names, units, areas) from SQL, cached, joined with
the latest fixes and sensor states from Redis.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from config.mqtt import broker_addresses
from config.settings import Settings, hide_password
from alerts.escalation import Ladder
from data import audit, probes, screen_queries
from data.alert_store import AlertStore
from data.auth import Principal, TokenAuthenticator, active_user
from data.live import LiveState, reported_offline
from data.registry import FULL_RELOAD_S
from dashboard.mapkit import InspectorRows, inspector_columns
from dashboard.metrics import WebMetrics
from dashboard.names import admin_prefixes, short_name
from dashboard.push import ChangeFeed
from dashboard.reloading import Reloading
from geo.timefmt import iso

log = logging.getLogger(__name__)

# The registry (names, units, areas) changes only on import; 30 s staleness is fine.
REGISTRY_TTL_S = 30.0
# An inspector with no fix for this long is shown as offline.
INSPECTOR_STALE_S = 600.0
# Health probes are cached this long so a scraper polling /health costs little.
HEALTH_TTL_S = 2.0
# The open alerts, read once for every screen of the process, are read again when
# an alert changes (the alerts version) or after this long, whichever comes first.
OPEN_ALERTS_MAX_AGE_S = 5.0
# Ingest lag above this makes the system "degraded".
LAG_DEGRADED_S = 10.0
# Events lost from the alert engine's stream (data.live: events_lost) keep the
# system "degraded" this long after the last loss was noticed: someone must look
# at what the lost alarms were (history has them; alerts do not).
EVENTS_LOST_DEGRADED_S = 3600.0
# A gap in a device's message counter (data.live: track_sequences) keeps it
# "degraded" this long: messages were lost between the devices and the ingest.
SEQUENCE_GAP_DEGRADED_S = 600.0
# The broker's own count of dropped messages rose this recently: degraded (docs/mqtt.md).
BROKER_DROPPED_DEGRADED_S = 600.0
# The ingest writes how many replicas the live-state master has (at most every 5 s
# while batches flow); older than this, with no batches, it says nothing now.
REPLICAS_STALE_S = 60.0


@dataclass
class Registry:
    inspectors: dict  # id -> (name, unit_id, unit_name)
    sensors: dict  # id -> (enterprise_id, lat, lon, street_id, grid_id, heartbeat_s)
    enterprise_names: dict
    # The city and district words nearly every name starts with (dashboard.names):
    # left out where a list cuts names to its column.
    name_prefixes: frozenset = frozenset()

    def short(self, name: str | None) -> str | None:
        """Any registered name (a unit's, say) without the shared city and district."""
        return None if name is None else short_name(name, self.name_prefixes)

    def short_name(self, enterprise_id: str | None) -> str | None:
        """The enterprise's name without the shared city and district; None if unknown."""
        name = self.enterprise_names.get(enterprise_id) if enterprise_id else None
        return None if name is None else short_name(name, self.name_prefixes)


def inspector_row(iid: str, fix, entry: tuple, status: str, ent: str | None, names: dict) -> dict:
    """One inspector's row of ``Snapshot.inspectors_json`` (the API's ``/inspectors``)."""
    name, unit_id, unit_name = entry
    return {
        "id": iid, "name": name, "unit": unit_id, "unit_name": unit_name,
        "lat": fix.lat, "lon": fix.lon, "acc_m": fix.acc_m, "speed_mps": fix.speed_mps,
        "batt_pct": fix.batt_pct, "last_fix": iso(fix.ts), "last_fix_ts": fix.ts,
        "status": status, "visiting_enterprise_id": ent,
        "visiting_enterprise": names.get(ent) if ent else None,
        "source": fix.source,
    }


def inspector_status(fix, avail: tuple[bool, float] | None, ent: str | None, now: float) -> str:
    if now - fix.ts > INSPECTOR_STALE_S or reported_offline(avail, fix.ts):
        return "offline"
    return "visiting" if ent else "on_duty"


def inspector_rows_anew(reg: Registry, fixes: dict, avail: dict, visiting: dict, now: float) -> list[dict]:
    """Every inspector's row, built from nothing, by id (what ``InspectorMirror.rows`` keeps)."""
    names = reg.enterprise_names
    return [inspector_row(i, fixes[i], reg.inspectors[i], inspector_status(fixes[i], avail.get(i), visiting.get(i), now),
                          visiting.get(i), names) for i in sorted(fixes)]


class InspectorMirror:
    """Every registered inspector's last fix, and its row, kept in the web process and
    brought up to date from the live change stream.

    A screen's poll used to read all 2,000 fixes (one Lua call, 2,000 objects
    built) several times a second across callbacks: the largest share of the
    wall's and the dispatcher's tick at city scale (py-spy).  Now a poll reads
    only the inspectors that moved since the last one; the whole set is read
    again every FULL_EVERY_S, when the registry changed, or when the change
    stream no longer reaches back far enough.

    The rows (``rows``) are kept the same way: at ten times a city (20,000
    inspectors) building every row on each console refresh was its largest cost
    (bench/bench_console_rows.py, docs/benchmarks.md).  A row is built again only
    when its fix, last will, visit or staleness changed; the list is handed out as a
    new list of shared rows, which callers must not change (none does: they filter
    and copy), with its columns as arrays beside it (``mapkit.InspectorRows``: the
    layers filter and count by them).
    """

    FULL_EVERY_S = 30.0

    def __init__(self, ctx: WebContext):
        self.ctx = ctx
        self._lock = threading.Lock()
        self._fixes: dict = {}
        self._version: int | None = None
        self._full_at = 0.0
        self._ids: object = None  # the registry's inspector dict the mirror was read for
        # the rows by id, each one's place among them, their columns, and what they were built from
        self._order: list[str] = []
        self._list: list[dict] = []
        self._place: dict[str, int] = {}
        self._lat = self._lon = self._ts = np.empty(0)
        self._on = np.empty(0, dtype=bool)
        self._built: tuple | None = None  # (registry, availability, visits, now)
        self._pending: set[str] | None = None  # fixes changed since the rows were built; None: all

    def _refresh(self, inspectors: dict) -> None:
        live = self.ctx.live
        version = live.version()
        now = time.monotonic()
        full = (self._version is None or inspectors is not self._ids
                or now - self._full_at >= self.FULL_EVERY_S)
        if not full and version != self._version:
            changed, complete = screen_queries.changes_since(live, self._version, ("inspector",))
            if complete:
                wanted = [i for i in changed if i in inspectors]
                if wanted:
                    fresh = live.inspector_fixes(wanted)
                    self._fixes.update(fresh)
                    if self._pending is not None:
                        self._pending.update(fresh)
            else:
                full = True
        if full:
            old, fresh = self._fixes, live.inspector_fixes(inspectors)
            # Unchanged fixes stay the objects they were, so only the changed rows are built again.
            moved = {i for i, f in fresh.items() if old.get(i) != f}
            self._fixes = {i: (f if i in moved else old[i]) for i, f in fresh.items()}
            if self._pending is not None:
                self._pending |= moved | (old.keys() - fresh.keys())
            self._full_at, self._ids = now, inspectors
        self._version = version

    def fixes(self, inspectors: dict) -> dict:
        """inspector id -> InspectorFix (those with a fix), at least as new as the
        live version read when this call started."""
        with self._lock:
            self._refresh(inspectors)
            return dict(self._fixes)

    def rows(self, reg: Registry, avail: dict, visiting: dict, now: float) -> list[dict]:
        """Every inspector with a fix, its row as ``inspector_rows_anew`` builds it, by id."""
        with self._lock:
            self._refresh(reg.inspectors)
            fixes = self._fixes
            built = self._built
            if built is None or built[0] is not reg or self._pending is None or fixes.keys() != self._place.keys():
                self._list = inspector_rows_anew(reg, fixes, avail, visiting, now)
                self._order = [d["id"] for d in self._list]
                self._place = {i: k for k, i in enumerate(self._order)}
                self._lat, self._lon, self._ts, self._on = inspector_columns(self._list)
            else:
                _reg, avail0, visiting0, now0 = built
                todo = self._pending
                if avail != avail0:
                    todo |= {i for i in avail.keys() | avail0.keys() if avail.get(i) != avail0.get(i)}
                if visiting != visiting0:
                    todo |= {i for i in visiting.keys() | visiting0.keys() if visiting.get(i) != visiting0.get(i)}
                if now != now0:  # went stale (or, with an earlier clock, fresh) in between
                    lo, hi = sorted((now0 - INSPECTOR_STALE_S, now - INSPECTOR_STALE_S))
                    ts = self._ts
                    todo.update(self._order[k] for k in np.flatnonzero((ts >= lo) & (ts <= hi)).tolist())
                names, entries, place = reg.enterprise_names, reg.inspectors, self._place
                for i in todo:
                    k = place.get(i)
                    if k is None:
                        continue
                    fix, ent = fixes[i], visiting.get(i)
                    status = inspector_status(fix, avail.get(i), ent, now)
                    self._list[k] = inspector_row(i, fix, entries[i], status, ent, names)
                    self._lat[k], self._lon[k], self._ts[k], self._on[k] = fix.lat, fix.lon, fix.ts, status != "offline"
            self._built, self._pending = (reg, avail, visiting, now), set()
            return InspectorRows(self._list, self._lat.copy(), self._lon.copy(), self._ts.copy(), self._on.copy())


class Snapshot:
    def __init__(self, ctx: WebContext, reg: Registry, version: int):
        self.ctx, self.reg, self.version = ctx, reg, version
        self.now = time.time()

    def inspectors_json(self) -> list[dict]:
        """Every inspector with a fix, by id (``InspectorMirror.rows``: shared rows, not to be changed)."""
        return self.ctx.mirror.rows(self.reg, self.ctx.live.availability("inspector"), self.ctx.visiting(), self.now)

    def sensors_json(self, only: set[str] | None = None) -> list[dict]:
        """Every sensor's live state, or only those in ``only`` (one enterprise's, say)."""
        live = self.ctx.live
        sensors = self.reg.sensors
        wanted = sensors if only is None else {k: sensors[k] for k in sorted(only) if k in sensors}
        states = live.sensor_states(wanted)
        avail = live.availability("sensor")
        offline_after = self.ctx.settings.sensor_offline_after
        out = []
        for sid, (eid, lat, lon, street, grid, hb) in wanted.items():
            st = states.get(sid)
            heartbeat = hb or self.ctx.settings.sensor_heartbeat_s
            if st is None:
                state, lel, last = "unknown", None, None
            else:
                state, lel, last = st.level, st.lel_pct, st.ts
                # A silent detector is offline, never "safe".
                if self.now - st.ts > heartbeat * offline_after:
                    state = "offline"
            if reported_offline(avail.get(sid), None if st is None else st.ts):
                state = "offline"
            out.append({
                "id": sid, "enterprise_id": eid, "enterprise": self.reg.enterprise_names.get(eid),
                "lat": lat, "lon": lon, "street_id": street, "grid_id": grid,
                "state": state, "lel_pct": lel, "last_message": iso(last), "last_message_ts": last,
            })
        return out


class WebContext:
    def __init__(self, settings: Settings, engine, redis_client, mqtt_url: str):
        self.settings = settings
        self.engine = engine
        self.redis = redis_client
        self.live = LiveState(redis_client, settings.redis_prefix, settings.ingest_msg_id_ttl_s)
        self.tokens = TokenAuthenticator(engine)
        self.alerts = AlertStore(engine, self.live, Ladder.from_settings(settings), mqtt_prefix=settings.mqtt_prefix)
        self.mqtt_url = mqtt_url
        self.mirror = InspectorMirror(self)
        self._open_alerts_lock = threading.Lock()
        self._open_alerts: tuple | None = None
        # alert changes to /api/v1/events (started by the first client), with the new alarms' rows
        self.feed = ChangeFeed(self.live, self.alerts.new_alerts)
        self._registry = Reloading(self._load_registry, REGISTRY_TTL_S, "registry")
        self._registry_versions: tuple = ()
        self._registry_full_at = 0.0
        self.registry_reads = 0  # full reads of the registry's rows
        self._health: tuple[float, dict] | None = None
        self._principals: dict[int, tuple[float, Principal | None]] = {}
        self.metrics = WebMetrics(self.live)  # GET /metrics

    # --- registry and snapshot -----------------------------------------------
    def registry(self) -> Registry:
        """Names and places of inspectors, sensors and enterprises (reloaded every
        REGISTRY_TTL_S in the background: ``dashboard.reloading``)."""
        return self._registry.get()

    def _load_registry(self) -> Registry:
        # SQL's counters first (one read of two rows): unchanged, the rows are not
        # read at all.  At ten times a city the full read every 30 s (130,000
        # enterprise names, 50,000 sensors, 20,000 inspectors) was a sixth of a web
        # worker's profile, holding its interpreter while the API waited
        # (docs/benchmarks.md section 25).  Read in full every FULL_RELOAD_S anyway.
        versions = screen_queries.registry_versions(self.engine)
        prev = self._registry.peek()
        now = time.monotonic()
        if (prev is not None and None not in versions and versions == self._registry_versions
                and now - self._registry_full_at < FULL_RELOAD_S):
            return prev
        insp, sens, names = screen_queries.registry_rows(self.engine)
        self._registry_versions, self._registry_full_at = versions, now
        self.registry_reads += 1
        if prev is not None and prev.inspectors == insp and prev.sensors == sens and prev.enterprise_names == names:
            return prev  # unchanged: the same object, so what was built from it (the mirror's rows) stays
        return Registry(insp, sens, names, admin_prefixes(names.values()))

    def open_alerts(self, limit: int) -> list[dict]:
        """The store's active alerts (the ``limit`` newest), shared by every poll of
        this process until an alert changes: the wall and the dispatcher asked SQL
        for up to 500 alerts and their histories on every tick."""
        with self._open_alerts_lock:
            version = self.alerts.alerts_version()
            hit = self._open_alerts
            now = time.monotonic()
            if hit is not None and hit[0] == (version, limit) and now - hit[1] < OPEN_ALERTS_MAX_AGE_S:
                return hit[2]
            rows = self.alerts.list(state="open", limit=limit, most_urgent=True)
            self._open_alerts = ((version, limit), now, rows)
            return rows

    def snapshot(self) -> Snapshot:
        return Snapshot(self, self.registry(), self.live.version())

    def visiting(self) -> dict[str, str]:
        """inspector id -> enterprise id of the visit under way (kept by the geo engine)."""
        return screen_queries.visiting(self.live)

    # --- auth helpers ----------------------------------------------------------
    def session_principal(self, uid: int) -> Principal | None:
        hit = self._principals.get(uid)
        if hit and time.monotonic() - hit[0] < 10.0:
            return hit[1]
        p = active_user(self.engine, uid)
        self._principals[uid] = (time.monotonic(), p)
        return p

    def audit_denied(self, p: Principal, method: str, path: str) -> None:
        if method != "GET":
            audit.append(self.engine, p.username, "access_denied", path, {"method": method, "role": p.role})

    # --- health and metrics -------------------------------------------------------
    def health(self) -> dict:
        cached = self._health
        if cached and time.monotonic() - cached[0] < HEALTH_TTL_S:
            return cached[1]
        out: dict = {"mqtt_url": hide_password(self.mqtt_url)}
        # One node answering is enough (a cluster: every node, by name, in broker_nodes).
        nodes = {}
        for addr in broker_addresses(self.mqtt_url):
            try:
                with socket.create_connection((addr.host, addr.port), timeout=1.0):
                    nodes[addr.endpoint] = "ok"
            except OSError as e:
                nodes[addr.endpoint] = f"unreachable: {e}"
        out["broker"] = "ok" if "ok" in nodes.values() else next(iter(nodes.values()))
        if len(nodes) > 1:
            out["broker_nodes"] = nodes
        out["redis"] = probes.redis_status(self.redis)
        out["database"] = probes.database_status(self.engine)
        out["database_url"] = probes.database_url(self.engine)
        workers = {}
        if out["redis"] == "ok":
            workers = self.live.workers()
        out["ingest_workers"] = len(workers)
        out["ingest_lag_s"] = round(max((w.get("lag_s", 0.0) for w in workers.values()), default=0.0), 3)
        out["ingest_queue"] = sum(w.get("queue", 0) for w in workers.values())
        # Pings a worker shed (or whose dead letters it could not keep) in the
        # last minute (ingest/worker.py, SHED_WINDOW_S): data was lost, so not "ok".
        out["ingest_shed"] = sum(w.get("shed_recent", 0) for w in workers.values())
        out["ingest_dead_letters_dropped"] = sum(w.get("dead_letter_overflow_recent", 0) for w in workers.values())
        lost_recently = False
        if out["redis"] == "ok":
            lost, lost_at = self.live.events_lost()
            out["events_lost"] = sum(lost.values())
            out["events_lost_at"] = iso(lost_at) if lost_at else None
            lost_recently = lost_at is not None and time.time() - lost_at < EVENTS_LOST_DEGRADED_S
        gap_recently = False
        if out["redis"] == "ok":
            seq, gap_at, gap_device = self.live.sequence_gap()
            out["sequence_gaps"] = seq.get("gap", 0)
            out["sequence_gap_at"] = iso(gap_at) if gap_at else None
            gap_recently = gap_at is not None and time.time() - gap_at < SEQUENCE_GAP_DEGRADED_S
        broker_dropped_recently = False
        if out["redis"] == "ok":
            dropped, dropped_at, _count = self.live.broker_dropped()
            out["broker_dropped"] = dropped
            out["broker_dropped_at"] = iso(dropped_at) if dropped_at else None
            broker_dropped_recently = dropped_at is not None and time.time() - dropped_at < BROKER_DROPPED_DEGRADED_S
        short_of_replicas = False
        if out["redis"] == "ok":
            rep = self.live.replicas()  # what the ingest last found (LiveState.await_replicas)
            if rep is not None:
                out["redis_replicas"] = {"have": int(rep["have"]), "wanted": int(rep["wanted"])}
                short_of_replicas = rep["have"] < rep["wanted"] and time.time() - rep["at"] < REPLICAS_STALE_S
        ok = (out["broker"] == out["redis"] == out["database"] == "ok" and workers and not short_of_replicas
              and out["ingest_lag_s"] < LAG_DEGRADED_S and not out["ingest_shed"]
              and not out["ingest_dead_letters_dropped"] and not lost_recently and not gap_recently
              and not broker_dropped_recently)
        out["status"] = "ok" if ok else "degraded"
        reasons = []
        if out["ingest_shed"]:
            reasons.append(f"ingest shed {out['ingest_shed']} pings in the last minute")
        if out["ingest_dead_letters_dropped"]:
            reasons.append(f"ingest refused {out['ingest_dead_letters_dropped']} pings in the last minute "
                           f"beyond the dead letters it keeps (ingest_dead_letter_rate)")
        if gap_recently:
            reasons.append(f"devices' message counters show {out['sequence_gaps']} messages lost before the ingest "
                           f"(last gap at {out['sequence_gap_at']}, device {gap_device})")
        if broker_dropped_recently:
            reasons.append(f"the MQTT broker dropped {out['broker_dropped']} messages (last at "
                           f"{out['broker_dropped_at']}): a subscriber's queue was full; the broker's log names it")
        if short_of_replicas:
            r = out["redis_replicas"]
            reasons.append(f"the Redis master holding live state has {r['have']} of the {r['wanted']} replicas the "
                           f"ingest waits for: a failover now could lose acknowledged messages")
        if lost_recently:
            reasons.append(f"the alert engine lost {out['events_lost']} stream events (last at {out['events_lost_at']})")
        if reasons:
            out["reasons"] = reasons
        out["checked_at"] = iso(time.time())
        out["web_pid"] = os.getpid()  # which web worker process answered
        self._health = (time.monotonic(), out)
        return out

