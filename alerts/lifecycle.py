"""The alert lifecycle: one table per type, one transition function.

Nothing else changes ``AlertState.state``.  ``transition`` looks the pair
(current state, action) up in the alert type's table; a pair that is not there
raises ``TransitionNotAllowed`` (the API answers 409).  Read the tables top to
bottom; docs/alerts.md draws them.

Decisions (why the tables look like this):

* **assign from open** is allowed.  A dispatcher looking at a fresh gas alarm
  wants one click, "send Li Wei", not two.  It acknowledges the alert in the
  same instant, by the same person, and says so: the record carries the implied
  ``ack`` step (``TransitionRecord.steps()``), so the history shows who
  acknowledged and when, and escalation stops exactly as if ack was clicked.
* **reassign** is ``assign`` on an alert that already has an assignee
  (dispatched or on_scene).  It goes (back) to ``dispatched``: the new person
  has not arrived yet.  The API's one ``/assign`` route serves both; the record
  says ``reassign`` so the history tells them apart.
* **arrive** (dispatched -> on_scene) is the same transition whether the
  assignee's GPS entered the geofence (actor ``gps:<inspector_id>``, see
  ``arrived_by_gps``) or a person confirmed it by hand.
* **resolve** a gas alarm from acknowledged, dispatched or on_scene, not from
  open: somebody must have taken it (which stops escalation) before it can be
  resolved.  Being on scene is not required: a dispatcher who phones the
  restaurant and hears "we were testing the detector" resolves it as
  false_alarm.  The history shows whether anyone arrived.
* **close** (resolved -> closed) is review: a supervisor, or a nightly job,
  files it.  There is no reopen: a new alarm after a resolution opens a new
  alert (``alerts.rules``).
* The other types are notices, not emergencies: open -> acknowledged ->
  resolved -> closed, and they may be resolved straight from open (acking an
  "inspector went offline" notice first is busywork).  duplicate_visit,
  overlap_now and approach_warning may also be resolved by **reassign**: moving
  the second team elsewhere (``alerts.dispatch.suggest_reassignment``) is the
  resolution, outcome ``reassigned``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from alerts.model import (
    ALERT_TYPES,
    APPROACH_WARNING,
    DUPLICATE_VISIT,
    GAS_ALARM,
    HAZARD_OVERDUE,
    INSPECTOR_OFFLINE,
    OVERDUE_INSPECTION,
    OVERLAP_NOW,
    SENSOR_FAULT,
    SENSOR_OFFLINE,
    SEVERITIES,
    SYSTEM_ACTOR,
    AlertState,
    TransitionRecord,
)


class TransitionNotAllowed(Exception):
    """The lifecycle of ``alert_type`` has no ``action`` from ``state`` (HTTP 409)."""

    def __init__(self, alert_type: str, state: str, action: str):
        self.alert_type, self.state, self.action = alert_type, state, action
        super().__init__(f"{alert_type}: cannot {action!r} an alert that is {state!r}")


@dataclass(frozen=True, slots=True)
class Step:
    """What one (state, action) pair does.

    to:        the new state
    assignee:  the action needs an ``assignee_id``
    outcome:   the action needs an ``outcome`` from the type's OUTCOMES
    sets_outcome: the action sets this fixed outcome itself
    record:    the action name the record carries (default: the action's)
    implies:   actions taken on the way, recorded as steps of their own
    """

    to: str
    assignee: bool = False
    outcome: bool = False
    sets_outcome: str | None = None
    record: str | None = None
    implies: tuple[str, ...] = ()


# --- the tables ---------------------------------------------------------------

GAS_LIFECYCLE: dict[tuple[str, str], Step] = {
    ("open", "ack"): Step("acknowledged"),
    ("open", "assign"): Step("dispatched", assignee=True, implies=("ack",)),
    ("acknowledged", "assign"): Step("dispatched", assignee=True),
    ("dispatched", "assign"): Step("dispatched", assignee=True, record="reassign"),
    ("on_scene", "assign"): Step("dispatched", assignee=True, record="reassign"),
    ("dispatched", "arrive"): Step("on_scene"),
    ("acknowledged", "resolve"): Step("resolved", outcome=True),
    ("dispatched", "resolve"): Step("resolved", outcome=True),
    ("on_scene", "resolve"): Step("resolved", outcome=True),
    ("resolved", "close"): Step("closed"),
}

NOTICE_LIFECYCLE: dict[tuple[str, str], Step] = {
    ("open", "ack"): Step("acknowledged"),
    ("open", "resolve"): Step("resolved", outcome=True),
    ("acknowledged", "resolve"): Step("resolved", outcome=True),
    ("resolved", "close"): Step("closed"),
}

# A notice that moving a team elsewhere resolves.
REASSIGNABLE_NOTICE_LIFECYCLE: dict[tuple[str, str], Step] = {
    ("open", "ack"): Step("acknowledged"),
    ("open", "resolve"): Step("resolved", outcome=True),
    ("open", "reassign"): Step("resolved", assignee=True, sets_outcome="reassigned"),
    ("acknowledged", "resolve"): Step("resolved", outcome=True),
    ("acknowledged", "reassign"): Step("resolved", assignee=True, sets_outcome="reassigned"),
    ("resolved", "close"): Step("closed"),
}

LIFECYCLES: dict[str, dict[tuple[str, str], Step]] = {
    GAS_ALARM: GAS_LIFECYCLE,
    SENSOR_FAULT: NOTICE_LIFECYCLE,
    SENSOR_OFFLINE: NOTICE_LIFECYCLE,
    INSPECTOR_OFFLINE: NOTICE_LIFECYCLE,
    OVERDUE_INSPECTION: NOTICE_LIFECYCLE,
    DUPLICATE_VISIT: REASSIGNABLE_NOTICE_LIFECYCLE,
    OVERLAP_NOW: REASSIGNABLE_NOTICE_LIFECYCLE,
    APPROACH_WARNING: REASSIGNABLE_NOTICE_LIFECYCLE,
    HAZARD_OVERDUE: NOTICE_LIFECYCLE,
}

# What ``resolve`` accepts as outcome, per type.  ``reassigned`` is set only by
# the reassign action, which also names who was moved.
OUTCOMES: dict[str, tuple[str, ...]] = {
    GAS_ALARM: ("leak_handled", "false_alarm", "device_fault"),
    SENSOR_FAULT: ("repaired", "replaced", "no_fault_found"),
    SENSOR_OFFLINE: ("back_online", "repaired", "replaced", "decommissioned"),
    INSPECTOR_OFFLINE: ("back_online", "off_duty", "device_issue"),
    # superseded: set by the system when the next day's roll-up of the street opens.
    OVERDUE_INSPECTION: ("scheduled", "inspected", "dismissed", "superseded"),
    DUPLICATE_VISIT: ("justified", "dismissed"),
    OVERLAP_NOW: ("joint_inspection", "dismissed"),
    APPROACH_WARNING: ("justified", "dismissed"),
    # rectified: set by the system when the hazard leaves "rectifying" (rectified, or
    # its deadline moved); followed_up: a person chased the enterprise.
    HAZARD_OVERDUE: ("rectified", "followed_up", "dismissed"),
}

# Every action name, for each type: the buttons a UI may ever show.
ACTIONS: dict[str, tuple[str, ...]] = {
    t: tuple(dict.fromkeys(action for (_, action) in table)) for t, table in LIFECYCLES.items()
}

# The states each type uses, in lifecycle order.
TYPE_STATES: dict[str, tuple[str, ...]] = {
    t: tuple(s for s in ("open", "acknowledged", "dispatched", "on_scene", "resolved", "closed")
             if any(s in (frm, step.to) for (frm, _), step in table.items()))
    for t, table in LIFECYCLES.items()
}

assert set(LIFECYCLES) == set(ALERT_TYPES) == set(OUTCOMES)


# --- the one transition function --------------------------------------------------


def _table(alert_type: str) -> dict[tuple[str, str], Step]:
    try:
        return LIFECYCLES[alert_type]
    except KeyError:
        raise ValueError(f"unknown alert type {alert_type!r}") from None


def allowed_actions(alert: AlertState) -> list[str]:
    """The actions the lifecycle allows now, in table order (the buttons to show).

    ``assign`` on an alert with an assignee is a reassign: label it so.
    """
    return [action for (state, action) in _table(alert.type) if state == alert.state]


def transition(
    alert: AlertState,
    action: str,
    *,
    actor: str,
    at: float,
    note: str | None = None,
    assignee_id: str | None = None,
    outcome: str | None = None,
    note_typed: bool = False,
) -> tuple[AlertState, TransitionRecord]:
    """Apply ``action`` to ``alert``; return the new alert and the record of it.

    Raises ``TransitionNotAllowed`` when the type's table has no (state, action)
    pair, ``ValueError`` for a bad argument: an unknown type, an empty actor, a
    missing or unknown outcome, a missing assignee, a reassign to the same
    person, an argument the action does not take.

    Leaving ``open`` disarms escalation (``escalate_at = None``); the level
    reached stays as history.  ``note_typed``: ``note`` is what a person typed (the
    record's ``note_typed``; the implied steps' notes are the system's).
    """
    table = _table(alert.type)
    step = table.get((alert.state, action))
    if step is None:
        raise TransitionNotAllowed(alert.type, alert.state, action)
    if not actor or not isinstance(actor, str):
        raise ValueError("actor is required")
    if not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError(f"at must be a finite epoch time, not {at!r}")

    if step.assignee:
        if not assignee_id:
            raise ValueError(f"{action} needs an assignee_id")
        if step.record == "reassign" and assignee_id == alert.assignee_id:
            raise ValueError(f"{assignee_id!r} is already assigned")
    elif assignee_id is not None:
        raise ValueError(f"{action} takes no assignee_id")

    if step.outcome:
        allowed = OUTCOMES[alert.type]
        if outcome not in allowed:
            raise ValueError(f"{alert.type} outcome must be one of {allowed}, not {outcome!r}")
    elif step.sets_outcome is not None:
        if outcome not in (None, step.sets_outcome):
            raise ValueError(f"{action} sets outcome {step.sets_outcome!r}; got {outcome!r}")
        outcome = step.sets_outcome
    elif outcome is not None:
        raise ValueError(f"{action} takes no outcome")

    # No transition leads back to open, so every one disarms escalation.
    changes: dict = {"state": step.to, "escalate_at": None}
    if step.assignee:
        changes["assignee_id"] = assignee_id
    if outcome is not None:
        changes["outcome"] = outcome
    new = dataclasses.replace(alert, **changes)

    implied: list[TransitionRecord] = []
    state = alert.state
    for implied_action in step.implies:
        implied_step = table[(state, implied_action)]
        implied.append(
            TransitionRecord(state, implied_step.to, implied_action, actor, float(at), note=f"implied by {action}")
        )
        state = implied_step.to
    record = TransitionRecord(
        from_state=alert.state,
        to_state=step.to,
        action=step.record or action,
        actor=actor,
        at=float(at),
        note=note,
        assignee_id=assignee_id if step.assignee else None,
        outcome=outcome,
        implied=tuple(implied),
        note_typed=bool(note_typed and note),
    )
    return new, record


# --- opening an alert -------------------------------------------------------------


def new_alert(
    alert_type: str,
    subject: str,
    *,
    severity: str,
    at: float,
    actor: str = SYSTEM_ACTOR,
    note: str | None = None,
    **fields,
) -> tuple[AlertState, TransitionRecord]:
    """A new open alert and its opening record (``from_state`` None, action ``open``).

    ``fields`` are the other ``AlertState`` fields (enterprise_id, sensor_id,
    street_id, grid_id, peak_lel, details, ...).  ``first_seen`` and
    ``last_seen`` default to ``at``.  Arm escalation with
    ``alerts.escalation.Ladder.arm`` before storing it.
    """
    _table(alert_type)
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, not {severity!r}")
    if not subject:
        raise ValueError("subject is required")
    for forbidden in ("state", "id", "type", "subject", "severity"):
        if forbidden in fields:
            raise ValueError(f"new_alert sets {forbidden} itself")
    fields.setdefault("first_seen", float(at))
    fields.setdefault("last_seen", float(at))
    alert = AlertState(type=alert_type, subject=subject, severity=severity, state="open", **fields)
    return alert, TransitionRecord(None, "open", "open", actor, float(at), note=note)


def arrived_by_gps(
    alert: AlertState, inspector_id: str, distance_m: float, geofence_m: float, accuracy_m: float | None = None
) -> bool:
    """True when this fix confirms arrival: the alert waits for its assignee, and
    the assignee's fix lies within the enterprise's geofence.

    The fix's accuracy is not added to the radius (unlike visit detection): an
    automatic "on scene" must not fire from a fix that only might be there.  A
    fix that poor leaves confirmation to a person.  Then call
    ``transition(alert, "arrive", actor=f"gps:{inspector_id}", at=fix_ts)``.
    """
    if alert.state != "dispatched" or alert.assignee_id is None or inspector_id != alert.assignee_id:
        return False
    if accuracy_m is not None and accuracy_m > geofence_m:
        return False
    return distance_m <= geofence_m
