"""Joint tasks from colliding lists (联合检查), generated deterministically.

The lead-unit rule (牵头单位), in this order:

1. the higher administrative level: city (``city_section``) before district
   (``district_section``) before street (``street_office``) before a
   third-party agency (``third_party``); an unknown kind comes last;
2. then the unit whose items for this enterprise carry the most distinct check
   items (its duty covers the most of the inspection);
3. then the smaller unit id.

The task's date is the lead's earliest planned date for the enterprise.  Its
units are listed in rule order (lead first); inspectors in that unit order,
each unit's in its items' order, without repeats; item ids ascending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plans.model import PlanItem

LEVELS: dict[str, int] = {"city_section": 0, "district_section": 1, "street_office": 2, "third_party": 3}
UNKNOWN_LEVEL = len(LEVELS)


@dataclass(frozen=True, slots=True)
class JointTask:
    enterprise_id: str
    date: str
    lead_unit_id: str
    unit_ids: tuple[str, ...]
    inspector_ids: tuple[str, ...]
    item_ids: tuple[int, ...]


def unit_order(items: Sequence[PlanItem], unit_kinds: Mapping[str, str]) -> list[str]:
    """The units of ``items`` in lead-rule order (the lead first)."""
    checks: dict[str, set[str]] = {}
    for it in items:
        checks.setdefault(it.unit_id, set()).update(it.check_items)
    return sorted(checks, key=lambda u: (LEVELS.get(unit_kinds.get(u, ""), UNKNOWN_LEVEL), -len(checks[u]), u))


def make_joint_task(items: Sequence[PlanItem], unit_kinds: Mapping[str, str]) -> JointTask:
    """One joint task from the items of one enterprise (two or more units)."""
    if not items:
        raise ValueError("a joint task needs items")
    eids = {it.enterprise_id for it in items}
    if len(eids) != 1:
        raise ValueError(f"a joint task is for one enterprise, not {sorted(eids)}")
    units = unit_order(items, unit_kinds)
    lead = units[0]
    ordered = sorted(items, key=lambda i: (units.index(i.unit_id), i.date, i.id or 0))
    date = min(i.date for i in items if i.unit_id == lead)
    inspectors = tuple(dict.fromkeys(x for it in ordered for x in it.inspector_ids))
    return JointTask(eids.pop(), date, lead, tuple(units), inspectors, tuple(sorted(i.id for i in items)))
