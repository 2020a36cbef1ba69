"""Small dataclasses that flow from ingest through geo and alerts.

Times are epoch seconds (UTC, float).  Coordinates are WGS-84 degrees.
H3 cells are always ``str`` (h3-py's default representation) throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The longest msg_id (characters) that decode accepts and that the history
# tables' msg_id columns hold (data/models.py; migration 0002 grew them from
# 64).  One constant for both: an id decode lets through must never fail the
# history write.  UUIDs (36), ULIDs (26) and OwnTracks ids ("{_id}:{tst}",
# decode truncates _id to fit) are well inside.
MSG_ID_MAX_LEN = 128


@dataclass(slots=True, frozen=True)
class Ping:
    """One GPS fix of an inspector."""

    inspector_id: str
    ts: float
    lat: float
    lon: float
    acc_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    batt_pct: float | None = None
    msg_id: str | None = None
    # Which decoder made it: "anjian", "owntracks".  Before the device is
    # resolved, ``inspector_id`` holds the external id (OwnTracks "user/device").
    source: str = "anjian"
    # The device's own message counter (our scheme's optional ``seq``): a gap in
    # it is a message lost before it reached us (docs/mqtt.md, "Sequence gaps").
    seq: int | None = None


@dataclass(slots=True, frozen=True)
class GasReading:
    """One state message of a gas detector."""

    sensor_id: str
    ts: float
    lel_pct: float | None = None
    ppm: float | None = None
    # Device's own flag: none, low, high, fault, tamper, test; None when absent.
    alarm: str | None = None
    batt_pct: float | None = None
    msg_id: str | None = None
    source: str = "anjian"  # "anjian", "zigbee2mqtt"
    # Set by zigbee2mqtt decoders: the raw fields that were recognised, for audit.
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    seq: int | None = None  # the device's message counter, as for Ping


@dataclass(slots=True, frozen=True)
class Availability:
    """Online/offline of a device (LWT)."""

    kind: str  # "inspector" | "sensor"
    device_id: str
    online: bool
    ts: float
    source: str = "anjian"


@dataclass(slots=True, frozen=True)
class StreamNotice:
    """A body camera's live stream announced (``live``) or finished (``ended``)."""

    inspector_id: str
    ts: float
    state: str  # "live" | "ended"
    hls_url: str | None = None
    whep_url: str | None = None  # WebRTC (WHEP) playback, where the device has one
    recording_url: str | None = None  # the kept recording, when ended
    msg_id: str | None = None
    source: str = "anjian"


Event = Ping | GasReading | Availability | StreamNotice


@dataclass(slots=True, frozen=True)
class Visit:
    """A stay of one inspector at one enterprise (``geo.visits`` detects them).

    ``unit_id`` is the inspector's unit when the caller knows it (``None``
    otherwise); ``id`` is the history row's id once stored (``None`` before).
    """

    enterprise_id: str
    inspector_id: str
    unit_id: str | None
    start_ts: float
    end_ts: float
    id: int | str | None = None

    @property
    def dwell_s(self) -> float:
        return self.end_ts - self.start_ts
