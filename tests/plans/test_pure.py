"""The pure plans package: lifecycle, collisions, joint-task lead rule, the draw, targets, plan vs actual."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from plans import draw as D
from plans.actual import ItemRef, VisitRef, match
from plans.collisions import EnterpriseFacts, check_week
from plans.joint import make_joint_task
from plans.lifecycle import TransitionNotAllowed, resolve_conflict, transition
from plans.model import PlanItem, day_start_ts, local_date, parse_week, week_dates
from plans.rows import Lookup, validate_rows
from plans.targets import TargetFacts, rank

WEEK = "2026-W49"  # Monday 2026-11-30 .. Sunday 2026-12-06
DAY = 86400.0


def test_weeks_and_dates():
    assert week_dates(WEEK)[0] == "2026-11-30" and week_dates(WEEK)[-1] == "2026-12-06"
    assert local_date(day_start_ts("2026-12-03")) == "2026-12-03"
    assert local_date(day_start_ts("2026-12-03") - 1) == "2026-12-02"
    # China midnight is 16:00 UTC of the day before
    assert day_start_ts("1970-01-02") == 86400 - 8 * 3600
    for bad in ("2026-49", "2026-W54", "", None):
        with pytest.raises(ValueError):
            parse_week(bad)


def test_plan_lifecycle():
    assert transition("draft", "submit") == "submitted"
    assert transition("submitted", "approve") == "approved"
    assert transition("submitted", "return") == "draft"
    with pytest.raises(TransitionNotAllowed):
        transition("draft", "approve")
    with pytest.raises(TransitionNotAllowed):
        transition("approved", "submit")
    assert resolve_conflict(False, "joint") == "joint"
    with pytest.raises(TransitionNotAllowed):
        resolve_conflict(True, "drop")
    with pytest.raises(ValueError):
        resolve_conflict(False, "merge")


def _item(i, unit, eid, date, checks=(), purpose="inspection", insp=()):
    return PlanItem(i, unit, eid, date, tuple(insp), purpose, tuple(checks))


def test_collisions_same_week_recent_not_due():
    items = [
        _item(1, "U1", "E1", "2026-12-01"), _item(2, "U2", "E1", "2026-12-03"),  # same_week
        _item(3, "U1", "E2", "2026-12-02"),  # visited 2026-11-28 -> recently_visited, shift to 12-05
        _item(4, "U1", "E3", "2026-12-02"),  # red, inspected 2026-11-20 -> due 12-20: not_due, drop
        _item(5, "U1", "E4", "2026-12-02"),  # blue, inspected a year ago: fine
        _item(6, "U2", "E3", "2026-12-04", purpose="enforcement"),  # enforcement is never not_due
    ]
    facts = {"E1": EnterpriseFacts("blue", None), "E2": EnterpriseFacts("blue", None),
             "E3": EnterpriseFacts("red", day_start_ts("2026-11-20") + 3600),
             "E4": EnterpriseFacts("blue", day_start_ts("2025-11-01"))}
    visits = {"E2": [(day_start_ts("2026-11-28") + 10 * 3600, 77)]}
    out = check_week(WEEK, items, facts, visits, duplicate_window_s=7 * DAY,
                     intervals_d={"red": 30, "orange": 90, "yellow": 182, "blue": 365})
    got = [(c.kind, c.enterprise_id, c.item_ids, c.suggestion) for c in out]
    assert got == [
        ("same_week", "E1", (1, 2), "joint"),
        ("same_week", "E3", (4, 6), "joint"),
        ("recently_visited", "E2", (3,), "shift"),
        ("not_due", "E3", (4,), "drop"),
    ]
    assert out[2].detail["shift_to"] == "2026-12-06" and out[2].detail["visit_id"] == 77
    # a dropped item takes no part
    dropped = [PlanItem(**{**{f: getattr(items[1], f) for f in items[1].__slots__}, "state": "dropped"})]
    out2 = check_week(WEEK, [items[0], *dropped], facts, {}, duplicate_window_s=7 * DAY, intervals_d={})
    assert out2 == []


def test_joint_lead_rule():
    kinds = {"U-st": "street_office", "U-d": "district_section", "U-d2": "district_section", "U-3p": "third_party"}
    items = [_item(1, "U-st", "E1", "2026-12-01", ["fire", "gas", "exits"], insp=["I9"]),
             _item(2, "U-3p", "E1", "2026-12-02", insp=["I7"]),
             _item(3, "U-d", "E1", "2026-12-04", ["gas"], insp=["I1", "I2"]),
             _item(4, "U-d2", "E1", "2026-12-03", ["gas", "fire"], insp=["I3"])]
    t = make_joint_task(items, kinds)
    # district level first; of the two district sections the one with more check items leads
    assert t.lead_unit_id == "U-d2" and t.date == "2026-12-03"
    assert t.unit_ids == ("U-d2", "U-d", "U-st", "U-3p")
    assert t.inspector_ids == ("I3", "I1", "I2", "I9", "I7")
    assert t.item_ids == (1, 2, 3, 4)
    # ties on level and check items: the smaller id
    t2 = make_joint_task([_item(1, "U-b", "E1", "2026-12-01"), _item(2, "U-a", "E1", "2026-12-02")],
                         {"U-a": "street_office", "U-b": "street_office"})
    assert t2.lead_unit_id == "U-a"
    # deterministic whatever the input order
    assert make_joint_task(list(reversed(items)), kinds) == t


def _pool(n=200):
    colours = D.RISK_ORDER
    ents = [D.PoolEntry(f"E{i:05d}", colours[i % 4], f"I{i % 7:03d}") for i in range(n)]
    insp = [(f"I{i:03d}", f"U{i % 5}") for i in range(30)]
    return D.canonical_pool(ents, insp)


def _reference_draw(seed, pool, params):
    """Step 6 exactly as written in plans/draw.py's docstring, without shortcuts."""
    alloc = D.allocate(params.count, {c: sum(1 for r in pool["enterprises"] if r[1] == c) for c in D.RISK_ORDER},
                       dict(params.weights))
    rng = D.Stream(seed)
    picked = []
    for c in D.RISK_ORDER:
        ids = [r for r in pool["enterprises"] if r[1] == c]
        for i in range(alloc[c]):
            j = i + rng.uniform(len(ids) - i)
            ids[i], ids[j] = ids[j], ids[i]
            picked.append(ids[i])
    unit = dict(pool["inspectors"])
    out = []
    for eid, _risk, last in picked:
        chosen = []
        for _ in range(params.inspectors_per_enterprise):
            el = [i for i, _u in pool["inspectors"]
                  if i != last and i not in chosen and unit[i] not in {unit[c] for c in chosen}]
            if not el:
                break
            chosen.append(el[rng.uniform(len(el))])
        out.append(D.Pick(eid, tuple(chosen)))
    return out


