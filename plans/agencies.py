"""The monthly rating of third-party safety-service agencies (安全技术服务机构; docs/agencies.md).

Pure: the facts of one agency's month come in (from ``data/agencies_store.py``), its
score and every part of it come out.  The score is out of 100:

    timeliness   WEIGHTS["timeliness"] x (weeks whose plan was submitted before the week began) / weeks
    completion   WEIGHTS["completion"] x (plan items done) / (plan items)                  0 with no items
    service      WEIGHTS["service"]    x (contracted enterprises visited) / (contracted)   0 with no contracts
    detection    WEIGHTS["detection"]  x found / (found + missed)       when both are 0: full with service
                                                                        visits in the month, else 0
    duplicates   -PENALTIES["duplicate"] each, at most -PENALTY_CAPS["duplicates"]
    complaints   -PENALTIES["complaint"] each, at most -PENALTY_CAPS["complaints"]

and never below 0.  Agencies are ranked by score (ties share a rank, then by id).

A month is named ``YYYY-MM`` (China time); its weeks are the ISO weeks whose Monday falls in it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from geo.china import check_year
from plans.model import day_start_ts, week_span_ts

# Points of each part (they sum to 100) and the penalties.
WEIGHTS: dict[str, float] = {"timeliness": 15.0, "completion": 25.0, "service": 25.0, "detection": 35.0}
PENALTIES: dict[str, float] = {"duplicate": 2.0, "complaint": 5.0}
PENALTY_CAPS: dict[str, float] = {"duplicates": 10.0, "complaints": 20.0}
PARTS = ("timeliness", "completion", "service", "detection", "duplicates", "complaints")
assert sum(WEIGHTS.values()) == 100.0


@dataclass(frozen=True, slots=True)
class Contract:
    enterprise_id: str
    start_date: str  # YYYY-MM-DD, China time, both inclusive
    end_date: str


@dataclass(frozen=True, slots=True)
class AgencyVisit:
    visit_id: int
    enterprise_id: str
    start_ts: float
    local_date: str  # YYYY-MM-DD of start_ts, China time
    duplicate: bool  # duplicate_of is set: the visit duplicated another unit's


@dataclass(frozen=True, slots=True)
class HazardFact:
    hazard_id: int
    enterprise_id: str
    reported_at: float
    by_agency: bool  # found_by agency and attributed to this agency
    by_inspector: bool  # found_by inspector (an enforcement or street inspector)


@dataclass
class AgencyMonth:
    """Everything the rating of one agency in one month reads."""

    agency_id: str
    name: str
    contracts: list[Contract] = field(default_factory=list)
    # week key -> the first time its plan was submitted (None: never submitted / no plan)
    submitted: dict[str, float | None] = field(default_factory=dict)
    plan_items: int = 0
    plan_items_done: int = 0
    visits: list[AgencyVisit] = field(default_factory=list)  # by the agency's inspectors, in the month
    hazards: list[HazardFact] = field(default_factory=list)  # reported in the month at its contracted enterprises
    complaints: int = 0


_MONTH = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)


@dataclass(frozen=True, slots=True)
class Month:
    key: str  # 2026-11
    first_day: str  # YYYY-MM-DD, China time, both inclusive
    last_day: str

    @property
    def start_ts(self) -> float:
        return day_start_ts(self.first_day)

    @property
    def end_ts(self) -> float:
        return day_start_ts((dt.date.fromisoformat(self.last_day) + dt.timedelta(days=1)).isoformat())


def parse_month(key: str) -> Month:
    """``2026-11``; ValueError for anything else."""
    m = _MONTH.fullmatch(key) if isinstance(key, str) else None
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1:
        raise ValueError(f"month must look like 2026-11, not {key!r}")
    y, n = int(m.group(1)), int(m.group(2))
    check_year(y, key)
    first = dt.date(y, n, 1)
    nxt = dt.date(y + 1, 1, 1) if n == 12 else dt.date(y, n + 1, 1)
    return Month(key, first.isoformat(), (nxt - dt.timedelta(days=1)).isoformat())


def month_of(date: str) -> str:
    return date[:7]


@dataclass(frozen=True, slots=True)
class Week:
    key: str  # 2026-W45
    start_ts: float


def month_weeks(month: Month) -> list[Week]:
    """The ISO weeks of a month: those whose Monday falls in it."""
    d = dt.date.fromisoformat(month.first_day)
    d += dt.timedelta(days=(7 - d.weekday()) % 7)  # the first Monday
    last = dt.date.fromisoformat(month.last_day)
    out = []
    while d <= last:
        y, w, _ = d.isocalendar()
        key = f"{y}-W{w:02d}"
        out.append(Week(key, week_span_ts(key)[0]))
        d += dt.timedelta(days=7)
    return out


def under_contract(contracts: Iterable[Contract], enterprise_id: str, day: str) -> bool:
    return any(c.enterprise_id == enterprise_id and c.start_date <= day <= c.end_date for c in contracts)


def contracted_in(contracts: Iterable[Contract], month: Month) -> set[str]:
    """Enterprises under one of the contracts on at least one day of the month."""
    first, last = month.first_day, month.last_day
    return {c.enterprise_id for c in contracts if c.start_date <= last and c.end_date >= first}


def _ratio(part: float, whole: float) -> float | None:
    return None if not whole else part / whole


def _round(x: float) -> float:
    return round(x + 0.0, 2)


def rate_one(m: AgencyMonth, month: Month, weeks: Sequence[Week] | None = None) -> dict:
    """The score of one agency's month and every part, each with the counts it comes from."""
    weeks = list(month_weeks(month) if weeks is None else weeks)
    on_time = late = missing = 0
    for w in weeks:
        at = m.submitted.get(w.key)
        if at is None:
            missing += 1
        elif at < w.start_ts:
            on_time += 1
        else:
            late += 1
    contracted = contracted_in(m.contracts, month)
    service = [v for v in m.visits if under_contract(m.contracts, v.enterprise_id, v.local_date)]
    served = {v.enterprise_id for v in service}
    found = [h for h in m.hazards if h.by_agency]
    # Missed: an inspector found it after one of the agency's service visits there this month.
    missed = [h for h in m.hazards if h.by_inspector and not h.by_agency
              and any(v.enterprise_id == h.enterprise_id and v.start_ts < h.reported_at for v in service)]
    dups = sum(1 for v in m.visits if v.duplicate)

    r_time = _ratio(on_time, len(weeks))
    r_done = _ratio(m.plan_items_done, m.plan_items)
    r_serv = _ratio(len(served & contracted), len(contracted))
    if found or missed:
        r_det = len(found) / (len(found) + len(missed))
    else:  # nothing found and nothing missed: it counts only if the agency was there
        r_det = 1.0 if service else 0.0
    parts = {
        "timeliness": {"weeks": len(weeks), "on_time": on_time, "late": late, "missing": missing,
                       "ratio": r_time, "points": _round(WEIGHTS["timeliness"] * (r_time or 0.0)),
                       "max": WEIGHTS["timeliness"]},
        "completion": {"items": m.plan_items, "done": m.plan_items_done, "ratio": r_done,
                       "points": _round(WEIGHTS["completion"] * (r_done or 0.0)), "max": WEIGHTS["completion"]},
        "service": {"contracted": len(contracted), "served": len(served & contracted), "visits": len(service),
                    "ratio": r_serv, "points": _round(WEIGHTS["service"] * (r_serv or 0.0)),
                    "max": WEIGHTS["service"]},
        "detection": {"found": len(found), "missed": len(missed), "ratio": r_det,
                      "missed_hazard_ids": sorted(h.hazard_id for h in missed),
                      "points": _round(WEIGHTS["detection"] * r_det), "max": WEIGHTS["detection"]},
        "duplicates": {"count": dups,
                       "points": _round(-min(PENALTY_CAPS["duplicates"], PENALTIES["duplicate"] * dups)),
                       "max": 0.0},
        "complaints": {"count": m.complaints,
                       "points": _round(-min(PENALTY_CAPS["complaints"], PENALTIES["complaint"] * m.complaints)),
                       "max": 0.0},
    }
    score = max(0.0, _round(sum(p["points"] for p in parts.values())))
    return {"id": m.agency_id, "name": m.name, "month": month.key, "score": score, "parts": parts}


def rate(months: Iterable[AgencyMonth], month: Month) -> list[dict]:
    """Every agency's rating of the month, best first (then by id), each with ``rank``
    (1-based; equal scores share a rank)."""
    weeks = month_weeks(month)
    rows = sorted((rate_one(m, month, weeks) for m in months), key=lambda r: (-r["score"], r["id"]))
    prev, prev_rank = None, 0
    for i, r in enumerate(rows, start=1):
        r["rank"] = prev_rank if r["score"] == prev else i
        prev, prev_rank = r["score"], r["rank"]
    return rows
