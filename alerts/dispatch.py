"""Dispatch: the MQTT assignment payload (docs/mqtt.md, MQTT out) and the
duplicate/overlap resolution suggestion.

``issued_at`` in the payload is ISO-8601 in China Standard Time with its
offset, to the second: ``"2024-06-10T14:03:22+08:00"``.  A person reading the
message in a broker console sees the local time; any parser gets the instant.
Coordinates are WGS-84, 6 decimals (~0.1 m); a phone app that draws on a
GCJ-02 map converts them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from alerts.nearest import Suggestion, eta_s
from alerts.overdue import RISK_COLOURS
from geo.coords import haversine_m
from geo.timefmt import iso

DISPATCH_KINDS = ("gas_alarm", "reassign", "inspection")  # as data.models.DispatchTask.kind

# Two overdue enterprises whose distances from the team differ by less than
# this are equally near: the higher-risk one wins.  100 m is about a minute on
# foot or 20 s by e-bike, less than the error of a phone fix indoors.
TIE_M = 100.0

_RISK_RANK = {c: i for i, c in enumerate(RISK_COLOURS)}  # red 0 .. blue 3


def dispatch_topic(prefix: str, inspector_id: str) -> str:
    """``PREFIX/v1/inspectors/{inspector_id}/dispatch`` (publish with QoS 1)."""
    if not inspector_id or any(ch in inspector_id for ch in "/+#"):
        raise ValueError(f"bad inspector id for a topic: {inspector_id!r}")
    return f"{prefix}/v1/inspectors/{inspector_id}/dispatch"


def dispatch_payload(
    task_id: str,
    kind: str,
    enterprise_id: str,
    name: str,
    lat: float,
    lon: float,
    reason: str,
    issued_at: float,
    issued_by: str,
) -> dict:
    """Exactly the payload of docs/mqtt.md (MQTT out), nothing more."""
    if kind not in DISPATCH_KINDS:
        raise ValueError(f"kind must be one of {DISPATCH_KINDS}, not {kind!r}")
    if not task_id or not enterprise_id or not issued_by:
        raise ValueError("task_id, enterprise_id and issued_by are required")
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"bad coordinates {lat!r}, {lon!r}")
    return {
        "task_id": str(task_id),
        "kind": kind,
        "enterprise_id": enterprise_id,
        "name": name,
        "lat": round(float(lat), 6),
        "lon": round(float(lon), 6),
        "reason": reason,
        "issued_at": iso(issued_at),
        "issued_by": issued_by,
    }


def suggest_reassignment(
    second_team_unit_id: str,
    from_lat: float,
    from_lon: float,
    overdue_enterprises_of_unit: Sequence[tuple[str, str, float, float, str]],
) -> Suggestion | None:
    """Where to send the second team instead: the nearest overdue enterprise of
    its own unit, ``(id, name, lat, lon, risk)``.

    Distances within ``TIE_M`` of the nearest count as ties: among those the
    highest risk (red first) wins, then the nearer, then the id.  None when
    the unit has no overdue enterprise.
    """
    scored = []
    for eid, name, lat, lon, risk in overdue_enterprises_of_unit:
        if risk not in _RISK_RANK:
            raise ValueError(f"risk must be one of {RISK_COLOURS}, not {risk!r}")
        scored.append((haversine_m(from_lon, from_lat, lon, lat), eid, name, lat, lon, risk))
    if not scored:
        return None
    nearest = min(s[0] for s in scored)
    tied = [s for s in scored if s[0] <= nearest + TIE_M]
    dist, eid, name, lat, lon, risk = min(tied, key=lambda s: (_RISK_RANK[s[5]], s[0], s[1]))
    return Suggestion(id=eid, distance_m=dist, eta_s=eta_s(dist), name=name, unit_id=second_team_unit_id,
                      lat=lat, lon=lon, risk=risk)
