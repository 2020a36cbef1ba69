"""The hazard lifecycle (隐患闭环): one table, one transition function.

Nothing else changes ``Hazard.state``.  ``transition`` looks the pair (current
state, action) up in ``LIFECYCLE``; a pair that is not there raises
``TransitionNotAllowed`` (the API answers 409).  docs/api.md draws the table.

* **assign** (reported -> rectifying) hands the hazard to the enterprise with a
  deadline: given, or ``reported_at``-independent ``at + deadline_days[level]``.
  assign on a hazard already rectifying moves its deadline (record ``extend``),
  to the deadline given: the default could shorten it.
* **rectify** (rectifying -> rectified) needs evidence: a note and at least one
  photo of the rectification (``evidence_photos``).
* **accept** (rectified -> accepted) is made ``on_site`` (the inspector's GPS fix
  within the enterprise's geofence, proven like an alarm arrival:
  ``on_site_by_gps``) or by ``review`` of the evidence.
* **reject** (rectified -> rectifying) sends it back with a reason; the
  deadline stays unless a new one is given.
* **close** (accepted -> closed) is 销号; there is no reopen: a hazard found
  again is a new hazard.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from hazards.model import ACCEPT_METHODS, DAY_S, FINDERS, LEVELS, Hazard, HazardRecord


class TransitionNotAllowed(Exception):
    """The lifecycle has no ``action`` from ``state`` (HTTP 409)."""

    def __init__(self, state: str, action: str, reason: str | None = None):
        self.state, self.action = state, action
        self.reason = reason or "transition_not_allowed"
        super().__init__(f"cannot {action!r} a hazard that is {state!r}")


class NotOnSite(TransitionNotAllowed):
    """An on-site acceptance without a GPS fix inside the geofence (HTTP 409, ``not_on_site``)."""

    def __init__(self, state: str, why: str):
        super().__init__(state, "accept", "not_on_site")
        self.args = (f"on-site acceptance needs a GPS fix within the enterprise's geofence: {why}",)


@dataclass(frozen=True, slots=True)
class Step:
    """What one (state, action) pair does.

    to:        the new state
    deadline:  the action sets the deadline (given, or by level)
    evidence:  the action needs a note and at least one evidence photo
    method:    the action needs an acceptance method (ACCEPT_METHODS)
    reason:    the action needs a reason (the note)
    record:    the action name the record carries (default: the action's)
    """

    to: str
    deadline: bool = False
    evidence: bool = False
    method: bool = False
    reason: bool = False
    record: str | None = None


LIFECYCLE: dict[tuple[str, str], Step] = {
    ("reported", "assign"): Step("rectifying", deadline=True),
    ("rectifying", "assign"): Step("rectifying", deadline=True, record="extend"),
    ("rectifying", "rectify"): Step("rectified", evidence=True),
    ("rectified", "accept"): Step("accepted", method=True),
    ("rectified", "reject"): Step("rectifying", reason=True),
    ("accepted", "close"): Step("closed"),
}

ACTIONS = tuple(dict.fromkeys(action for (_, action) in LIFECYCLE))


def deadline_for(level: str, at: float, deadline_days: dict[str, float]) -> float:
    """The rectification deadline of a hazard of ``level`` assigned at ``at``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    return float(at) + float(deadline_days[level]) * DAY_S


def allowed_actions(h: Hazard) -> list[str]:
    return [action for (state, action) in LIFECYCLE if state == h.state]


def on_site_by_gps(distance_m: float | None, geofence_m: float, accuracy_m: float | None = None,
                   fix_age_s: float | None = None, max_fix_age_s: float | None = None) -> str | None:
    """None when this fix proves presence on site, else why not.

    As for an alarm arrival (``alerts.lifecycle.arrived_by_gps``): the fix lies
    within the geofence and its accuracy is not added to the radius; a fix less
    accurate than the geofence proves nothing.  A stale fix proves nothing either.
    """
    if distance_m is None:
        return "no GPS fix of the accepting inspector"
    if max_fix_age_s is not None and fix_age_s is not None and fix_age_s > max_fix_age_s:
        return f"the last fix is {fix_age_s:.0f} s old (at most {max_fix_age_s:.0f} s)"
    if accuracy_m is not None and accuracy_m > geofence_m:
        return f"the fix's accuracy {accuracy_m:.0f} m is worse than the geofence {geofence_m:.0f} m"
    if distance_m > geofence_m:
        return f"the fix is {distance_m:.0f} m from the enterprise (geofence {geofence_m:.0f} m)"
    return None


def new_hazard(enterprise_id: str, category: str, level: str, found_by: str, *, actor: str, at: float,
               **fields) -> tuple[Hazard, HazardRecord]:
    """A new reported hazard and its opening record (``from_state`` None, action ``report``)."""
    if not enterprise_id:
        raise ValueError("enterprise_id is required")
    if not category:
        raise ValueError("category is required")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
    if found_by not in FINDERS:
        raise ValueError(f"found_by must be one of {FINDERS}, not {found_by!r}")
    if not actor:
        raise ValueError("actor is required")
    for forbidden in ("state", "id", "reported_at"):
        if forbidden in fields:
            raise ValueError(f"new_hazard sets {forbidden} itself")
    h = Hazard(enterprise_id=enterprise_id, category=category, level=level, found_by=found_by,
               reported_at=float(at), **fields)
    return h, HazardRecord(None, "reported", "report", actor, float(at), note=h.description)


def transition(h: Hazard, action: str, *, actor: str, at: float, deadline_days: dict[str, float] | None = None,
               deadline: float | None = None, note: str | None = None, evidence_photos: int = 0,
               method: str | None = None, not_on_site: str | None = None) -> tuple[Hazard, HazardRecord]:
    """Apply ``action`` to ``h``; return the new hazard and the record of it.

    Raises ``TransitionNotAllowed`` when the table has no (state, action) pair
    (``NotOnSite`` for an on-site acceptance whose GPS proof failed: pass the
    reason from ``on_site_by_gps`` as ``not_on_site``), ``ValueError`` for a bad
    argument (no actor, no evidence, no reason, an unknown method, a deadline in
    the past, an argument the action does not take).
    """
    step = LIFECYCLE.get((h.state, action))
    if step is None:
        raise TransitionNotAllowed(h.state, action)
    if not actor or not isinstance(actor, str):
        raise ValueError("actor is required")
    if not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError(f"at must be a finite epoch time, not {at!r}")
    at = float(at)
    changes: dict = {"state": step.to}
    detail: dict = {}

    if step.deadline:
        if deadline is None and step.record == "extend":
            # The default (now + the level's days) could shorten the deadline it extends.
            raise ValueError("extending a deadline needs the new deadline")
        if deadline is None:
            if deadline_days is None:
                raise ValueError("assign needs a deadline or the deadlines by level")
            deadline = deadline_for(h.level, at, deadline_days)
        if not math.isfinite(deadline) or deadline <= at:
            raise ValueError("the deadline must lie in the future")
        changes["deadline"] = float(deadline)
        if h.assigned_at is None:
            changes["assigned_at"] = at
        detail["deadline"] = float(deadline)
    elif deadline is not None and not step.reason:
        raise ValueError(f"{action} takes no deadline")

    if step.evidence:
        if not (note and note.strip()):
            raise ValueError("rectify needs a note describing the rectification")
        if evidence_photos < 1:
            raise ValueError("rectify needs at least one photo of the rectification")
        changes["rectified_at"] = at
        detail["photos"] = int(evidence_photos)

    if step.method:
        if method not in ACCEPT_METHODS:
            raise ValueError(f"method must be one of {ACCEPT_METHODS}, not {method!r}")
        if method == "on_site" and not_on_site is not None:
            raise NotOnSite(h.state, not_on_site)
        changes["accepted_at"], changes["accept_method"] = at, method
        detail["method"] = method
    elif method is not None:
        raise ValueError(f"{action} takes no method")

    if step.reason:
        if not (note and note.strip()):
            raise ValueError(f"{action} needs a reason")
        changes["send_backs"] = h.send_backs + 1
        if deadline is not None:
            if not math.isfinite(deadline) or deadline <= at:
                raise ValueError("the deadline must lie in the future")
            changes["deadline"] = float(deadline)
            detail["deadline"] = float(deadline)

    if step.to == "closed":
        changes["closed_at"] = at

    new = dataclasses.replace(h, **changes)
    return new, HazardRecord(h.state, step.to, step.record or action, actor, at, note=note, detail=detail or None)


# --- overdue ----------------------------------------------------------------------

def is_overdue(h: Hazard, now: float) -> bool:
    """Past its deadline and not yet rectified (rectifying; a rectified hazard waits on us)."""
    return h.state == "rectifying" and h.deadline is not None and now > h.deadline


def overdue_level(h: Hazard, now: float, escalate_after_s: float) -> int:
    """0: not overdue; 1: overdue (the grid and street see it); 2: overdue longer than
    ``escalate_after_s`` (escalated to the district), as alerts escalate."""
    if not is_overdue(h, now):
        return 0
    return 2 if now - h.deadline > escalate_after_s else 1
