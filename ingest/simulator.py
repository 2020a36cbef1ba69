"""Simulated inspectors and gas detectors, publishing over MQTT what real devices publish.

Every message is one a real device sends (docs/mqtt.md): our own scheme
(``PREFIX/v1/...``), OwnTracks (``{owntracks_topic}/{user}/{device}``) for
inspectors registered with an ``owntracks_id``, and Zigbee2MQTT
(``{z2m_topic}/{friendly_name}``, Aqara JT-BZ-01AQ/A fields) for sensors with a
``z2m_name``. Nothing here talks to the ingest any other way.

**Time.** Timestamps are always the real clock: the ingest rejects
timestamps far in the future (``ingest_max_future_s``), and the dashboard
shows "last seen" against the real clock. ``sim_speedup`` instead shortens
the real wall time between state changes: a 20-90 simulated-minute stay at
speed-up 10 lasts 2-9 real minutes, a 30 s ping interval becomes 3 s, trips
take a tenth of their simulated time, alarm and fault rates are per
simulated hour. One exception keeps the demo honest: a stay lasts at least
``sim_min_dwell_real_s`` real seconds, because the ingest's visit detection
counts real seconds (``dwell_min_s``); set it to 0 to get the pure speed-up.

**Behaviour.**

- Inspectors (``sim_active_inspectors`` of them, drawn round-robin from every
  unit) travel between enterprises of their street at street speed (4-10 m/s,
  along an L-shaped path like a street grid), stay 20-90 simulated minutes at
  each, and report a fix every ``sim_ping_interval_s`` simulated seconds with
  GPS noise (accuracy 3-15 m), gaps, and occasionally out of order or twice
  (same ``msg_id``). A share ``sim_duplicate_visit_share`` of trips go
  deliberately to an enterprise that an inspector of another unit has just
  visited (or is visiting): each is recorded in ``stats.staged_duplicates``
  and logged. Inspectors of units without a street get one assigned.
  Inspectors with a plan for today (approved plan items and joint tasks that
  name them, read at start) go to their planned enterprises in order on
  ``FOLLOW_PLAN_SHARE`` of their trips, and are chosen first among their unit's
  inspectors; the other trips are unplanned, so plan against actual shows both.
- Sensors (``sim_active_sensors``) send heartbeats, rare low and high alarms
  (``sim_alarm_rate_per_h``), faults (``sim_fault_rate_per_h``, own-scheme
  detectors only: the Aqara detector reports no fault) and sometimes go
  offline (``sim_offline_rate_per_h``): a retained availability ``offline``,
  silence, then ``online`` again. At start every driven device publishes a
  retained ``online``; at stop nothing is published (a clean demo shutdown
  should not raise hundreds of offline alerts; silence does that in time).
- The devices the demo city keeps for trying by hand
  (``data.demo_city.RESERVED_INSPECTOR_IDS`` and ``RESERVED_SENSOR_IDS``) are
  never driven: what a person publishes for them stays as published.
- Body cameras: with a ``stream_url`` (the demo's test-pattern HLS stream,
  ``ingest.demo_camera``), the first ``stream_agents`` inspectors announce a live
  stream on ``PREFIX/v1/inspectors/{id}/stream`` as each stay begins and its end as
  it ends, and at stop (docs/review.md); without one, no stream is announced.
- ``sim_bad_per_h`` deliberately bad messages per simulated hour (each kind
  of dead letter: bad JSON, NaN, out of range, unknown device, ...), counted
  in ``stats.bad`` by the reason code the ingest should give.

**Flow control.** paho's ``publish()`` never blocks, and silently drops a
QoS 1 message when 65,535 are in flight. The simulator keeps at most
``sim_publish_window`` publishes unacknowledged (released in ``on_publish``:
PUBACK for QoS 1, written to the socket for QoS 0), and paces itself to
``sim_max_msgs_per_s``.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import ssl
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from data.city_frames import city_frames, day_plans
from data.demo_city import RESERVED_INSPECTOR_IDS, RESERVED_SENSOR_IDS
from geo.china import CHINA_TZ
from geo.coords import haversine_m, wgs84_to_gcj02
from config.mqtt import BrokerAddress

log = logging.getLogger(__name__)

M_PER_DEG = 111_320.0

# --- behaviour constants (simulated time unless the name says real) -------------------

DWELL_SIM_S = (20 * 60, 90 * 60)  # the issue: stay 20-90 minutes
SPEED_MPS = (4.0, 10.0)  # e-bike to car in town traffic, 15-36 km/h
GPS_ACC_M = (3.0, 15.0)  # phone fixes outdoors: a few to 15 m
DWELL_WANDER_M = 15.0  # walking about the premises; well inside visit_radius_m (50)
CANDIDATES_PER_TRIP = 12  # next stop: the nearest of this many random ones of the street
P_GAP_START = 0.01  # per fix: the phone goes quiet (tunnel, power saving)...
GAP_FIXES = (2, 20)  # ...for this many fixes
P_GAP_OFFLINE = 0.2  # ...and a gap is announced as offline (LWT) this often
P_OUT_OF_ORDER = 0.02  # per fix: delivered after the next one
P_DUPLICATE = 0.02  # per fix: delivered twice, same msg_id
P_OWNTRACKS_REGION = 0.4  # stays at an enterprise the app has as a region: enter/leave events
RECENT_VISIT_SIM_S = 2 * 3600  # "just visited": left within two simulated hours
ALARM_STEP_SIM_S = 15.0  # a detector in alarm reports every 15 s
ALARM_RISE_STEPS = (3, 12)
ALARM_HOLD_STEPS = (8, 40)
ALARM_FALL_STEPS = (4, 16)
P_ALARM_HIGH = 0.35  # of alarms, how many reach the high threshold
FAULT_SIM_S = (5 * 60, 30 * 60)
OFFLINE_SIM_S = (20 * 60, 120 * 60)
MIN_TICK_REAL_S = 0.02  # no device ticks faster than 50 Hz, whatever the speed-up
FIRST_HEARTBEAT_REAL_S = 10.0  # every sensor reports within this after start
DRAIN_ON_STOP_S = 5.0
# The share of trips that go to the next planned enterprise while an inspector has one left today.
FOLLOW_PLAN_SHARE = 0.85


# --- what the simulator knows of the city ----------------------------------------------


@dataclass
class CitySnapshot:
    """The registered devices and places the simulator drives (WGS-84)."""

    enterprises: pd.DataFrame  # id, name, lon, lat, street_id, industry, risk
    inspectors: pd.DataFrame  # id, name, unit_id, owntracks_id
    units: pd.DataFrame  # id, kind, street_id
    sensors: pd.DataFrame  # id, enterprise_id, lon, lat, z2m_name, low_lel, high_lel, heartbeat_s
    # Inspector id -> today's planned enterprise ids, in plan order (data.city_frames.day_plans).
    plans: dict = field(default_factory=dict)

    @classmethod
    def from_city(cls, city) -> CitySnapshot:
        return cls(
            enterprises=city.enterprises[["id", "name", "lon", "lat", "street_id", "industry", "risk"]].copy(),
            inspectors=city.inspectors[["id", "name", "unit_id", "owntracks_id"]].copy(),
            units=city.units[["id", "kind", "street_id"]].copy(),
            sensors=city.sensors[
                ["id", "enterprise_id", "lon", "lat", "z2m_name", "low_lel", "high_lel", "heartbeat_s"]
            ].copy(),
        )

    @classmethod
    def from_engine(cls, engine) -> CitySnapshot:
        """Read from SQL (``engine``: the SQLAlchemy engine, handed on to ``data/``), with
        today's plans (China time)."""
        today = datetime.now(CHINA_TZ).date().isoformat()
        return cls(**city_frames(engine), plans=day_plans(engine, today))


