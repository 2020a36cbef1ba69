"""Section builders: plain data in (``data/report_queries.gather``), sections out.

A builder is ``fn(data) -> Section | None``; it answers None when the data
it needs is absent (``data`` has no key for it), so a bulletin shows the
sections whose data exists.  ``BUILDERS`` is the order of a bulletin; the
plans, hazards, red-light and agencies sections are there when ``gather`` was
asked for their data (a bulletin asks for all; the agencies' only in a monthly
district bulletin).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reports.model import Chart, Figure, Name, Report, Section, Table, Text
from reports.stats import percentile, rank

RISK_ORDER = ("red", "orange", "yellow", "blue")
RISK_HEX = {"red": "#d7263d", "orange": "#f18f01", "yellow": "#e9c46a", "blue": "#2e86de"}
TOP_UNITS_CHART = 15


def _r(v: float | None, nd: int = 1) -> float | None:
    return None if v is None else round(float(v), nd)


def inspections(data: Mapping[str, Any]) -> Section | None:
    d = data.get("inspections")
    if d is None:
        return None
    units = sorted(d["units"], key=lambda u: (-u["visits"], str(u["id"])))
    active = sum(1 for u in units if u["visits"])
    s = Section("inspections", "report.sec.inspections", figures=[
        Figure("report.fig.visits", "visits", d["total"]),
        Figure("report.fig.enterprises_visited", "enterprises_visited", d["enterprises"]),
        Figure("report.fig.units_active", "units_active", active),
    ])
    s.tables.append(Table("report.tbl.by_unit", ["report.col.unit", "report.col.visits", "report.col.enterprises",
                                                   "report.col.duplicates", "report.col.same_unit_repeats"],
                          [[u["name"] or u["id"], u["visits"], u["enterprises"], u["duplicates"],
                            u["same_unit_repeats"]] for u in units]))
    s.charts.append(Chart("daily_visits", "line", "report.chart.daily_visits", x=list(data["days"]),
                          series=[("report.series.visits", list(d["daily_visits"])),
                                  ("report.series.duplicates", list(d["daily_duplicates"]))]))
    top = [u for u in units if u["visits"]][:TOP_UNITS_CHART]
    if top:
        s.charts.append(Chart("visits_by_unit", "bar", "report.chart.visits_by_unit",
                              x=[u["name"] or u["id"] for u in top],
                              series=[("report.series.visits", [u["visits"] for u in top])]))
    return s


def duplicates(data: Mapping[str, Any]) -> Section | None:
    d = data.get("duplicates")
    if d is None:
        return None
    total = data.get("inspections", {}).get("total") or 0
    share = None if not total else 100.0 * d["duplicates"] / total
    s = Section("duplicates", "report.sec.duplicates", figures=[
        Figure("report.fig.duplicates", "duplicates", d["duplicates"]),
        Figure("report.fig.duplicate_share", "duplicate_share_pct", _r(share), "%"),
        Figure("report.fig.same_unit_repeats", "same_unit_repeats", d["same_unit_repeats"]),
        Figure("report.fig.caught_live", "caught_live", d["caught_live"]),
        Figure("report.fig.warned_live", "warned_live", d["warned_live"]),
        Figure("report.fig.reassigned", "reassigned", d["reassigned"]),
    ])
    s.notes.append(Text("report.note.duplicates"))
    return s


def plans(data: Mapping[str, Any]) -> Section | None:
    """Plan against actual over the period's weeks, and the duplicates avoided by planning."""
    d = data.get("plans")
    if d is None:
        return None
    s = Section("plans", "report.sec.plans", figures=[
        Figure("report.fig.plan_items", "plan_items", d["items"]),
        Figure("report.fig.plan_done", "plan_done", d["done"]),
        Figure("report.fig.plan_completion", "plan_completion_pct", d["completion_pct"], "%"),
        Figure("report.fig.unplanned_visits", "plan_unplanned_visits", d["unplanned_visits"]),
        Figure("report.fig.dups_avoided", "plan_duplicates_avoided", d["conflicts_resolved"]),
        Figure("report.fig.dups_happened", "plan_duplicates_happened", d["duplicates_happened"]),
    ])
    if len(d["weeks"]) > 1:
        s.tables.append(Table("report.tbl.plan_weeks", [
            "report.col.week", "report.col.items", "report.col.done", "report.col.completion",
            "report.col.unplanned", "report.col.avoided"],
            [[w["week"], w["items"], w["done"], f"{w['completion_pct']:.1f}%", w["unplanned_visits"],
              w["conflicts_resolved"]] for w in d["weeks"]]))
    s.notes.append(Text("report.note.plans"))
    return s


