"""Red-light enterprises (红灯企业): one function per rule, thresholds from settings.

Each rule takes the facts of one enterprise and ``now`` and answers a reason
(a small dict: ``{"rule", ...facts}``) or None.  ``red_light`` runs them all:
the enterprise is red-light when any answers.  A red-light enterprise gets more
enforcement: the targeting list of the plans feature raises it.

* ``no_self_inspection``: no self-inspection (自查) within the period before its
  due date: the last one is older than ``period_s`` (or there is none).
* ``zero_hazards``: zero hazards of its own reported for ``periods`` consecutive
  periods (a self-inspection that never finds anything is not believed).  Reporting
  is either a hazard the enterprise reported itself or a self-inspection with an item
  found wanting.
* ``overdue_hazards``: at least ``min_count`` hazards past their rectification deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

RULES = ("no_self_inspection", "zero_hazards", "overdue_hazards")


@dataclass(frozen=True, slots=True)
class RedLightRules:
    period_s: float  # the self-inspection period (settings.self_inspection_period_d)
    zero_hazard_periods: int  # settings.redlight_zero_hazard_periods
    overdue_min: int  # settings.redlight_overdue_min


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    enterprise_id: str
    last_self_inspection_at: float | None
    # Times the enterprise itself reported hazards (found_by "enterprise", or a
    # self-inspection with items not ok), any order.
    self_reported_at: tuple[float, ...] = ()
    overdue_hazards: int = 0
    # Since when the enterprise is supervised (first self-inspection or account); None: always.
    since: float | None = None


def no_self_inspection(f: EnterpriseFacts, now: float, rules: RedLightRules) -> dict | None:
    if f.last_self_inspection_at is not None and now - f.last_self_inspection_at <= rules.period_s:
        return None
    return {"rule": "no_self_inspection", "last_self_inspection_at": f.last_self_inspection_at,
            "due_at": None if f.last_self_inspection_at is None else f.last_self_inspection_at + rules.period_s}


def zero_hazards(f: EnterpriseFacts, now: float, rules: RedLightRules) -> dict | None:
    n = rules.zero_hazard_periods
    if n <= 0:
        return None
    start = now - n * rules.period_s
    if f.since is not None and f.since > start:
        return None  # not supervised for N whole periods yet
    if any(start < t <= now for t in f.self_reported_at):
        return None
    return {"rule": "zero_hazards", "periods": n, "since": start}


def overdue_hazards(f: EnterpriseFacts, now: float, rules: RedLightRules) -> dict | None:
    if rules.overdue_min <= 0 or f.overdue_hazards < rules.overdue_min:
        return None
    return {"rule": "overdue_hazards", "count": f.overdue_hazards}


_RULE_FUNCS = (no_self_inspection, zero_hazards, overdue_hazards)


def red_light(f: EnterpriseFacts, now: float, rules: RedLightRules) -> list[dict] | None:
    """The reasons, in RULES order, or None when the enterprise is not red-light."""
    reasons = [r for r in (fn(f, now, rules) for fn in _RULE_FUNCS) if r is not None]
    return reasons or None