def test_stream_is_sha256_of_seed_and_counter():
    s = D.Stream("2026-12-01 公告")
    block = hashlib.sha256("2026-12-01 公告:0".encode()).digest()
    assert [s.next_u64() for _ in range(4)] == [int.from_bytes(block[i:i + 8], "big") for i in (0, 8, 16, 24)]
    block1 = hashlib.sha256("2026-12-01 公告:1".encode()).digest()
    assert s.next_u64() == int.from_bytes(block1[:8], "big")


def test_draw_deterministic_matches_reference_and_verifies():
    pool = _pool()
    params = D.DrawParams(count=20)
    picks = D.run_draw("seed-1", pool, params)
    assert picks == D.run_draw("seed-1", pool, params) == _reference_draw("seed-1", pool, params)
    assert picks != D.run_draw("seed-2", pool, params)
    assert len(picks) == 20 and len({p.enterprise_id for p in picks}) == 20
    # weighted strata: red 4 : orange 3 : yellow 2 : blue 1 over equal strata
    risk = {r[0]: r[1] for r in pool["enterprises"]}
    counts = {c: sum(1 for p in picks if risk[p.enterprise_id] == c) for c in D.RISK_ORDER}
    assert counts == {"red": 8, "orange": 6, "yellow": 4, "blue": 2}
    unit = dict(pool["inspectors"])
    last = {r[0]: r[2] for r in pool["enterprises"]}
    for p in picks:
        assert len(p.inspector_ids) == 2
        assert unit[p.inspector_ids[0]] != unit[p.inspector_ids[1]]
        assert last[p.enterprise_id] not in p.inspector_ids
    h = D.pool_hash(pool)
    stored = D.picks_json(picks)
    assert D.verify("seed-1", pool, params, h, stored)["ok"]
    assert not D.verify("seed-X", pool, params, h, stored)["ok"]
    changed = {"enterprises": pool["enterprises"][1:], "inspectors": pool["inspectors"]}
    r = D.verify("seed-1", changed, params, h, stored)
    assert not r["ok"] and not r["pool_hash_ok"]


@hsettings(max_examples=60, deadline=None)
@given(st.integers(0, 300), st.dictionaries(st.sampled_from(D.RISK_ORDER), st.integers(0, 80), min_size=1),
       st.dictionaries(st.sampled_from(D.RISK_ORDER), st.integers(1, 9), min_size=4))