@dataclass(frozen=True)
class StagedDuplicate:
    """An inspector deliberately sent where another unit has just been."""

    enterprise_id: str
    inspector_id: str
    unit_id: str
    earlier_inspector_id: str
    earlier_unit_id: str
    overlap: bool  # the earlier inspector was still there when this one set off
    sent_at: float  # real epoch seconds


@dataclass
class SimStats:
    published: Counter = field(default_factory=Counter)  # by message kind
    bad: Counter = field(default_factory=Counter)  # deliberately bad, by expected reason code
    events: Counter = field(default_factory=Counter)  # sensor episodes started: low_alarm, high_alarm, fault, offline
    staged_duplicates: list[StagedDuplicate] = field(default_factory=list)
    visits: list[tuple[str, str, float, float | None]] = field(default_factory=list)  # insp, ent, arrive, leave
    max_in_flight: int = 0
    acked: int = 0
    dropped: int = 0  # refused by paho (queue full / not connected at QoS 0)
    out_of_order: int = 0
    duplicates: int = 0
    planned_trips: int = 0  # trips to the next enterprise of the inspector's plan for today
    unplanned_trips: int = 0  # the others (a nearby enterprise, or a staged duplicate)


# --- devices -------------------------------------------------------------------------------


@dataclass
class _Agent:
    id: str
    unit_id: str
    street_id: str
    owntracks: tuple[str, str] | None
    tid: str
    crs: str  # what the phone reports in: wgs84 or gcj02
    ts_fmt: str  # s | ms | iso
    batt: float
    seq: int = 0
    mode: str = "dwell"  # dwell | travel
    ent: int = -1
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0
    corner_first_x: bool = True
    speed_mps: float = 5.0
    t0: float = 0.0  # monotonic
    t1: float = 0.0
    gap_left: int = 0
    held: tuple | None = None
    region: bool = False
    visit_idx: int = -1
    wander: tuple[float, float] = (0.0, 0.0)
    plan: deque = field(default_factory=deque)  # today's planned enterprises left (indices), in order


@dataclass
class _Sensor:
    id: str
    z2m: str | None
    low: float
    high: float
    hb_real_s: float
    batt: float
    with_alarm: bool
    with_ppm: bool
    ts_fmt: str
    avail_json: bool
    linkquality: int
    seq: int = 0
    mode: str = "normal"  # normal | alarm | fault | offline
    until: float = 0.0
    episode: list[float] = field(default_factory=list)


def _ts(fmt: str, t: float):
    if fmt == "ms":
        return int(t * 1000)
    if fmt == "iso":
        return datetime.fromtimestamp(t, CHINA_TZ).isoformat(timespec="milliseconds")
    return round(t, 3)


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


# --- the simulator ---------------------------------------------------------------------------


