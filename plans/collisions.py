"""The collision check for one week (计划碰撞): every conflict, with a suggestion.

Kinds (docs/plans.md):

* ``same_week``: two or more units plan the same enterprise in the week.  One
  conflict per enterprise, naming all its items; suggestion ``joint`` (merge
  into one joint inspection).
* ``recently_visited``: a real visit to the enterprise (by any unit) started
  within ``duplicate_window_s`` (the geo engine's duplicate window) before the
  planned day, or during the planned day itself.  One conflict per item;
  suggestion ``shift`` when the first day on which the window has passed is
  still in the week (``shift_to``), else ``drop``.
* ``not_due``: the enterprise's risk interval (red 30, orange 90, yellow 182,
  blue 365 days: ``Settings.interval_days()``) has not run out on the planned
  day: last inspection + interval > day.  Suggestion ``shift`` to the due day if
  it is in the week, else ``drop``.  An item already flagged
  ``recently_visited`` is not flagged ``not_due`` too (the visit is the reason).
  Enforcement items (执法检查) follow cases, not the rota: never ``not_due``.

Dropped items take no part.  The result is deterministic: sorted by kind order,
then enterprise id, then item ids; ``key`` identifies a conflict across re-runs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from geo.china import CHINA_UTC_OFFSET_S
from plans.model import CONFLICT_KINDS, DAY_S, PlanItem, day_start_ts, local_date, week_dates


@dataclass(slots=True)  # not frozen: built tens of thousands of times per city-wide check
class Conflict:
    kind: str
    enterprise_id: str
    item_ids: tuple[int, ...]
    suggestion: str
    detail: dict = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.enterprise_id}:{','.join(map(str, self.item_ids))}"


@dataclass(frozen=True, slots=True)
class EnterpriseFacts:
    risk: str
    last_inspected_at: float | None


def check_week(
    week: str,
    items: Iterable[PlanItem],
    enterprises: Mapping[str, EnterpriseFacts],
    visit_starts: Mapping[str, Sequence[tuple[float, int]]],
    *,
    duplicate_window_s: float,
    intervals_d: Mapping[str, int],
) -> list[Conflict]:
    """All conflicts of ``items`` (the week's plan items of every unit).

    ``visit_starts``: enterprise id -> its real visits as ``(start_ts, visit_id)``
    sorted by start (only enterprises with planned items are looked up).
    """
    dates = week_dates(week)
    day0_of = {d: day_start_ts(d) for d in dates}
    day_names: dict[int, str] = {}

    def day_of(ts: float) -> str:  # local_date, memoised by day number (a week's check sees few days)
        n = int((ts + CHINA_UTC_OFFSET_S) // DAY_S)
        name = day_names.get(n)
        if name is None:
            name = day_names[n] = local_date(ts)
        return name

    live = [it for it in items if it.state != "dropped"]
    by_ent: dict[str, list[PlanItem]] = {}
    for it in live:
        by_ent.setdefault(it.enterprise_id, []).append(it)
    out: list[Conflict] = []
    for eid, its in by_ent.items():
        if len(its) > 1:
            its.sort(key=lambda i: (i.date, i.id or 0))
            units = sorted({i.unit_id for i in its})
            if len(units) > 1:
                out.append(Conflict("same_week", eid, tuple(sorted(i.id for i in its)), "joint",
                                    {"unit_ids": units, "dates": sorted({i.date for i in its})}))
        visits = visit_starts.get(eid) or ()
        starts = [v[0] for v in visits] if visits else ()
        facts = enterprises.get(eid)
        due_ts = None
        if facts is not None and facts.last_inspected_at is not None and facts.risk in intervals_d:
            due_ts = facts.last_inspected_at + intervals_d[facts.risk] * DAY_S
        for it in its:
            day0 = day0_of.get(it.date)
            if day0 is None:
                day0 = day_start_ts(it.date)
            if starts:
                # The latest visit that started before the end of the planned day.
                k = bisect.bisect_left(starts, day0 + DAY_S) - 1
                if k >= 0 and starts[k] > day0 - duplicate_window_s:
                    vts, vid = visits[k]
                    end_ts = vts + duplicate_window_s
                    # the first whole day after the window
                    free = day_of(end_ts) if (end_ts + CHINA_UTC_OFFSET_S) % DAY_S == 0 else day_of(end_ts + DAY_S)
                    suggestion, detail = _shift_or_drop(free, dates)
                    detail["visit_id"] = vid
                    detail["visited_on"] = day_of(vts)
                    out.append(Conflict("recently_visited", eid, (it.id,), suggestion, detail))
                    continue
            # Not due: the due instant falls on a later day than the planned one.
            if due_ts is None or it.purpose == "enforcement" or due_ts < day0 + DAY_S:
                continue
            due = day_of(due_ts)
            suggestion, detail = _shift_or_drop(due, dates)
            detail["due"] = due
            detail["risk"] = facts.risk
            out.append(Conflict("not_due", eid, (it.id,), suggestion, detail))
    order = {k: i for i, k in enumerate(CONFLICT_KINDS)}
    out.sort(key=lambda c: (order[c.kind], c.enterprise_id, c.item_ids))
    return out


def _shift_or_drop(first_free: str, dates: list[str]) -> tuple[str, dict]:
    if first_free <= dates[-1]:
        return "shift", {"shift_to": max(first_free, dates[0])}
    return "drop", {}
