"""The escalation ladder: who is told when nobody acknowledges an alert.

Default (settings ``escalate_t1_s``, ``escalate_t2_s``)::

    level 0  grid      网格员 (the grid's officer)    at open
    level 1  street    街道 command                    T1 = 60 s after open, if still unacknowledged
    level 2  district  区 command                      T2 = 300 s after open, if still unacknowledged

Both deadlines count from the moment the alert opened, not from the previous
rung.  Escalation stops once the alert leaves ``open`` (acknowledged, or
assigned, which acknowledges): ``lifecycle.transition`` disarms it.

Timers survive restarts because there is no timer: the deadline is data.
``Ladder.arm`` writes ``escalate_at`` into the alert, the persistence layer
stores it (an indexed SQL column, or a Redis sorted set), and a loop in any
process asks for ``escalate_at <= now`` and calls ``escalate``.  The next
deadline is computed from the stored one, never from the clock of the firing,
so a late or restarted loop neither drifts nor skips a rung: it fires each
overdue rung once, in order (call ``escalate`` until it returns None).  Two
loops racing on the same alert are settled by the storage's optimistic lock
(``alerts.version``): one update wins, the other retries and finds nothing due.

Which alerts climb the ladder: every ``gas_alarm`` (low or high; a leak is a
leak) and every ``critical`` alert of another type (a tampered detector).
Notices (offline, duplicate, overdue) stay with the grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from alerts.model import GAS_ALARM, SYSTEM_ACTOR, AlertState, TransitionRecord
from geo.timefmt import iso_ms

DEFAULT_T1_S = 60.0
DEFAULT_T2_S = 300.0


@dataclass(frozen=True, slots=True)
class Rung:
    level: int
    audience: str  # who is told at this level: "grid", "street", "district", ...
    after_s: float  # seconds after the alert opened


@dataclass(frozen=True, slots=True)
class Ladder:
    rungs: tuple[Rung, ...]
    types: frozenset[str] = frozenset({GAS_ALARM})
    severities: frozenset[str] = frozenset({"critical"})

    def __post_init__(self):
        if not self.rungs or self.rungs[0].after_s != 0:
            raise ValueError("the first rung is at 0 s")
        for i, rung in enumerate(self.rungs):
            if rung.level != i:
                raise ValueError("rung levels are 0, 1, 2, ...")
            if i and not rung.after_s > self.rungs[i - 1].after_s:
                raise ValueError("rung times must increase")

    @classmethod
    def of(cls, *steps: tuple[str, float], types: Iterable[str] = (GAS_ALARM,),
           severities: Iterable[str] = ("critical",)) -> Ladder:
        """``Ladder.of(("grid", 0), ("street", 60), ("district", 300))``."""
        rungs = tuple(Rung(i, audience, float(after)) for i, (audience, after) in enumerate(steps))
        types = frozenset([types] if isinstance(types, str) else types)
        severities = frozenset([severities] if isinstance(severities, str) else severities)
        return cls(rungs, types, severities)

    @classmethod
    def from_settings(cls, settings=None, *, t1_s: float | None = None, t2_s: float | None = None) -> Ladder:
        """grid at 0, street at T1, district at T2, from the Settings object
        (``escalate_t1_s``, ``escalate_t2_s``) or explicit values."""
        if t1_s is None:
            t1_s = getattr(settings, "escalate_t1_s", DEFAULT_T1_S)
        if t2_s is None:
            t2_s = getattr(settings, "escalate_t2_s", DEFAULT_T2_S)
        return cls.of(("grid", 0.0), ("street", t1_s), ("district", t2_s))

    # --- queries ---------------------------------------------------------------

    @property
    def top(self) -> int:
        return len(self.rungs) - 1

    def audience(self, level: int) -> str:
        return self.rungs[min(level, self.top)].audience

    def applies_to(self, alert: AlertState) -> bool:
        return alert.type in self.types or alert.severity in self.severities

    def arm(self, alert: AlertState, now: float, *, since: float | None = None) -> AlertState:
        """Set the first deadline on an open alert the ladder applies to.

        The clock starts at ``since``, by default ``min(first_seen, now)``: a
        reading that arrives late has waited already; a device clock running
        ahead must not postpone it.  Pass ``since=now`` to arm an alert that
        became critical later (a fault that turned into tamper).  An alert
        already armed keeps its deadline; one the ladder does not apply to,
        or that is not open, gets ``escalate_at = None``.
        """
        if alert.state != "open" or not self.applies_to(alert) or alert.escalation_level >= self.top:
            return dataclasses.replace(alert, escalate_at=None) if alert.escalate_at is not None else alert
        if alert.escalate_at is not None:
            return alert
        start = min(alert.first_seen, now) if since is None else since
        step = self.rungs[alert.escalation_level + 1].after_s - self.rungs[alert.escalation_level].after_s
        return dataclasses.replace(alert, escalate_at=start + step)

    def escalate_due(self, alert: AlertState, now: float) -> tuple[int, float | None] | None:
        """``(new_level, next_escalate_at)`` when a rung is due at ``now``, else None.

        None once the alert is acknowledged (left ``open``), when it is not
        armed, before the deadline, or at the top of the ladder.
        ``next_escalate_at`` is None when the new level is the top.
        """
        if alert.state != "open" or alert.escalate_at is None or now < alert.escalate_at:
            return None
        level = alert.escalation_level
        if level >= self.top:
            return None
        new_level = level + 1
        if new_level == self.top:
            return new_level, None
        gap = self.rungs[new_level + 1].after_s - self.rungs[new_level].after_s
        return new_level, alert.escalate_at + gap

    def escalate(self, alert: AlertState, now: float, *, actor: str = SYSTEM_ACTOR
                 ) -> tuple[AlertState, TransitionRecord] | None:
        """Apply one due rung: the alert at its new level and the record of it.

        The record's action is ``escalate``; the state does not change (the
        alert is still open).  ``at`` is when it fired (``now``); the note
        names the level, its audience and the deadline it was due at, so the
        timer's accuracy can be read off the history.  Call again until None
        to catch up after downtime.
        """
        due = self.escalate_due(alert, now)
        if due is None:
            return None
        new_level, next_at = due
        deadline = alert.escalate_at
        new = dataclasses.replace(alert, escalation_level=new_level, escalate_at=next_at)
        note = f"level {new_level}: {self.audience(new_level)} (unacknowledged; due {iso_ms(deadline)})"
        return new, TransitionRecord(alert.state, alert.state, "escalate", actor, float(now), note=note)


DEFAULT_LADDER = Ladder.from_settings()


def escalate_due(alert: AlertState, now: float, ladder: Ladder = DEFAULT_LADDER) -> tuple[int, float | None] | None:
    """``ladder.escalate_due(alert, now)`` with the default ladder unless one is given."""
    return ladder.escalate_due(alert, now)
