"""The targeting list (靶向清单): a transparent score with its parts.

score = risk + overdue + alarms + duplicates + hazards + red_light, each part shown:

* ``risk``: red 40, orange 25, yellow 10, blue 0 points;
* ``overdue``: 0.25 points per day past the risk interval's due date, at most 30
  (reached at 120 days);
* ``alarms``: 5 points per gas alarm in the last 90 days, at most 20;
* ``duplicates``: 3 points per duplicate visit the enterprise suffered in the
  last 90 days (a burden on it, and a sign that the units do not coordinate),
  at most 15;
* ``hazards``: 5 points per open hazard (found, not yet closed out), at most 20;
* ``red_light``: 15 points for a red-light enterprise (no self-inspection on time,
  zero hazards reported for too long, hazards past their deadline: hazards.redlight),
  whose reasons the row carries as ``red_light_reasons``.

Ranked by score (highest first), then enterprise id.  Scores are rounded to 2
decimals.  The list is the default pool of a draw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RISK_POINTS = {"red": 40.0, "orange": 25.0, "yellow": 10.0, "blue": 0.0}
OVERDUE_PER_DAY, OVERDUE_MAX = 0.25, 30.0
ALARM_POINTS, ALARM_MAX = 5.0, 20.0
DUPLICATE_POINTS, DUPLICATE_MAX = 3.0, 15.0
HAZARD_POINTS, HAZARD_MAX = 5.0, 20.0
RED_LIGHT_POINTS = 15.0
LOOKBACK_D = 90


@dataclass(frozen=True, slots=True)
class TargetFacts:
    enterprise_id: str
    risk: str
    next_due_at: float | None
    alarms_90d: int = 0
    duplicates_90d: int = 0
    open_hazards: int = 0
    red_light_reasons: tuple[str, ...] = ()


def score(f: TargetFacts, now: float) -> dict:
    days_overdue = 0.0 if f.next_due_at is None or f.next_due_at >= now else (now - f.next_due_at) / 86400.0
    parts = {
        "risk": RISK_POINTS.get(f.risk, 0.0),
        "overdue": round(min(OVERDUE_MAX, days_overdue * OVERDUE_PER_DAY), 2),
        "alarms": min(ALARM_MAX, f.alarms_90d * ALARM_POINTS),
        "duplicates": min(DUPLICATE_MAX, f.duplicates_90d * DUPLICATE_POINTS),
        "hazards": min(HAZARD_MAX, f.open_hazards * HAZARD_POINTS),
        "red_light": RED_LIGHT_POINTS if f.red_light_reasons else 0.0,
    }
    return {"enterprise_id": f.enterprise_id, "score": round(sum(parts.values()), 2), "parts": parts,
            "risk": f.risk, "days_overdue": round(days_overdue, 1), "alarms_90d": f.alarms_90d,
            "duplicates_90d": f.duplicates_90d, "open_hazards": f.open_hazards,
            "red_light_reasons": list(f.red_light_reasons)}


def rank(facts: Iterable[TargetFacts], now: float, limit: int | None = None) -> list[dict]:
    out = [score(f, now) for f in facts]
    out.sort(key=lambda r: (-r["score"], r["enterprise_id"]))
    if limit is not None:
        out = out[:limit]
    for i, r in enumerate(out, 1):
        r["rank"] = i
    return out