def coverage(data: Mapping[str, Any]) -> Section | None:
    d = data.get("coverage")
    if d is None:
        return None
    colours = [c for c in RISK_ORDER if c in d["enterprises_by_colour"]] + \
        [c for c in d["enterprises_by_colour"] if c not in RISK_ORDER]
    s = Section("coverage", "report.sec.coverage", figures=[
        Figure("report.fig.coverage", "coverage_pct", _r(d["overall"], 2), "%"),
        Figure("report.fig.enterprises", "enterprises", d["total"]),
        Figure("report.fig.within", "within", d["within"]),
        Figure("report.fig.overdue", "overdue", sum(d["overdue_by_colour"].values())),
    ])
    for c in colours:
        s.figures.append(Figure(f"report.fig.overdue_{c}", f"overdue_{c}", d["overdue_by_colour"].get(c, 0)))
    s.tables.append(Table("report.tbl.by_colour", ["risk.label", "report.col.enterprises", "report.col.coverage",
                                                     "report.col.overdue"],
                          [[Text(f"risk.{c}"), d["enterprises_by_colour"].get(c, 0),
                            _r(d["by_colour"].get(c), 2), d["overdue_by_colour"].get(c, 0)] for c in colours],
                          note=Text("report.note.as_of")))
    s.charts.append(Chart("coverage_by_colour", "bar", "report.chart.coverage_by_colour",
                          x=[f"risk.{c}" for c in colours], x_is_keys=True,
                          series=[("report.series.coverage_pct", [_r(d["by_colour"].get(c), 2) for c in colours])],
                          colours=[RISK_HEX.get(c, "#888888") for c in colours]))
    return s


def alarm_stats(rows: list[dict]) -> dict[str, float | int | None]:
    ack = [r["ack_s"] for r in rows if r.get("ack_s") is not None]
    arr = [r["arrive_s"] for r in rows if r.get("arrive_s") is not None]
    return {
        "alarms": len(rows),
        "acknowledged": len(ack),
        "arrived": len(arr),
        "ack_p50_s": _r(percentile(ack, 50)),
        "ack_p95_s": _r(percentile(ack, 95)),
        "arrive_p50_s": _r(percentile(arr, 50)),
        "arrive_p95_s": _r(percentile(arr, 95)),
    }


def gas_alarms(data: Mapping[str, Any]) -> Section | None:
    d = data.get("alarms")
    if d is None:
        return None
    st = alarm_stats(d["rows"])
    s = Section("alarms", "report.sec.alarms", figures=[
        Figure("report.fig.alarms", "alarms", st["alarms"]),
        Figure("report.fig.acknowledged", "acknowledged", st["acknowledged"]),
        Figure("report.fig.arrived", "arrived", st["arrived"]),
        Figure("report.fig.ack_p50", "ack_p50_s", st["ack_p50_s"], "s"),
        Figure("report.fig.ack_p95", "ack_p95_s", st["ack_p95_s"], "s"),
        Figure("report.fig.arrive_p50", "arrive_p50_s", st["arrive_p50_s"], "s"),
        Figure("report.fig.arrive_p95", "arrive_p95_s", st["arrive_p95_s"], "s"),
    ])
    s.charts.append(Chart("daily_alarms", "bar", "report.chart.daily_alarms", x=list(data["days"]),
                          series=[("report.series.alarms", list(d["daily"]))], colours=["#d7263d"]))
    s.notes.append(Text("report.note.alarms"))
    return s


