"""Agencies (data/agencies_store.py, reports/agencies.py) on SQLite and PostgreSQL: contracts,
complaints, and a month's rating whose every part is known in advance."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from data import audit
from data.agencies_store import AgenciesStore, FieldErrors
from data.models import Base, Enterprise, HazardRow, Inspector, Unit, Visit
from data.plans_store import PlansStore
from plans.model import day_start_ts
from plans.agencies import parse_month
from tests.citykit import write_small_city

MONTH = parse_month("2026-11")  # its weeks: W45 (Mon 11-02) .. W49 (Mon 11-30)
H = 3600.0


def at(date: str, hour: float) -> float:
    return day_start_ts(date) + hour * H


def write_agencies(engine, city: bool = True) -> dict[str, int]:
    """Three agencies and a known month (on the small city, written first unless ``city`` is
    False); returns the visit and hazard ids by name."""
    if city:
        write_small_city(engine)
    with engine.begin() as conn:
        conn.execute(insert(Unit), [
            {"id": "A1", "name": "深圳市龙安安全技术服务有限公司", "kind": "third_party", "street_id": None},
            {"id": "A2", "name": "深圳市鹏安安全生产咨询有限公司", "kind": "third_party", "street_id": None},
            {"id": "A3", "name": "广东粤华安全评价技术服务有限公司", "kind": "third_party", "street_id": None}])
        conn.execute(insert(Inspector), [
            {"id": "IA1", "name": "陈静", "unit_id": "A1"}, {"id": "IA2", "name": "周杰", "unit_id": "A1"},
            {"id": "IB1", "name": "吴敏", "unit_id": "A2"}])
        conn.execute(insert(Enterprise), [
            {"id": f"E{k}", "name": f"企业{k}", "lat": 22.62 + k * 1e-4, "lon": 114.02, "industry": "制造",
             "risk": "yellow", "street_id": "ST1", "grid_id": "G1"} for k in (3, 4)])
        visits = {}
        for name, (iid, unit, eid, ts, dup) in {
            "u1": ("I1", "U1", "E2", at("2026-11-05", 9.5), None),
            "v1": ("IA1", "A1", "E1", at("2026-11-03", 10), None),
            "v2": ("IA2", "A1", "E2", at("2026-11-05", 10), "u1"),  # before E2's contract; a duplicate
            "v3": ("IA1", "A1", "E2", at("2026-11-12", 10), None),
            "v4": ("IA1", "A1", "E3", at("2026-11-20", 10), None),  # E3's contract starts in December
            "v5": ("IA1", "A1", "E1", at("2026-10-30", 10), None),  # October
        }.items():
            visits[name] = conn.execute(insert(Visit).values(
                enterprise_id=eid, inspector_id=iid, unit_id=unit, start_ts=ts, end_ts=ts + 900,
                duplicate_of=visits.get(dup), stay_key=f"{iid}|{eid}|{ts}", ended=True)).inserted_primary_key[0]
        hz = {}
        for name, (eid, found_by, finder, visit, day, hour) in {
            "h1": ("E1", "agency", "IA1", None, "2026-11-03", 11),
            "h2": ("E4", "agency", "A1", None, "2026-11-04", 9),  # not contracted: still found by A1
            "h3": ("E2", "inspector", "I1", None, "2026-11-14", 9),  # after v3: missed by A1
            "h4": ("E1", "inspector", "I1", None, "2026-11-02", 9),  # before any A1 visit this month
            "h5": ("E1", "enterprise", "E1", None, "2026-11-20", 9),  # self-reported: not an inspector's
            "h6": ("E2", "agency", None, "v3", "2026-11-12", 10.5),  # on A1's visit v3
            "h7": ("E1", "agency", "IB1", None, "2026-11-06", 9),  # A2's
            "h8": ("E1", "inspector", "I1", None, "2026-12-02", 9),  # December
        }.items():
            ts = at(day, hour)
            hz[name] = conn.execute(insert(HazardRow).values(
                enterprise_id=eid, street_id="ST1", grid_id="G1", category="gas_pipe", level="general",
                state="reported", found_by=found_by, finder_id=finder, visit_id=visits.get(visit),
                reported_at=ts, updated_at=ts, send_backs=0, version=1)).inserted_primary_key[0]
    visits.update(hz)
    return visits


@pytest.fixture
def store(engine):
    plans = PlansStore(engine, duplicate_window_s=7200, intervals_d={"red": 30, "orange": 60, "yellow": 90,
                                                                     "blue": 180}, tolerance_d=1)
    return AgenciesStore(engine, plans)


def test_migration_creates_exactly_the_agency_tables(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    text = repr(diff)
    assert "service_contracts" not in text and "agency_complaints" not in text, diff


def _setup_month(engine, store, city: bool = True) -> dict[str, int]:
    ids = write_agencies(engine, city)
    now = at("2026-11-01", 8)
    for body in ({"enterprise_id": "E1", "start_date": "2026-10-01", "end_date": "2026-12-31"},
                 {"enterprise_id": "E2", "start_date": "2026-11-10", "end_date": "2026-11-30"},
                 {"enterprise_id": "E3", "start_date": "2026-12-01", "end_date": "2026-12-31"},
                 {"enterprise_id": "E4", "start_date": "2026-01-01", "end_date": "2026-10-31"}):
        store.add_contract("A1", body, "admin", now)
    p = store.plans
    w45 = p.save_plan("A1", "2026-W45", [(1, {"enterprise_id": "E1", "date": "2026-11-03", "inspector_ids": "IA1"}),
                                         (2, {"enterprise_id": "E2", "date": "2026-11-05", "inspector_ids": "IA2"})],
                      "admin", now)
    p.act_on_plan(w45["id"], "submit", "admin", at("2026-11-01", 12))  # before Monday 11-02: on time
    w46 = p.save_plan("A1", "2026-W46", [(1, {"enterprise_id": "E1", "date": "2026-11-10", "inspector_ids": "IA1"})],
                      "admin", now)
    p.act_on_plan(w46["id"], "submit", "admin", at("2026-11-10", 9))  # after Monday 11-09: late
    p.save_plan("A1", "2026-W47", [(1, {"enterprise_id": "E2", "date": "2026-11-17", "inspector_ids": "IA1"})],
                "admin", now)  # never submitted: missing
    for day, ent in (("2026-11-08", "E1"), ("2026-11-25", None), ("2026-12-01", None)):
        store.add_complaint("A1", {"note": "服务报告敷衍", "enterprise_id": ent}, "dispatcher", at(day, 9))
    return ids


def test_every_part_of_the_months_rating_is_exact(engine, store):
    ids = _setup_month(engine, store)
    rows = store.ratings(MONTH, at("2026-12-05", 9))
    assert [(r["id"], r["rank"], r["score"]) for r in rows] == [("A1", 1, 54.75), ("A2", 2, 35.0), ("A3", 3, 0.0)]
    a1 = rows[0]["parts"]
    assert a1["timeliness"] == {"weeks": 5, "on_time": 1, "late": 1, "missing": 3, "ratio": 0.2, "points": 3.0,
                                "max": 15.0}
    # W45: both items done (v1, v2); W46's E1 on 11-10 and W47's E2 on 11-17 not.
    assert a1["completion"] == {"items": 4, "done": 2, "ratio": 0.5, "points": 12.5, "max": 25.0}
    # Contracted in November: E1, E2; service visits: v1 (E1), v3 (E2); v2 came before E2's contract, v4 before E3's.
    assert a1["service"] == {"contracted": 2, "served": 2, "visits": 2, "ratio": 1.0, "points": 25.0, "max": 25.0}
    assert a1["detection"] == {"found": 3, "missed": 1, "ratio": 0.75, "missed_hazard_ids": [ids["h3"]],
                               "points": 26.25, "max": 35.0}
    assert a1["duplicates"] == {"count": 1, "points": -2.0, "max": 0.0}
    assert a1["complaints"] == {"count": 2, "points": -10.0, "max": 0.0}
    a2 = rows[1]["parts"]
    assert (a2["detection"]["found"], a2["detection"]["missed"], a2["service"]["contracted"]) == (1, 0, 0)
    # A3 did nothing: nothing found and nothing missed counts only with service visits.
    assert rows[2]["parts"]["detection"]["points"] == 0.0


def test_contracts_and_complaints_are_checked_and_audited(engine, store):
    write_agencies(engine)
    now = at("2026-11-01", 8)
    c = store.add_contract("A1", {"enterprise_id": "E1", "start_date": "2026-11-01", "end_date": "2027-10-31"},
                           "admin", now)
    assert (c["agency_id"], c["enterprise_id"], c["start_date"], c["end_date"]) == ("A1", "E1", "2026-11-01",
                                                                                      "2027-10-31")
    with pytest.raises(FieldErrors) as e:
        store.add_contract("A1", {"enterprise_id": "E9", "start_date": "2026-13-01", "end_date": "2026-11-01"},
                           "admin", now)
    assert {(x["field"], x["reason"]) for x in e.value.errors} == {
        ("start_date", "required, a date YYYY-MM-DD"), ("enterprise_id", "no such enterprise")}
    with pytest.raises(FieldErrors) as e:
        store.add_contract("A1", {"enterprise_id": "E1", "start_date": "2027-01-01", "end_date": "2027-12-31"},
                           "admin", now)
    assert e.value.errors == [{"field": "start_date", "reason": f"overlaps contract {c['id']}"}]
    with pytest.raises(FieldErrors):
        store.add_contract("A1", {"enterprise_id": "E2", "start_date": "2026-12-01", "end_date": "2026-11-01"},
                           "admin", now)
    with pytest.raises(LookupError):
        store.add_contract("U1", {"enterprise_id": "E1", "start_date": "2026-11-01", "end_date": "2026-11-30"},
                           "admin", now)  # a street office is not an agency
    store.add_complaint("A1", {"note": "未按合同到场"}, "dispatcher", now)
    with pytest.raises(FieldErrors):
        store.add_complaint("A1", {"note": "  "}, "dispatcher", now)
    assert [x["note"] for x in store.complaints("A1")] == ["未按合同到场"]
    assert store.contracts("A1") == [c]
    listed = {a["id"]: a for a in store.agencies("2026-12-01")}
    assert listed["A1"] == {"id": "A1", "name": "深圳市龙安安全技术服务有限公司", "kind": "agency",
                            "unit_kind": "third_party", "inspectors": 2, "contracts": 1, "contracts_in_force": 1}
    assert set(listed) == {"A1", "A2", "A3"}
    actions = [e.action for e in audit.entries(engine)]
    assert actions.count("agency_contract_create") == 1 and actions.count("agency_complaint") == 1
    assert audit.verify(engine) is None
    with engine.connect() as conn:
        assert conn.execute(select(Unit.kind).where(Unit.id == "A1")).scalar() == "third_party"