def test_allocation_sums_and_caps(count, sizes, weights):
    alloc = D.allocate(count, sizes, weights)
    total = sum(sizes.values())
    assert sum(alloc.values()) == min(count, total)
    assert all(alloc[c] <= sizes.get(c, 0) for c in D.RISK_ORDER)


def test_eligible_pool_exclusions():
    now = 100 * DAY
    cands = [("E1", "red", now - 5 * DAY, "I1"), ("E2", "red", now - 50 * DAY, "I2"), ("E3", "blue", None, ""),
             ("E4", "blue", None, "")]
    got = D.eligible_pool(cands, now=now, exclude_inspected_days=30, planned_ids={"E4"})
    assert [e.enterprise_id for e in got] == ["E2", "E3"]


def test_targets_parts_and_rank():
    now = 1000 * DAY
    out = rank([TargetFacts("E1", "blue", None), TargetFacts("E2", "red", now - 40 * DAY, alarms_90d=2),
                TargetFacts("E3", "orange", now - 400 * DAY, duplicates_90d=9)], now)
    assert [r["enterprise_id"] for r in out] == ["E3", "E2", "E1"]
    assert out[0]["parts"] == {"risk": 25.0, "overdue": 30.0, "alarms": 0.0, "duplicates": 15.0, "hazards": 0.0,
                               "red_light": 0.0}
    assert out[1]["score"] == 40 + 10 + 10 and out[1]["rank"] == 2
    # Open hazards (5 each, at most 20) and red-light status (15, its reasons kept) raise a blue one.
    lit = rank([TargetFacts("E1", "blue", None, open_hazards=7, red_light_reasons=("overdue_hazards",))], now)[0]
    assert (lit["parts"]["hazards"], lit["parts"]["red_light"], lit["score"]) == (20.0, 15.0, 35.0)
    assert lit["red_light_reasons"] == ["overdue_hazards"]


def test_plan_vs_actual():
    t = day_start_ts("2026-12-02") + 10 * 3600
    items = [ItemRef(1, "E1", "2026-12-02", ("U1",)), ItemRef(2, "E2", "2026-12-01", ("U1", "U2")),
             ItemRef(3, "E3", "2026-12-01", ("U1",))]
    visits = [VisitRef(10, "E1", "U1", t), VisitRef(11, "E2", "U2", t), VisitRef(12, "E9", "U1", t),
              VisitRef(13, "E1", "U2", t)]
    out = match(items, visits, tolerance_d=1, today="2026-12-04")
    assert out["items"] == [{"item_id": 1, "done": True, "visit_id": 10}, {"item_id": 2, "done": True, "visit_id": 11},
                            {"item_id": 3, "done": False, "visit_id": None}]
    assert out["unplanned_visits"] == [12, 13]  # another enterprise; another unit at a planned enterprise
    assert out["completion_pct"] == 66.7 and out["undone"] == [3]
    assert match(items, visits, tolerance_d=0)["items"][1]["done"] is False


def test_row_validation_names_every_error():
    lk = Lookup(frozenset({"E1", "E2"}), {"91440300MA5EXAMPLE": "E2"}, {"老王餐饮店": ["E1"], "重名": ["E1", "E2"]},
                {"I1": "U1", "I2": "U2"})
    rows = [(2, {"enterprise_id": "E1", "date": "2026-12-01", "inspector_ids": "I1"}),
            (3, {"credit_code": "91440300ma5example", "date": "2026-12-02", "purpose": "service"}),
            (4, {"enterprise_name": "老王餐饮店", "date": "2026-12-01"}),  # duplicate of row 2
            (5, {"enterprise_name": "无此企业", "date": "2026-12-09"}),
            (6, {"enterprise_id": "E2", "date": "2026-12-03", "inspector_ids": "I2;I9"}),
            (7, {"enterprise_name": "重名", "date": "12/03/2026", "purpose": "audit"})]
    items, errors = validate_rows(rows, "U1", WEEK, lk)
    assert [(e["row"], e["reason"]) for e in errors] == [
        (4, "duplicate_row"), (5, "unknown_enterprise"), (5, "date_outside_week"),
        (6, "inspector_other_unit"), (6, "unknown_inspector"), (7, "ambiguous_name"), (7, "bad_date"),
        (7, "bad_purpose")]
    assert [(i.enterprise_id, i.date, i.purpose) for i in items] == [("E1", "2026-12-01", "inspection"),
                                                                       ("E2", "2026-12-02", "service")]
