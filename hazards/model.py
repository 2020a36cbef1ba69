"""The hazard (隐患) as pure data: ``Hazard`` and ``HazardRecord``.

``Hazard`` mirrors one row of ``data.models.HazardRow`` (minus the storage's own
bookkeeping).  It is frozen: its state changes only through
``hazards.lifecycle.transition``, which returns a new ``Hazard`` and the
``HazardRecord`` of the step (one row of ``data.models.HazardEvent``).  Times are
epoch seconds (UTC, float).
"""

from __future__ import annotations

from dataclasses import dataclass

# --- vocabularies -------------------------------------------------------------

LEVELS = ("general", "major")  # 一般隐患 / 重大隐患
# The closed loop, in order.  closed is 销号.
STATES = ("reported", "rectifying", "rectified", "accepted", "closed")
OPEN_STATES = frozenset({"reported", "rectifying", "rectified", "accepted"})
# Who found it: an inspector during a visit, a service agency (第三方服务机构), or the enterprise itself.
FINDERS = ("inspector", "agency", "enterprise")
# Findings of supervision, not of the enterprise itself: they count against its score.
SUPERVISION_FINDERS = ("inspector", "agency")
# How an acceptance was made: on site (GPS proof within the geofence) or by review of the evidence.
ACCEPT_METHODS = ("on_site", "review")

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Hazard:
    enterprise_id: str
    category: str
    level: str
    found_by: str
    reported_at: float
    state: str = "reported"
    id: int | None = None
    finder_id: str | None = None  # the inspector, agency or enterprise id
    visit_id: int | None = None
    lat: float | None = None  # where it was found (WGS-84)
    lon: float | None = None
    description: str | None = None
    deadline: float | None = None
    assigned_at: float | None = None
    rectified_at: float | None = None  # the latest rectification
    accepted_at: float | None = None
    accept_method: str | None = None
    closed_at: float | None = None
    send_backs: int = 0


@dataclass(frozen=True, slots=True)
class HazardRecord:
    """One step of a hazard's history: who did what, when, and why."""

    from_state: str | None
    to_state: str
    action: str
    actor: str
    at: float
    note: str | None = None
    detail: dict | None = None  # deadline, method, distance, photo count...
