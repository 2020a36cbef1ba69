"""Daily scoring (每日零时打分): enterprises, streets and units, with weights from settings.

Pure and deterministic: the same facts give the same rows, to the last digit
(parts are rounded to 4 decimals, scores to 2, ranks break ties by id).  The
facts of a day are gathered by ``data.hazards_store`` from what happened up to
the end of that day (China time) within ``window`` days, so a rerun of a past day,
or a day caught up after downtime, gives the rows it would have given on time.

Every part is in [0, 1], 1 the best; a part with nothing to measure is 1 (an
enterprise with no hazards has nothing to rectify late), except a part that is
``None`` (not measurable yet, e.g. plan completion before plans exist), which is
left out of the weighted mean.  score = 100 x sum(w x part) / sum(w).

Enterprise parts (settings ``score_weights_enterprise``):
  self_report      the last self-inspection within the period: 1; late: falls
                   linearly to 0 over one more period; never: 0
  rectification    hazards rectified / hazards assigned (in the window)
  speed            hazards rectified by their deadline / hazards rectified
  overdue          1 / (1 + hazards past deadline at the day's end)
  gas_alarms       1 / (1 + gas alarms in the window)
  findings         1 / (1 + (general + 3 x major hazards found by inspectors or service
                   agencies in the window; not those it reported itself) / 4)

Street and unit parts (settings ``score_weights_area``):
  coverage         enterprises inspected within their interval / enterprises
  duplicates       1 - duplicate visits / visits (in the window)
  plan_completion  None until plans exist
  alarm_response   mean over gas alarms of max(0, 1 - time to on scene / target); never on scene: 0
  hazard_closure   hazards closed / hazards found (in the window)
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENTERPRISE_PARTS = ("self_report", "rectification", "speed", "overdue", "gas_alarms", "findings")
AREA_PARTS = ("coverage", "duplicates", "plan_completion", "alarm_response", "hazard_closure")
KINDS = ("enterprise", "street", "unit")


@dataclass(frozen=True, slots=True)
class EnterpriseDay:
    id: str
    self_inspection_age_s: float | None = None  # at the day's end; None: never
    assigned: int = 0
    rectified: int = 0
    rectified_on_time: int = 0
    overdue: int = 0
    gas_alarms: int = 0
    found_general: int = 0
    found_major: int = 0


@dataclass(frozen=True, slots=True)
class AreaDay:
    id: str
    enterprises: int = 0
    covered: int = 0
    visits: int = 0
    duplicates: int = 0
    alarm_response_s: tuple[float | None, ...] = field(default_factory=tuple)
    hazards_found: int = 0
    hazards_closed: int = 0
    plan_completion: float | None = None


@dataclass(frozen=True, slots=True)
class ScoreRow:
    kind: str
    id: str
    score: float
    rank: int
    parts: dict


def _r4(x: float) -> float:
    return round(float(x), 4)


def _ratio(num: int, den: int) -> float:
    return 1.0 if den <= 0 else min(1.0, num / den)


def enterprise_parts(f: EnterpriseDay, period_s: float) -> dict[str, float]:
    if f.self_inspection_age_s is None:
        self_report = 0.0
    elif f.self_inspection_age_s <= period_s:
        self_report = 1.0
    else:
        self_report = max(0.0, 1.0 - (f.self_inspection_age_s - period_s) / period_s)
    return {
        "self_report": _r4(self_report),
        "rectification": _r4(_ratio(f.rectified, f.assigned)),
        "speed": _r4(_ratio(f.rectified_on_time, f.rectified)),
        "overdue": _r4(1.0 / (1 + f.overdue)),
        "gas_alarms": _r4(1.0 / (1 + f.gas_alarms)),
        "findings": _r4(1.0 / (1 + (f.found_general + 3 * f.found_major) / 4)),
    }


def area_parts(f: AreaDay, response_target_s: float) -> dict[str, float | None]:
    if f.alarm_response_s:
        resp = sum(0.0 if t is None else max(0.0, 1.0 - t / response_target_s) for t in f.alarm_response_s)
        alarm_response = resp / len(f.alarm_response_s)
    else:
        alarm_response = 1.0
    return {
        "coverage": _r4(_ratio(f.covered, f.enterprises)),
        "duplicates": _r4(1.0 - (f.duplicates / f.visits if f.visits else 0.0)),
        "plan_completion": None if f.plan_completion is None else _r4(f.plan_completion),
        "alarm_response": _r4(alarm_response),
        "hazard_closure": _r4(_ratio(f.hazards_closed, f.hazards_found)),
    }


def weighted_score(parts: dict[str, float | None], weights: dict[str, float]) -> float:
    num = den = 0.0
    for name, value in parts.items():
        if value is None:
            continue
        w = weights.get(name, 0.0)
        if w <= 0:
            continue
        num += w * value
        den += w
    return round(100.0 * num / den, 2) if den > 0 else 100.0


def ranked(kind: str, scored: list[tuple[str, float, dict]]) -> list[ScoreRow]:
    """Rows ordered best first; equal scores share a rank (1, 2, 2, 4), ties listed by id."""
    out: list[ScoreRow] = []
    prev_score, prev_rank = None, 0
    for i, (ident, score, parts) in enumerate(sorted(scored, key=lambda r: (-r[1], r[0])), start=1):
        rank = prev_rank if score == prev_score else i
        out.append(ScoreRow(kind, ident, score, rank, parts))
        prev_score, prev_rank = score, rank
    return out


def score_enterprises(facts: list[EnterpriseDay], weights: dict[str, float], period_s: float) -> list[ScoreRow]:
    w = {k: float(v) for k, v in weights.items()}
    scored = []
    for f in facts:
        parts = enterprise_parts(f, period_s)
        scored.append((f.id, weighted_score(parts, w), parts))
    return ranked("enterprise", scored)


def score_areas(kind: str, facts: list[AreaDay], weights: dict[str, float], response_target_s: float) -> list[ScoreRow]:
    scored = []
    for f in facts:
        parts = area_parts(f, response_target_s)
        scored.append((f.id, weighted_score(parts, weights), parts))
    return ranked(kind, scored)
