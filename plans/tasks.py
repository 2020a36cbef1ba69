"""The MQTT task message (docs/mqtt.md, MQTT out): ``PREFIX/v1/inspectors/{id}/tasks``, QoS 1.

Payload, exactly: ``{"task_id", "kind" ("planned", "joint", "draw"), "enterprise_id",
"name", "lat", "lon", "date", "lead_unit_id", "unit_ids", "issued_at"}``;
``issued_at`` is ISO-8601 in China time with its offset, to the second;
coordinates WGS-84, 6 decimals.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from geo.china import CHINA_TZ

TASK_KINDS = ("planned", "joint", "draw")


def tasks_topic(prefix: str, inspector_id: str) -> str:
    if not inspector_id or any(ch in inspector_id for ch in "/+#"):
        raise ValueError(f"bad inspector id for a topic: {inspector_id!r}")
    return f"{prefix}/v1/inspectors/{inspector_id}/tasks"


def task_payload(task_id: str, kind: str, enterprise_id: str, name: str, lat: float, lon: float, date: str,
                 lead_unit_id: str | None, unit_ids: Sequence[str], issued_at: float) -> dict:
    if kind not in TASK_KINDS:
        raise ValueError(f"kind must be one of {TASK_KINDS}, not {kind!r}")
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise ValueError(f"bad coordinates {lat!r}, {lon!r}")
    return {
        "task_id": str(task_id), "kind": kind, "enterprise_id": enterprise_id, "name": name,
        "lat": round(float(lat), 6), "lon": round(float(lon), 6), "date": date, "lead_unit_id": lead_unit_id,
        "unit_ids": list(unit_ids),
        "issued_at": dt.datetime.fromtimestamp(math.floor(issued_at), CHINA_TZ).isoformat(),
    }
