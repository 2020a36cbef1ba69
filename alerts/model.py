"""The alert as pure data: ``AlertState`` and ``TransitionRecord``.

``AlertState`` mirrors one row of ``data.models.Alert`` (minus the storage's
own bookkeeping: ``created_at``, ``updated_at``, ``version``).  It is frozen:
the lifecycle state changes only through ``alerts.lifecycle.transition``; the
counters (count, peak, last seen) through ``alerts.rules``; the escalation
level through ``alerts.escalation``.  Each returns a new ``AlertState`` that
the persistence layer writes back.

``TransitionRecord`` mirrors one row of ``data.models.AlertEvent``: who did
what, when, with a note.  Times are epoch seconds (UTC, float).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from geo.timefmt import iso_ms

# --- vocabularies -------------------------------------------------------------

GAS_ALARM = "gas_alarm"
SENSOR_FAULT = "sensor_fault"  # the detector's own fault or tamper flag
SENSOR_OFFLINE = "sensor_offline"  # no heartbeat for N intervals, or LWT offline
INSPECTOR_OFFLINE = "inspector_offline"
DUPLICATE_VISIT = "duplicate_visit"  # a second unit inspected an enterprise within the window
OVERLAP_NOW = "overlap_now"  # two units at one enterprise at the same time
OVERDUE_INSPECTION = "overdue_inspection"  # rolled up: one per street per day
APPROACH_WARNING = "approach_warning"  # an inspector closing in on an already visited enterprise
HAZARD_OVERDUE = "hazard_overdue"  # a hazard past its rectification deadline: one per hazard

ALERT_TYPES = (
    GAS_ALARM,
    SENSOR_FAULT,
    SENSOR_OFFLINE,
    INSPECTOR_OFFLINE,
    DUPLICATE_VISIT,
    OVERLAP_NOW,
    OVERDUE_INSPECTION,
    APPROACH_WARNING,
    HAZARD_OVERDUE,
)

# Most to least urgent.
SEVERITIES = ("critical", "warning", "info")
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}

# Every state any type uses.  Each type's own subset is in alerts.lifecycle.
STATES = ("open", "acknowledged", "dispatched", "on_scene", "resolved", "closed")
# An alert in one of these is "the open alert" of its (type, subject): the
# dedup rule keeps at most one.  resolved and closed are history; a new alarm
# after a person resolved the last one is a new incident and a new alert.
ACTIVE_STATES = frozenset({"open", "acknowledged", "dispatched", "on_scene"})

SYSTEM_ACTOR = "system"


def sensor_subject(sensor_id: str) -> str:
    return f"sensor:{sensor_id}"


def inspector_subject(inspector_id: str) -> str:
    return f"inspector:{inspector_id}"


def enterprise_subject(enterprise_id: str) -> str:
    """Subject of duplicate_visit and overlap_now: one open alert per enterprise."""
    return f"enterprise:{enterprise_id}"


def hazard_subject(hazard_id: int) -> str:
    """Subject of hazard_overdue: one open alert per hazard."""
    return f"hazard:{hazard_id}"


def gps_arrival_note(distance_m: float, ts: float) -> str:
    """The note of an arrival the alert engine saw in the assignee's fixes (rewritten
    through the catalogue on the screens, like the notes below)."""
    return f"GPS: {float(distance_m):.0f} m from the enterprise at {iso_ms(ts)}"


def takeover_note(from_id: str, to_id: str, typed: str | None = None) -> str:
    """The note of an officer's takeover of an alarm sent to someone else: the lifecycle
    records it as a reassign (a second assign); the screens name it a takeover from this
    note (dashboard/pages/common.py, history_entries). What the officer typed, if anything,
    follows it, so that a takeover with a note is still known as one."""
    base = f"takeover from {from_id} by {to_id}"
    typed = (typed or "").strip()
    return f"{base}: {typed}" if typed else base


# The notes of a hazard_overdue alert's history (the screens rewrite each form through
# the catalogue: dashboard/pages/common.py, history_note).
def hazard_overdue_note(hazard_id: int, days: float) -> str:
    return f"hazard {hazard_id} {days:.1f} d past its deadline"


def hazard_escalated_note(level: int, hazard_id: int, days: float) -> str:
    return f"level {level}: district (hazard {hazard_id} {days:.1f} d overdue)"


HAZARD_NO_LONGER_OVERDUE = "the hazard is no longer overdue"
OVERDUE_SUPERSEDED = "superseded by the roll-up of {day}"


def approach_subject(inspector_id: str, enterprise_id: str) -> str:
    return f"inspector:{inspector_id}:enterprise:{enterprise_id}"


# --- the alert ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertState:
    """One alert; mirrors ``data.models.Alert``.

    ``id`` is None until the persistence layer has inserted it.  ``subject``
    names what the alert is about (``sensor:S0001``, ``street:ST01:overdue:2024-06-10``);
    ``(type, subject)`` has at most one alert in ``ACTIVE_STATES``.
    """

    id: int | None = None
    type: str
    subject: str
    severity: str
    state: str = "open"
    enterprise_id: str | None = None
    sensor_id: str | None = None
    inspector_id: str | None = None
    street_id: str | None = None
    grid_id: str | None = None
    assignee_id: str | None = None
    count: int = 1  # readings / occurrences merged into this alert, the first included
    peak_lel: float | None = None
    last_value_lel: float | None = None
    returned_to_normal_at: float | None = None  # set by rules; the alert stays open
    escalation_level: int = 0  # 0 = first rung of the ladder (grid officer)
    escalate_at: float | None = None  # next escalation deadline; None = not armed
    outcome: str | None = None
    first_seen: float
    last_seen: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (for Redis or the API)."""
        d = dataclasses.asdict(self)
        d["details"] = dict(self.details)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertState:
        """From ``to_dict`` output or a row mapping; unknown keys (created_at, version) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("details") is None:
            kw["details"] = {}
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One change of an alert; mirrors ``data.models.AlertEvent``.

    ``from_state`` is None for the record that opens an alert.  ``assignee_id``
    and ``outcome`` repeat what the transition set, for the audit detail.

    ``implied`` holds the steps a transition took on the way: assigning an
    alert that nobody acknowledged yet acknowledges it first, in the same
    instant by the same person.  ``steps()`` gives them all in order, each with
    consistent from/to states; write one ``AlertEvent`` per step.
    """

    from_state: str | None
    to_state: str
    action: str
    actor: str
    at: float
    note: str | None = None
    assignee_id: str | None = None
    outcome: str | None = None
    implied: tuple[TransitionRecord, ...] = ()
    # The note is what a person typed, to be shown as typed: never read as one of the
    # system's own notes ("sent I0103", "takeover from ...") however it is worded.
    note_typed: bool = False

    def steps(self) -> list[TransitionRecord]:
        if not self.implied:
            return [self]
        last = self.implied[-1]
        return [*self.implied, dataclasses.replace(self, from_state=last.to_state, implied=())]

    def detail(self) -> dict[str, Any]:
        """The fields worth an audit entry (None values left out)."""
        d = {
            "from": self.from_state,
            "to": self.to_state,
            "note": self.note,
            "assignee_id": self.assignee_id,
            "outcome": self.outcome,
        }
        d = {k: v for k, v in d.items() if v is not None}
        if self.implied:
            d["implied"] = [r.action for r in self.implied]
        return d
