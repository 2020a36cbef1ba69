"""Plan against actual (谁上报谁执法): real visits matched to plan items and joint tasks.

A visit matches an item when it is at the item's enterprise, by the item's unit
or (for an item merged into a joint task) by any participating unit, and it
started on a day within ``tolerance_d`` days of the planned date (China time).
Items are matched in date order (then id), each to the earliest unused visit
that fits; one visit completes at most one item.  Dropped items are not
counted.  A visit that completes no item is unplanned.

``completion_pct`` = done items / counted items * 100, 1 decimal (0.0 for a
week without items).  ``undone`` lists the items not done whose day (plus the
tolerance) is over by ``today``: what is left at the end of each day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from plans.model import days_between, local_date


@dataclass(frozen=True, slots=True)
class ItemRef:
    item_id: int
    enterprise_id: str
    date: str
    unit_ids: tuple[str, ...]  # the item's unit, or every participant of its joint task


@dataclass(frozen=True, slots=True)
class VisitRef:
    visit_id: int
    enterprise_id: str
    unit_id: str
    start_ts: float


def match(items: Sequence[ItemRef], visits: Iterable[VisitRef], *, tolerance_d: int = 1,
          today: str | None = None) -> dict:
    vs = sorted(visits, key=lambda v: (v.start_ts, v.visit_id))
    by_ent: dict[str, list[tuple[VisitRef, str]]] = {}
    for v in vs:
        by_ent.setdefault(v.enterprise_id, []).append((v, local_date(v.start_ts)))
    used: set[int] = set()
    rows = []
    done = 0
    undone = []
    for it in sorted(items, key=lambda i: (i.date, i.item_id)):
        hit = None
        for v, day in by_ent.get(it.enterprise_id, ()):
            if v.visit_id in used or v.unit_id not in it.unit_ids:
                continue
            if abs(days_between(it.date, day)) <= tolerance_d:
                hit = v
                break
        if hit is not None:
            used.add(hit.visit_id)
            done += 1
        elif today is not None and days_between(it.date, today) > tolerance_d:
            undone.append(it.item_id)
        rows.append({"item_id": it.item_id, "done": hit is not None, "visit_id": hit.visit_id if hit else None})
    rows.sort(key=lambda r: r["item_id"])
    return {
        "items": rows,
        "unplanned_visits": [v.visit_id for v in vs if v.visit_id not in used],
        "completion_pct": round(100.0 * done / len(items), 1) if items else 0.0,
        "undone": sorted(undone),
    }