def hazards(data: Mapping[str, Any]) -> Section | None:
    d = data.get("hazards")
    if d is None:
        return None
    s = Section("hazards", "report.sec.hazards", figures=[
        Figure("report.fig.hazards_found", "hazards_found", d["found"]),
        Figure("report.fig.hazards_found_major", "hazards_found_major", d["found_major"]),
        Figure("report.fig.hazards_closed", "hazards_closed", d["closed"]),
        Figure("report.fig.hazards_open", "hazards_open", d["open"]),
        Figure("report.fig.hazards_overdue", "hazards_overdue", d["overdue"]),
        Figure("report.fig.hazards_major_open", "hazards_major_open", d["major_open"]),
    ])
    s.charts.append(Chart("daily_hazards", "bar", "report.chart.daily_hazards", x=list(data["days"]),
                          series=[("report.series.hazards", list(d["daily_found"]))], colours=["#6a4c93"]))
    s.notes.append(Text("report.note.hazards"))
    return s


RED_RULES = ("no_self_inspection", "zero_hazards", "overdue_hazards")


def red_light(data: Mapping[str, Any]) -> Section | None:
    d = data.get("red_light")
    if d is None:
        return None
    s = Section("red_light", "report.sec.red_light", figures=[
        Figure("report.fig.red_light", "red_light", d["count"]),
        *[Figure(f"report.fig.red_{r}", f"red_light_{r}", d["by_rule"].get(r, 0)) for r in RED_RULES],
    ])
    if d["top"]:
        streets = {x["id"]: Name(x["name"], x.get("name_en")) for x in data.get("streets", [])}
        s.tables.append(Table("report.tbl.red_light", [
            "report.col.enterprise", "report.col.street", *[f"report.fig.red_{r}" for r in RED_RULES]],
            [[e["name"], streets.get(e["street_id"], e["street_id"] or ""),
              *["●" if r in e["rules"] else "" for r in RED_RULES]] for e in d["top"]]))
    s.notes.append(Text("report.note.red_light"))
    return s


def rankings(data: Mapping[str, Any]) -> Section | None:
    """Streets (in a district bulletin) and units, ranked by coverage, duplicates and alarm response."""
    ins, cov, al, dup = (data.get(k) for k in ("inspections", "coverage", "alarms", "duplicates"))
    if ins is None and cov is None:
        return None
    s = Section("rankings", "report.sec.rankings")
    alarm_rows = (al or {}).get("rows", [])
    streets = data.get("streets") or []
    if data.get("street_id") is None and streets:
        rows = []
        for st in streets:
            sid = st["id"]
            a = alarm_stats([r for r in alarm_rows if r.get("street_id") == sid])
            rows.append({"id": sid, "name": Name(st["name"] or sid, st.get("name_en")),
                         "coverage": _r((cov or {}).get("by_street", {}).get(sid), 2),
                         "duplicates": (dup or {}).get("by_street", {}).get(sid, 0),
                         "ack_p50_s": a["ack_p50_s"], "alarms": a["alarms"]})
        s.tables.append(_rank_table("report.tbl.streets_by_coverage", "report.col.street", rows, "coverage", True,
                                    "report.col.coverage"))
        s.tables.append(_rank_table("report.tbl.streets_by_duplicates", "report.col.street", rows, "duplicates", False,
                                    "report.col.duplicates"))
        s.tables.append(_rank_table("report.tbl.streets_by_response", "report.col.street", rows, "ack_p50_s", False,
                                    "report.col.ack_p50"))
    if ins is not None:
        rows = []
        for u in ins["units"]:
            a = alarm_stats([r for r in alarm_rows if r.get("unit_id") == u["id"]])
            rows.append({"id": u["id"], "name": u["name"] or u["id"], "visits": u["visits"],
                         "dup_rate": _r(100.0 * u["duplicates"] / u["visits"], 1) if u["visits"] else None,
                         "arrive_p50_s": a["arrive_p50_s"]})
        s.tables.append(_rank_table("report.tbl.units_by_visits", "report.col.unit", rows, "visits", True,
                                    "report.col.visits"))
        s.tables.append(_rank_table("report.tbl.units_by_duplicates", "report.col.unit", rows, "dup_rate", False,
                                    "report.col.dup_rate"))
        s.tables.append(_rank_table("report.tbl.units_by_response", "report.col.unit", rows, "arrive_p50_s", False,
                                    "report.col.arrive_p50"))
    return s


