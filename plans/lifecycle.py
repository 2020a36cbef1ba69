"""The plan lifecycle: one table, one transition function.

    draft --submit--> submitted --approve--> approved
                      submitted --return---> draft      (sent back for changes)

A pair that is not in the table raises ``TransitionNotAllowed`` (HTTP 409).
Items may be changed only while the plan is a draft (``editable``).  A conflict
is open until one resolution (joint, shift or drop) closes it; a resolved
conflict cannot be resolved again (``resolve_conflict``).
"""

from __future__ import annotations

from plans.model import PLAN_STATES, SUGGESTIONS


class TransitionNotAllowed(Exception):
    """No ``action`` from ``state`` (HTTP 409)."""

    def __init__(self, what: str, state: str, action: str):
        self.what, self.state, self.action = what, state, action
        super().__init__(f"cannot {action!r} a {what} that is {state!r}")


PLAN_LIFECYCLE: dict[tuple[str, str], str] = {
    ("draft", "submit"): "submitted",
    ("submitted", "approve"): "approved",
    ("submitted", "return"): "draft",
}

ACTIONS = tuple(dict.fromkeys(a for (_, a) in PLAN_LIFECYCLE))
assert {s for pair in PLAN_LIFECYCLE for s in pair[:1]} | set(PLAN_LIFECYCLE.values()) == set(PLAN_STATES)


def transition(state: str, action: str) -> str:
    """The plan's next state; TransitionNotAllowed when the table has no (state, action)."""
    if state not in PLAN_STATES:
        raise ValueError(f"unknown plan state {state!r}")
    to = PLAN_LIFECYCLE.get((state, action))
    if to is None:
        raise TransitionNotAllowed("plan", state, action)
    return to


def allowed_actions(state: str) -> list[str]:
    return [a for (s, a) in PLAN_LIFECYCLE if s == state]


def editable(state: str) -> bool:
    return state == "draft"


def resolve_conflict(resolved: bool, action: str) -> str:
    """The resolution to record; TransitionNotAllowed for a resolved conflict, ValueError for an unknown action."""
    if action not in SUGGESTIONS:
        raise ValueError(f"action must be one of {', '.join(SUGGESTIONS)}, not {action!r}")
    if resolved:
        raise TransitionNotAllowed("conflict", "resolved", action)
    return action