class Simulator:
    """Drive a city's devices over MQTT until ``stop`` is set.

    ``run(stop)`` blocks; ``start()`` / ``stop()`` run it on a thread.
    ``stats`` tells what was published (see SimStats).
    """

    def __init__(self, settings, city_snapshot, *, seed: int | None = None, clock: Callable[[], float] = time.time,
                 stream_url: str | None = None, stream_agents: int = 3):
        if not isinstance(city_snapshot, CitySnapshot):
            city_snapshot = CitySnapshot.from_city(city_snapshot)
        if not settings.mqtt_url:
            raise ValueError("the simulator needs settings.mqtt_url (the app fills it in for the embedded broker)")
        self.settings = settings
        self.snapshot = city_snapshot
        self.rng = np.random.default_rng(settings.sim_seed + 1 if seed is None else seed)
        self.clock = clock
        self.stats = SimStats()
        self.speedup = max(float(settings.sim_speedup), 1e-6)
        self.prefix = settings.mqtt_prefix
        self.window = max(1, int(settings.sim_publish_window))
        self._heap: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = 0
        self._cv = threading.Condition()
        self._in_flight = 0
        self._connected = threading.Event()
        self._fatal: str | None = None
        self._tokens = 0.0
        self._tokens_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop_event: threading.Event | None = None
        self._recent: deque[dict] = deque(maxlen=5000)
        self._prepare_city()
        # Body cameras (docs/review.md): which inspectors stream, and their stream's address.
        self.stream_url = stream_url
        self.streaming = {a.id for a in self.agents[:max(0, stream_agents)]} if stream_url else set()

    # -- set-up ---------------------------------------------------------------------------

    def _prepare_city(self) -> None:
        s, rng = self.settings, self.rng
        ents = self.snapshot.enterprises
        ents = ents[ents.street_id.notna()].reset_index(drop=True)
        self.e_id = ents.id.to_numpy()
        self.e_name = ents.name.to_numpy()
        self.e_lon = ents.lon.to_numpy(dtype=float)
        self.e_lat = ents.lat.to_numpy(dtype=float)
        self.e_street = ents.street_id.to_numpy()
        self.by_street = {sid: np.flatnonzero(self.e_street == sid) for sid in pd.unique(self.e_street)}
        self.e_index = {str(eid): k for k, eid in enumerate(self.e_id)}
        streets = sorted(self.by_street)
        if not streets:
            raise ValueError("the city has no enterprises with a street: nothing for inspectors to visit")

        unit_street = dict(zip(self.snapshot.units.id, self.snapshot.units.street_id))
        # The devices kept for trying by hand (README) are never driven.
        insp = self.snapshot.inspectors
        insp = insp[~insp.id.isin(RESERVED_INSPECTOR_IDS)]
        # Round-robin over units so every unit has someone on the road.
        order = []
        planned = self.snapshot.plans or {}
        # Inspectors with a plan for today first within their unit, so the demo shows plans followed.
        groups = [sorted(rng.permutation(g.index.to_numpy()), key=lambda k: insp.at[k, "id"] not in planned)
                  for _, g in insp.groupby("unit_id", sort=True)]
        for k in range(max((len(g) for g in groups), default=0)):
            order += [g[k] for g in groups if k < len(g)]
        chosen = insp.loc[order[: max(0, int(s.sim_active_inspectors))]]
        self.agents: list[_Agent] = []
        for n, row in enumerate(chosen.itertuples(index=False)):
            street = unit_street.get(row.unit_id)
            if street not in self.by_street:
                street = streets[(n + int(rng.integers(0, len(streets)))) % len(streets)]
            ot = row.owntracks_id if isinstance(row.owntracks_id, str) and "/" in row.owntracks_id else None
            self.agents.append(
                _Agent(
                    id=row.id,
                    unit_id=row.unit_id,
                    street_id=street,
                    owntracks=tuple(ot.split("/", 1)) if ot else None,
                    tid=(ot or row.id)[:1].upper() + (ot or row.id)[-1:].upper(),
                    crs="gcj02" if rng.random() < 0.15 else "wgs84",
                    ts_fmt=str(rng.choice(["s", "ms", "iso"], p=[0.8, 0.1, 0.1])),
                    batt=float(rng.uniform(40, 100)),
                    plan=deque(self.e_index[e] for e in planned.get(row.id, ()) if e in self.e_index),
                )
            )

        sens = self.snapshot.sensors
        sens = sens[~sens.id.isin(RESERVED_SENSOR_IDS)].reset_index(drop=True)
        pick = rng.permutation(len(sens))[: max(0, int(s.sim_active_sensors))]
        self.sensors: list[_Sensor] = []
        for row in sens.iloc[np.sort(pick)].itertuples(index=False):
            hb = row.heartbeat_s if row.heartbeat_s is not None and not pd.isna(row.heartbeat_s) else s.sensor_heartbeat_s
            low = row.low_lel if row.low_lel is not None and not pd.isna(row.low_lel) else s.gas_low_lel
            high = row.high_lel if row.high_lel is not None and not pd.isna(row.high_lel) else s.gas_high_lel
            z2m = row.z2m_name if isinstance(row.z2m_name, str) and row.z2m_name else None
            self.sensors.append(
                _Sensor(
                    id=row.id,
                    z2m=z2m,
                    low=float(low),
                    high=float(high),
                    hb_real_s=max(float(hb) / self.speedup, MIN_TICK_REAL_S * 10),
                    batt=float(rng.uniform(30, 100)),
                    with_alarm=bool(rng.random() < 0.8),
                    with_ppm=bool(rng.random() < 0.3),
                    ts_fmt=str(rng.choice(["s", "ms", "iso"], p=[0.85, 0.1, 0.05])),
                    avail_json=bool(rng.random() < 0.5),
                    linkquality=int(rng.integers(40, 220)),
                )
            )

    # -- scheduling -----------------------------------------------------------------------

    def _at(self, due: float, fn: Callable[[float], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, fn))

    def _real(self, sim_s: float, floor: float = MIN_TICK_REAL_S) -> float:
        return max(sim_s / self.speedup, floor)

    def _every(self, rate_per_sim_h: float, fn: Callable[[float], None], now: float) -> None:
        """A Poisson process: ``rate_per_sim_h`` events per simulated hour."""
        if rate_per_sim_h <= 0:
            return

        def fire(t: float) -> None:
            fn(t)
            self._at(t + self.rng.exponential(3600.0 / rate_per_sim_h) / self.speedup, fire)

        self._at(now + self.rng.exponential(3600.0 / rate_per_sim_h) / self.speedup, fire)

    # -- MQTT ------------------------------------------------------------------------------

    def _connect(self) -> mqtt.Client:
        addr = BrokerAddress.parse(self.settings.mqtt_url)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"anjian-sim-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv311,  # the embedded amqtt broker speaks only 3.1.1
            clean_session=True,
        )
        if addr.username:
            client.username_pw_set(addr.username, addr.password)
        if addr.tls:
            ca = self.settings.mqtt_tls_ca
            client.tls_set(ca_certs=str(ca) if ca else None, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(bool(self.settings.mqtt_tls_insecure))
        # paho's own in-flight cap (default 20) only queues inside paho; ours
        # is the window. 100 keeps a remote broker's round trips from stalling.
        client.max_inflight_messages_set(min(self.window, 100))
        client.reconnect_delay_set(1, max(1, int(self.settings.mqtt_reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(addr.host, addr.port, keepalive=int(self.settings.mqtt_keepalive_s))
        client.loop_start()
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            if str(reason_code) in ("Bad user name or password", "Not authorized"):
                self._fatal = f"broker refused the simulator: {reason_code}"
                log.error("%s; stopping", self._fatal)
                client.disconnect()
            else:
                log.warning("simulator connect refused: %s (retrying)", reason_code)
            return
        log.info("simulator connected to the broker")
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            stopping = self._stop_event is not None and self._stop_event.is_set()
            log.log(logging.INFO if stopping else logging.WARNING, "simulator disconnected: %s", reason_code)
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cv:
            self._in_flight -= 1
            self.stats.acked += 1
            self._cv.notify_all()

    def in_flight(self) -> int:
        with self._cv:
            return self._in_flight

    def _pace(self, stop: threading.Event) -> None:
        """Token bucket at sim_max_msgs_per_s, with a burst of a tenth of a second."""
        rate = max(float(self.settings.sim_max_msgs_per_s), 1.0)
        burst = max(1.0, rate / 10.0)
        while not stop.is_set():
            now = time.monotonic()
            self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
            self._tokens_at = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            time.sleep((1.0 - self._tokens) / rate)

    def _send(self, topic: str, payload, *, qos: int, retain: bool = False, kind: str) -> None:
        stop = self._stop_event
        if isinstance(payload, (dict, list)):
            payload = _dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        self._pace(stop)
        with self._cv:
            while self._in_flight >= self.window:
                if stop.is_set():
                    return
                self._cv.wait(0.2)
            self._in_flight += 1
            if self._in_flight > self.stats.max_in_flight:
                self.stats.max_in_flight = self._in_flight
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not (qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN):
            # QoS 0 while disconnected, or paho's queue full: it will never
            # call on_publish for this one, so release its slot here.
            with self._cv:
                self._in_flight -= 1
                self._cv.notify_all()
            self.stats.dropped += 1
            return
        self.stats.published[kind] += 1

    # -- inspectors -------------------------------------------------------------------------

    def _choose_next(self, a: _Agent, now: float) -> int:
        members = self.by_street[a.street_id]
        rng = self.rng
        # Inspectors mostly follow their plan for the day (谁上报谁执法), in its order; a few
        # trips are unplanned (a nearby enterprise), which plan against actual flags.
        while a.plan and a.plan[0] == a.ent:
            a.plan.popleft()  # already there
        if a.plan and rng.random() < FOLLOW_PLAN_SHARE:
            self.stats.planned_trips += 1
            return int(a.plan.popleft())
        self.stats.unplanned_trips += 1
        if rng.random() < self.settings.sim_duplicate_visit_share:
            recent_real = self._real(RECENT_VISIT_SIM_S, floor=60.0)
            cands = [
                v for v in self._recent
                if v["street"] == a.street_id and v["unit"] != a.unit_id and v["ent"] != a.ent
                and (v["leave"] is None or now - v["leave"] <= recent_real)
            ]
            if cands:
                v = cands[int(rng.integers(0, len(cands)))]
                dup = StagedDuplicate(
                    enterprise_id=str(self.e_id[v["ent"]]),
                    inspector_id=a.id,
                    unit_id=a.unit_id,
                    earlier_inspector_id=v["insp"],
                    earlier_unit_id=v["unit"],
                    overlap=v["leave"] is None,
                    sent_at=self.clock(),
                )
                self.stats.staged_duplicates.append(dup)
                log.info(
                    "staged duplicate visit: %s (%s) sent to %s, %s by %s (%s)",
                    a.id, a.unit_id, dup.enterprise_id, "being visited" if dup.overlap else "just visited",
                    dup.earlier_inspector_id, dup.earlier_unit_id,
                )
                return int(v["ent"])
        cand = members[rng.integers(0, members.size, min(CANDIDATES_PER_TRIP, members.size))]
        cand = cand[cand != a.ent] if (cand != a.ent).any() else cand
        d = haversine_m(self.e_lon[a.ent], self.e_lat[a.ent], self.e_lon[cand], self.e_lat[cand])
        return int(cand[int(np.argmin(np.atleast_1d(d)))])

    def _dwell_real(self) -> float:
        sim = self.rng.uniform(*DWELL_SIM_S)
        floor = float(self.settings.sim_min_dwell_real_s)
        # Jitter the floor by up to two minutes so clamped stays still differ.
        return max(sim / self.speedup, floor + (self.rng.uniform(0, 120.0) if floor > 0 else 0.0))

    def _arrive(self, a: _Agent, t: float) -> None:
        a.mode = "dwell"
        a.x1, a.y1 = float(self.e_lon[a.ent]), float(self.e_lat[a.ent])
        a.t0, a.t1 = t, t + self._dwell_real()
        ang = self.rng.uniform(0, 2 * math.pi)
        r = self.rng.uniform(0, DWELL_WANDER_M)
        a.wander = (r * math.cos(ang), r * math.sin(ang))
        self._recent.append({"ent": a.ent, "street": a.street_id, "insp": a.id, "unit": a.unit_id, "leave": None})
        a.visit_idx = len(self.stats.visits)
        self.stats.visits.append((a.id, str(self.e_id[a.ent]), self.clock(), None))
        a.region = a.owntracks is not None and self.rng.random() < P_OWNTRACKS_REGION
        if a.region:
            self._owntracks_transition(a, "enter")
        self._stream(a, "live")

    def _depart(self, a: _Agent, t: float) -> None:
        for v in reversed(self._recent):
            if v["insp"] == a.id and v["leave"] is None:
                v["leave"] = t
                break
        if 0 <= a.visit_idx < len(self.stats.visits):
            insp, ent, arrive, _ = self.stats.visits[a.visit_idx]
            self.stats.visits[a.visit_idx] = (insp, ent, arrive, self.clock())
        if a.region:
            self._owntracks_transition(a, "leave")
            a.region = False
        self._stream(a, "ended")
        nxt = self._choose_next(a, t)
        a.mode = "travel"
        a.x0, a.y0 = float(self.e_lon[a.ent]), float(self.e_lat[a.ent])
        a.ent = nxt
        a.x1, a.y1 = float(self.e_lon[nxt]), float(self.e_lat[nxt])
        a.corner_first_x = bool(self.rng.random() < 0.5)
        a.speed_mps = float(self.rng.uniform(*SPEED_MPS))
        k = math.cos(math.radians(a.y0))
        length_m = (abs(a.x1 - a.x0) * k + abs(a.y1 - a.y0)) * M_PER_DEG
        a.t0, a.t1 = t, t + self._real(length_m / a.speed_mps, floor=0.0)

    def _stream(self, a: _Agent, state: str) -> None:
        """The inspector's body camera starts (``live``) or stops (``ended``) with the stay."""
        if a.id not in self.streaming:
            return
        # One address per inspector: the demo camera's server ignores the query.
        url = f"{self.stream_url}{'&' if '?' in self.stream_url else '?'}cam={a.id}"
        now = self.clock()
        self._send(f"{self.prefix}/v1/inspectors/{a.id}/stream",
                   {"ts": round(now, 3), "state": state, "hls_url": url, "msg_id": f"{a.id}-cam-{state}-{now:.3f}"},
                   qos=1, kind="stream")

    def _advance(self, a: _Agent, now: float) -> None:
        for _ in range(100):  # at most a few transitions per tick
            if now < a.t1:
                return
            if a.mode == "dwell":
                self._depart(a, a.t1)
            else:
                self._arrive(a, a.t1)

    def _position(self, a: _Agent, now: float) -> tuple[float, float, float, float]:
        """True (lon, lat), speed m/s and heading deg now."""
        k = math.cos(math.radians(a.y1))
        if a.mode == "dwell":
            dx, dy = a.wander
            return a.x1 + dx / (M_PER_DEG * k), a.y1 + dy / M_PER_DEG, float(self.rng.uniform(0, 0.6)), float(self.rng.uniform(0, 360))
        f = 0.0 if a.t1 <= a.t0 else min(1.0, max(0.0, (now - a.t0) / (a.t1 - a.t0)))
        lx = abs(a.x1 - a.x0) * k
        ly = abs(a.y1 - a.y0)
        total = lx + ly or 1e-12
        first = (lx if a.corner_first_x else ly) / total
        if a.corner_first_x:
            if f <= first:
                x, y = a.x0 + (a.x1 - a.x0) * (f / first if first else 1.0), a.y0
                heading = 90.0 if a.x1 >= a.x0 else 270.0
            else:
                x, y = a.x1, a.y0 + (a.y1 - a.y0) * ((f - first) / (1 - first) if first < 1 else 1.0)
                heading = 0.0 if a.y1 >= a.y0 else 180.0
        else:
            if f <= first:
                x, y = a.x0, a.y0 + (a.y1 - a.y0) * (f / first if first else 1.0)
                heading = 0.0 if a.y1 >= a.y0 else 180.0
            else:
                x, y = a.x0 + (a.x1 - a.x0) * ((f - first) / (1 - first) if first < 1 else 1.0), a.y1
                heading = 90.0 if a.x1 >= a.x0 else 270.0
        return x, y, max(0.0, a.speed_mps + float(self.rng.normal(0, 0.8))), heading

    def _agent_tick(self, a: _Agent, now: float) -> None:
        self._advance(a, now)
        interval = self._real(self.settings.sim_ping_interval_s)
        self._at(now + interval * float(self.rng.uniform(0.9, 1.1)), lambda t, a=a: self._agent_tick(a, t))
        rng = self.rng
        if a.gap_left > 0:
            a.gap_left -= 1
            if a.gap_left == 0 and a.owntracks is None:
                self._send(f"{self.prefix}/v1/inspectors/{a.id}/availability", "online", qos=1, retain=True, kind="availability")
            return
        if rng.random() < P_GAP_START:
            a.gap_left = int(rng.integers(*GAP_FIXES))
            if rng.random() < P_GAP_OFFLINE:
                if a.owntracks is None:
                    self._send(f"{self.prefix}/v1/inspectors/{a.id}/availability", "offline", qos=1, retain=True, kind="availability")
                else:
                    user, dev = a.owntracks
                    self._send(f"{self.settings.owntracks_topic}/{user}/{dev}",
                               {"_type": "lwt", "tst": int(self.clock() - 3600)}, qos=1, kind="owntracks_lwt")
            return
        lon, lat, speed, heading = self._position(a, now)
        acc = float(rng.uniform(*GPS_ACC_M))
        k = math.cos(math.radians(lat))
        lon += float(rng.normal(0, acc / 2)) / (M_PER_DEG * k)
        lat += float(rng.normal(0, acc / 2)) / M_PER_DEG
        a.batt -= float(rng.uniform(0, 0.03))
        if a.batt < 15:
            a.batt = 100.0  # back on the charger
        t = self.clock()
        a.seq += 1
        if a.owntracks is None:
            msg = self._own_location(a, t, lon, lat, acc, speed, heading)
        else:
            msg = self._owntracks_location(a, t, lon, lat, acc, speed, heading)
        if a.held is not None:
            held, a.held = a.held, None
            self._emit(msg)
            self._emit(held)
            self.stats.out_of_order += 1
            return
        if rng.random() < P_OUT_OF_ORDER:
            a.held = msg
            return
        self._emit(msg)
        if rng.random() < P_DUPLICATE:
            self._emit(msg)
            self.stats.duplicates += 1

    def _emit(self, msg: tuple) -> None:
        topic, payload, qos, retain, kind = msg
        self._send(topic, payload, qos=qos, retain=retain, kind=kind)

    def _own_location(self, a: _Agent, t, lon, lat, acc, speed, heading) -> tuple:
        body = {"ts": _ts(a.ts_fmt, t)}
        if a.crs == "gcj02":
            lon, lat = wgs84_to_gcj02(lon, lat)
        body.update(
            lat=round(float(lat), 6), lon=round(float(lon), 6), acc=round(acc, 1), speed=round(speed, 1),
            heading=round(heading), batt=int(a.batt), msg_id=f"{a.id}-{a.seq}",
        )
        if a.crs != "wgs84":
            body["crs"] = a.crs
        # Our own fixes go at QoS 0, as the ingest subscribes to them: a fix
        # is superseded by the next one a few seconds later.
        return (f"{self.prefix}/v1/inspectors/{a.id}/location", _dumps(body), 0, False, "location")

    def _owntracks_location(self, a: _Agent, t, lon, lat, acc, speed, heading) -> tuple:
        user, dev = a.owntracks
        topic = f"{self.settings.owntracks_topic}/{user}/{dev}"
        body = {
            "_type": "location",
            "_id": f"{int(self.rng.integers(0, 2**32)):08x}",
            "tid": a.tid,
            "tst": int(t),
            "created_at": int(t),
            "lat": round(float(lat), 7),
            "lon": round(float(lon), 7),
            "acc": int(round(acc)),
            "alt": int(self.rng.integers(40, 120)),
            "vac": int(self.rng.integers(2, 10)),
            "vel": int(round(speed * 3.6)),
            "cog": int(round(heading)),
            "batt": int(a.batt),
            "bs": 1,
            "conn": "m",
            "m": 1,
            "topic": topic,
        }
        if a.mode == "dwell" and a.region:
            body["inregions"] = [str(self.e_id[a.ent])]
        # The app publishes at QoS 1 and retained (its defaults).
        return (topic, _dumps(body), 1, True, "owntracks_location")

    def _owntracks_transition(self, a: _Agent, event: str) -> None:
        user, dev = a.owntracks
        t = self.clock()
        acc = float(self.rng.uniform(*GPS_ACC_M))
        body = {
            "_type": "transition",
            "wtst": int(t - 30 * 86400),
            "tst": int(t),
            "lat": round(float(self.e_lat[a.ent]), 7),
            "lon": round(float(self.e_lon[a.ent]), 7),
            "acc": int(round(acc)),
            "tid": a.tid,
            "event": event,
            "desc": f"{self.e_id[a.ent]} {self.e_name[a.ent]}",
            "rid": f"{zlib.crc32(str(self.e_id[a.ent]).encode()) & 0xFFFFFF:06x}",
            "t": "c",
        }
        self._send(f"{self.settings.owntracks_topic}/{user}/{dev}/event", body, qos=1, kind="owntracks_transition")

    # -- sensors ----------------------------------------------------------------------------

    def _sensor_reading(self, s: _Sensor, lel: float, fault: bool = False) -> None:
        t = self.clock()
        s.seq += 1
        s.batt = max(5.0, s.batt - float(self.rng.uniform(0, 0.01)))
        if s.z2m is not None:
            body = {
                "gas": bool(lel >= s.low),
                "gas_density": int(round(lel)),
                "gas_sensitivity": "15%LEL",
                "self_test": False,
                "battery": int(s.batt),
                "linkquality": int(max(0, min(255, s.linkquality + self.rng.integers(-8, 9)))),
            }
            self._send(f"{self.settings.z2m_topic}/{s.z2m}", body, qos=1, kind="z2m_state")
            return
        body = {"ts": _ts(s.ts_fmt, t)}
        if fault:
            body["alarm"] = "fault"
        else:
            body["lel"] = round(lel, 1)
            if s.with_ppm:
                body["ppm"] = int(round(lel * 500))  # natural gas: 100 % LEL = 5 % vol = 50,000 ppm
            if s.with_alarm:
                body["alarm"] = "high" if lel >= s.high else "low" if lel >= s.low else "none"
        body["batt"] = int(s.batt)
        body["msg_id"] = f"{s.id}-{s.seq}"
        self._send(f"{self.prefix}/v1/sensors/{s.id}/state", body, qos=1, kind="sensor_state")

    def _availability(self, s: _Sensor, online: bool) -> None:
        state = "online" if online else "offline"
        if s.z2m is not None:
            self._send(f"{self.settings.z2m_topic}/{s.z2m}/availability", {"state": state}, qos=1, retain=True,
                       kind="z2m_availability")
        else:
            payload = {"state": state} if s.avail_json else state
            self._send(f"{self.prefix}/v1/sensors/{s.id}/availability", payload, qos=1, retain=True,
                       kind="availability")

    def _sensor_tick(self, s: _Sensor, now: float) -> None:
        nxt = now + s.hb_real_s * float(self.rng.uniform(0.95, 1.05))
        if s.mode == "offline":
            if now >= s.until:
                s.mode = "normal"
                self._availability(s, True)
                self._sensor_reading(s, self._baseline())
            self._at(min(nxt, s.until) if s.mode == "offline" else nxt, lambda t, s=s: self._sensor_tick(s, t))
            return
        if s.mode == "alarm":
            return  # the episode drives this sensor; it reschedules the heartbeat when done
        if s.mode == "fault":
            if now >= s.until:
                s.mode = "normal"
            else:
                self._sensor_reading(s, 0.0, fault=True)
                self._at(min(nxt, s.until), lambda t, s=s: self._sensor_tick(s, t))
                return
        self._sensor_reading(s, self._baseline())
        self._at(nxt, lambda t, s=s: self._sensor_tick(s, t))

    def _baseline(self) -> float:
        # Mostly a clean 0; kitchens show a little now and then.
        return 0.0 if self.rng.random() < 0.8 else float(self.rng.uniform(0.5, 4.0))

    def _pick_normal_sensor(self, own_only: bool = False) -> _Sensor | None:
        if not self.sensors:
            return None
        for _ in range(20):
            s = self.sensors[int(self.rng.integers(0, len(self.sensors)))]
            if s.mode == "normal" and not (own_only and s.z2m is not None):
                return s
        return None

    def _start_alarm(self, now: float) -> None:
        s = self._pick_normal_sensor()
        if s is None:
            return
        rng = self.rng
        high = rng.random() < P_ALARM_HIGH
        peak = float(rng.uniform(s.high, 100.0) if high else rng.uniform(s.low, s.high - 0.5))
        rise = np.linspace(self._baseline(), peak, int(rng.integers(*ALARM_RISE_STEPS)) + 1)[1:]
        hold = np.clip(peak + rng.normal(0, max(1.0, peak * 0.05), int(rng.integers(*ALARM_HOLD_STEPS))), 0, 100)
        fall = np.linspace(peak, 0.0, int(rng.integers(*ALARM_FALL_STEPS)) + 1)[1:]
        s.mode = "alarm"
        s.episode = [float(x) for x in np.concatenate([rise, hold, fall])]
        log.info("simulated %s gas alarm on %s (peak %.0f %% LEL)", "high" if high else "low", s.id, peak)
        self.stats.events["high_alarm" if high else "low_alarm"] += 1
        self._at(now, lambda t, s=s: self._alarm_step(s, t))

    def _alarm_step(self, s: _Sensor, now: float) -> None:
        if not s.episode:
            s.mode = "normal"
            self._at(now + s.hb_real_s, lambda t, s=s: self._sensor_tick(s, t))
            return
        self._sensor_reading(s, s.episode.pop(0))
        self._at(now + self._real(ALARM_STEP_SIM_S), lambda t, s=s: self._alarm_step(s, t))

    def _start_fault(self, now: float) -> None:
        s = self._pick_normal_sensor(own_only=True)
        if s is None:
            return
        s.mode = "fault"
        s.until = now + self._real(self.rng.uniform(*FAULT_SIM_S))
        log.info("simulated fault on %s", s.id)
        self.stats.events["fault"] += 1
        self._sensor_reading(s, 0.0, fault=True)

    def _start_offline(self, now: float) -> None:
        s = self._pick_normal_sensor()
        if s is None:
            return
        s.mode = "offline"
        s.until = now + self._real(self.rng.uniform(*OFFLINE_SIM_S))
        log.info("simulated offline sensor %s", s.id)
        self.stats.events["offline"] += 1
        self._availability(s, False)

    # -- bad messages -------------------------------------------------------------------------

    def _bad_message(self, now: float) -> None:
        rng = self.rng
        t = self.clock()
        p = self.prefix
        a = self.agents[int(rng.integers(0, len(self.agents)))] if self.agents else None
        s = self.sensors[int(rng.integers(0, len(self.sensors)))] if self.sensors else None
        iid = a.id if a else "I0001"
        sid = s.id if s else "S000001"
        loc = f"{p}/v1/inspectors/{iid}/location"
        lat, lon = 22.65, 114.03
        options: list[tuple[str, str, bytes]] = [
            ("bad_json", f"{p}/v1/sensors/{sid}/state", b'{"ts": %d, "lel": ' % int(t)),
            ("bad_json", loc, b"lat=22.65&lon=114.03"),
            ("empty_payload", loc, b""),
            ("missing_field", loc, _dumps({"ts": t, "lon": lon})),
            ("bad_type", loc, _dumps({"ts": t, "lat": "north", "lon": lon})),
            ("nan_value", loc, b'{"ts": %.3f, "lat": NaN, "lon": %.6f}' % (t, lon)),
            ("out_of_range", loc, _dumps({"ts": t, "lat": 122.65, "lon": lon})),
            ("out_of_range", f"{p}/v1/sensors/{sid}/state", _dumps({"ts": t, "lel": 180, "alarm": "none"})),
            ("outside_service_area", loc, _dumps({"ts": t, "lat": 39.9087, "lon": 116.3975})),
            ("ts_in_future", loc, _dumps({"ts": t + 86400, "lat": lat, "lon": lon})),
            ("ts_too_old", loc, _dumps({"ts": t - 30 * 86400, "lat": lat, "lon": lon})),
            ("bad_crs", loc, _dumps({"ts": t, "lat": lat, "lon": lon, "crs": "utm50n"})),
            ("unknown_device", f"{p}/v1/sensors/S9{int(rng.integers(0, 99999)):05d}X/state", _dumps({"ts": t, "lel": 0})),
            ("topic_mismatch", loc, _dumps({"ts": t, "lat": lat, "lon": lon, "inspector_id": iid + "X"})),
            ("unknown_topic", f"{p}/v1/inspectors/{iid}/selfie", _dumps({"ts": t})),
            (
                "payload_too_large",
                loc,
                _dumps({"ts": t, "lat": lat, "lon": lon, "note": "x" * (int(self.settings.ingest_max_payload_bytes) + 100)}),
            ),
        ]
        reason, topic, payload = options[int(rng.integers(0, len(options)))]
        self.stats.bad[reason] += 1
        self._send(topic, payload, qos=1, kind="bad")

    # -- running ------------------------------------------------------------------------------

    def _begin(self, now: float) -> None:
        rng = self.rng
        for s in self.sensors:
            self._availability(s, True)
            self._at(now + float(rng.uniform(0, min(s.hb_real_s, FIRST_HEARTBEAT_REAL_S))),
                     lambda t, s=s: self._sensor_tick(s, t))
        interval = self._real(self.settings.sim_ping_interval_s)
        for a in self.agents:
            if a.owntracks is None:
                self._send(f"{self.prefix}/v1/inspectors/{a.id}/availability", "online", qos=1, retain=True,
                           kind="availability")
            members = self.by_street[a.street_id]
            a.ent = int(members[rng.integers(0, members.size)])
            # Start somewhere in a stay, so that departures are spread out.
            self._arrive(a, now)
            a.t1 = now + (a.t1 - now) * float(rng.uniform(0.05, 1.0))
            self._at(now + float(rng.uniform(0, interval)), lambda t, a=a: self._agent_tick(a, t))
        st = self.settings
        self._every(st.sim_alarm_rate_per_h, self._start_alarm, now)
        self._every(st.sim_fault_rate_per_h, self._start_fault, now)
        self._every(st.sim_offline_rate_per_h, self._start_offline, now)
        self._every(st.sim_bad_per_h, self._bad_message, now)

    def run(self, stop: threading.Event) -> SimStats:
        """Publish until ``stop`` is set; returns the stats. Raises on bad credentials."""
        self._stop_event = stop
        self.client = self._connect()
        try:
            while not self._connected.wait(0.2):
                if stop.is_set() or self._fatal:
                    break
            if self._fatal:
                raise RuntimeError(self._fatal)
            if stop.is_set():
                return self.stats
            log.info(
                "simulating %d inspectors and %d sensors at speed-up %g (max %g msg/s, window %d)",
                len(self.agents), len(self.sensors), self.speedup, self.settings.sim_max_msgs_per_s, self.window,
            )
            self._begin(time.monotonic())
            while not stop.is_set() and not self._fatal:
                if not self._heap:  # nothing to drive (no devices, every rate 0)
                    stop.wait(0.25)
                    continue
                due, _, fn = self._heap[0]
                now = time.monotonic()
                if due > now:
                    stop.wait(min(due - now, 0.25))
                    continue
                heapq.heappop(self._heap)
                try:
                    fn(now)
                except Exception:  # one bad step must not end the demo
                    log.exception("simulator step failed")
            for a in self.agents:  # the body cameras go off with the demo: no stream stays "live"
                if a.mode == "dwell" and not self._fatal:
                    self._stream(a, "ended")
            if self._fatal:
                raise RuntimeError(self._fatal)
            return self.stats
        finally:
            deadline = time.monotonic() + DRAIN_ON_STOP_S
            with self._cv:
                while self._in_flight > 0 and time.monotonic() < deadline and self._connected.is_set():
                    self._cv.wait(0.1)
            self.client.disconnect()
            self.client.loop_stop()
            log.info("simulator stopped: %s", dict(self.stats.published))

    def start(self) -> None:
        """Run on a daemon thread; ``stop()`` ends it."""
        self._own_stop = threading.Event()
        self._thread = threading.Thread(target=self.run, args=(self._own_stop,), name="simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> SimStats:
        if self._thread is not None:
            self._own_stop.set()
            self._thread.join(timeout)
        return self.stats


def run_simulator(settings, engine, stop: threading.Event, stream_url: str | None = None) -> SimStats:
    """Load the registered city from SQL and simulate it until ``stop`` is set (with
    ``stream_url``, a few inspectors' body cameras stream it)."""
    snapshot = CitySnapshot.from_engine(engine)
    return Simulator(settings, snapshot, stream_url=stream_url).run(stop)
