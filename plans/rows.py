"""Validating a plan's rows (a JSON body, or a CSV/XLSX file read into rows).

Every row is checked and every error returned at once, each with its row number
and a reason code; a plan with any error stores nothing.  Row numbers are the
caller's (a spreadsheet's line number: the header is line 1, the first data row
line 2; a JSON body's item position, counted from 1).

A row names its enterprise by ``enterprise_id``, else ``credit_code`` (统一社会信用代码),
else the exact ``enterprise_name``; ``date`` is YYYY-MM-DD inside the plan's week;
``inspector_ids`` (a list, or one string separated by commas, semicolons, 、 or
spaces) must all belong to the planning unit; ``purpose`` one of
enforcement, inspection, service (default inspection); ``check_items`` (a list
or a separated string) optional.  The same enterprise on the same day twice is a
duplicate row.

Reason codes: ``missing_enterprise``, ``unknown_enterprise``, ``ambiguous_name``,
``bad_date``, ``date_outside_week``, ``unknown_inspector``,
``inspector_other_unit``, ``bad_purpose``, ``duplicate_row``, ``bad_row``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from plans.model import PURPOSES, PlanItem, parse_date, week_dates

_SPLIT = re.compile(r"[,;，；、\s]+")
MAX_CHECK_ITEMS = 50


@dataclass(frozen=True, slots=True)
class Lookup:
    ids: frozenset[str]
    by_credit_code: Mapping[str, str]
    by_name: Mapping[str, Sequence[str]]  # exact name -> enterprise ids
    inspector_units: Mapping[str, str]


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if v != v:  # NaN: an empty spreadsheet cell
            return ""
        if v.is_integer():
            return str(int(v))
    return str(v).strip()


def split_list(v) -> list[str]:
    if isinstance(v, (list, tuple)):
        return [_text(x) for x in v if _text(x)]
    return [x for x in _SPLIT.split(_text(v)) if x]


def validate_rows(rows: Sequence[tuple[int, Mapping]], unit_id: str, week: str,
                  lookup: Lookup) -> tuple[list[PlanItem], list[dict]]:
    """``rows`` as (row number, fields).  Returns (items, errors); use the items only without errors."""
    dates = set(week_dates(week))
    items: list[PlanItem] = []
    errors: list[dict] = []
    seen: dict[tuple[str, str], int] = {}
    for row_no, r in rows:
        if not isinstance(r, Mapping):
            errors.append({"row": row_no, "reason": "bad_row", "detail": "a row must be an object"})
            continue
        row_errors: list[dict] = []

        def err(reason: str, detail: str, row_errors=row_errors, row_no=row_no):
            row_errors.append({"row": row_no, "reason": reason, "detail": detail})

        eid = None
        rid, code, name = _text(r.get("enterprise_id")), _text(r.get("credit_code")), _text(r.get("enterprise_name"))
        if rid:
            eid = rid if rid in lookup.ids else None
            if eid is None:
                err("unknown_enterprise", f"no enterprise with id {rid}")
        elif code:
            eid = lookup.by_credit_code.get(code.upper())
            if eid is None:
                err("unknown_enterprise", f"no enterprise with credit code {code}")
        elif name:
            found = lookup.by_name.get(name) or ()
            if len(found) == 1:
                eid = found[0]
            elif not found:
                err("unknown_enterprise", f"no enterprise named {name}")
            else:
                err("ambiguous_name", f"{len(found)} enterprises are named {name}; give the id or credit code")
        else:
            err("missing_enterprise", "enterprise_id, credit_code or enterprise_name is required")

        date = _text(r.get("date"))[:10] if r.get("date") is not None else ""
        try:
            parse_date(date)
            if date not in dates:
                err("date_outside_week", f"{date} is not in {week}")
        except ValueError:
            err("bad_date", f"date must be YYYY-MM-DD, not {_text(r.get('date'))!r}")

        inspectors = split_list(r.get("inspector_ids"))
        for iid in inspectors:
            unit = lookup.inspector_units.get(iid)
            if unit is None:
                err("unknown_inspector", f"no inspector {iid}")
            elif unit != unit_id:
                err("inspector_other_unit", f"inspector {iid} belongs to {unit}, not {unit_id}")

        purpose = _text(r.get("purpose")) or "inspection"
        if purpose not in PURPOSES:
            err("bad_purpose", f"purpose must be one of {', '.join(PURPOSES)}, not {purpose!r}")
        checks = split_list(r.get("check_items"))[:MAX_CHECK_ITEMS]

        if eid is not None and not any(e["reason"] in ("bad_date", "date_outside_week") for e in row_errors):
            first = seen.get((eid, date))
            if first is not None:
                err("duplicate_row", f"{eid} on {date} is already row {first}")
            else:
                seen[(eid, date)] = row_no
        if row_errors:
            errors.extend(row_errors)
            continue
        items.append(PlanItem(None, unit_id, eid, date, tuple(dict.fromkeys(inspectors)), purpose,
                              tuple(dict.fromkeys(checks))))
    return items, errors