def _rank_table(title: str, who: str, rows: list[dict], key: str, descending: bool, col: str) -> Table:
    ranked = rank(rows, key, descending=descending)
    return Table(title, ["report.col.rank", who, col], [[r["rank"], r["name"], r[key]] for r in ranked])


def area_map(data: Mapping[str, Any]) -> Section | None:
    d = data.get("map")
    if d is None:
        return None
    s = Section("map", "report.sec.map")
    s.charts.append(Chart("map", "map", "report.chart.map", extra={
        "streets": d["streets"], "points": d["points"], "alarms": d["alarms"], "risk_hex": RISK_HEX}))
    s.notes.append(Text("report.note.map", (("shown", len(d["points"])), ("total", d["overdue_total"]))))
    return s


def agency_ranking(data: Mapping[str, Any]) -> Section | None:
    """The month's rating of the third-party agencies, best first, with every part (docs/agencies.md);
    in monthly district bulletins (``data["agencies"]``: the rows of ``GET /api/v1/agencies/ratings``)."""
    rows = data.get("agencies")
    if rows is None:
        return None
    best = max((r["score"] for r in rows), default=None)
    s = Section("agencies", "report.sec.agencies", figures=[
        Figure("report.fig.agencies", "agencies", len(rows)),
        Figure("report.fig.agency_best_score", "best_score", best),
        Figure("report.fig.agency_found", "hazards_found", sum(r["parts"]["detection"]["found"] for r in rows)),
        Figure("report.fig.agency_missed", "hazards_missed", sum(r["parts"]["detection"]["missed"] for r in rows)),
        Figure("report.fig.agency_duplicates", "duplicates", sum(r["parts"]["duplicates"]["count"] for r in rows)),
        Figure("report.fig.agency_complaints", "complaints", sum(r["parts"]["complaints"]["count"] for r in rows)),
    ])

    def frac(part: dict, num: str, den: str) -> str:
        return f"{part[num]}/{part[den]}"

    s.tables.append(Table("report.tbl.agencies", [
        "report.col.rank", "report.col.agency", "report.col.score", "report.col.plans_on_time",
        "report.col.plan_done", "report.col.served", "report.col.service_visits", "report.col.hazards_found",
        "report.col.hazards_missed", "report.col.duplicates", "report.col.complaints"],
        [[r["rank"], r["name"], f"{r['score']:g}", frac(r["parts"]["timeliness"], "on_time", "weeks"),
          frac(r["parts"]["completion"], "done", "items"), frac(r["parts"]["service"], "served", "contracted"),
          r["parts"]["service"]["visits"], r["parts"]["detection"]["found"], r["parts"]["detection"]["missed"],
          r["parts"]["duplicates"]["count"], r["parts"]["complaints"]["count"]] for r in rows]))
    s.notes.append(Text("report.note.agencies"))
    return s


Builder = Callable[[Mapping[str, Any]], "Section | None"]

# The bulletin's sections, in order.  Plans, hazards and red light
# go here when their data exists (see the module docstring).
BUILDERS: list[Builder] = [inspections, duplicates, plans, coverage, gas_alarms, hazards, red_light, rankings, area_map,
                           agency_ranking]


def build(data: Mapping[str, Any], *, kind: str, period: str, start_ts: float, end_ts: float,
          generated_at: float, anchor, builders: list[Builder] | None = None) -> Report:
    sections = [s for s in (b(data) for b in (builders or BUILDERS)) if s is not None]
    return Report(kind=kind, period=period, start_ts=start_ts, end_ts=end_ts, street_id=data.get("street_id"),
                  street_name=data.get("street_name"), street_name_en=data.get("street_name_en"),
                  generated_at=generated_at, as_of=data["as_of"], sections=sections, anchor=anchor)
