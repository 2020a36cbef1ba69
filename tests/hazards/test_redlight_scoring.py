"""Red-light rules (one test per rule), scoring and the catalogue, with known values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hazards
from hazards.catalogue import CatalogueError, parse_catalogue
from hazards.redlight import EnterpriseFacts, RedLightRules, no_self_inspection, overdue_hazards, red_light, zero_hazards
from hazards.scoring import AreaDay, EnterpriseDay, score_areas, score_enterprises, weighted_score

D = 86400.0
NOW = 1_780_000_000.0
RULES = RedLightRules(period_s=30 * D, zero_hazard_periods=3, overdue_min=1)


def test_rule_no_self_inspection_by_the_due_date():
    assert no_self_inspection(EnterpriseFacts("E1", NOW - 29 * D), NOW, RULES) is None
    late = no_self_inspection(EnterpriseFacts("E1", NOW - 31 * D), NOW, RULES)
    assert late["rule"] == "no_self_inspection" and late["due_at"] == NOW - D
    assert no_self_inspection(EnterpriseFacts("E1", None), NOW, RULES)["last_self_inspection_at"] is None


def test_rule_zero_hazards_for_n_periods():
    quiet = EnterpriseFacts("E1", NOW - D, self_reported_at=(NOW - 91 * D,))
    assert zero_hazards(quiet, NOW, RULES) == {"rule": "zero_hazards", "periods": 3, "since": NOW - 90 * D}
    assert zero_hazards(EnterpriseFacts("E1", NOW - D, self_reported_at=(NOW - 89 * D,)), NOW, RULES) is None
    # Not yet supervised for three whole periods: no verdict.
    assert zero_hazards(EnterpriseFacts("E1", NOW - D, since=NOW - 60 * D), NOW, RULES) is None
    assert zero_hazards(quiet, NOW, RedLightRules(30 * D, 0, 1)) is None


def test_rule_hazards_past_deadline():
    assert overdue_hazards(EnterpriseFacts("E1", NOW, overdue_hazards=0), NOW, RULES) is None
    assert overdue_hazards(EnterpriseFacts("E1", NOW, overdue_hazards=2), NOW, RULES) == {
        "rule": "overdue_hazards", "count": 2}
    assert overdue_hazards(EnterpriseFacts("E1", NOW, overdue_hazards=2), NOW, RedLightRules(30 * D, 3, 3)) is None


def test_red_light_lists_every_reason_in_rule_order():
    f = EnterpriseFacts("E1", None, overdue_hazards=1)
    assert [r["rule"] for r in red_light(f, NOW, RULES)] == ["no_self_inspection", "zero_hazards", "overdue_hazards"]
    good = EnterpriseFacts("E1", NOW - D, self_reported_at=(NOW - 5 * D,))
    assert red_light(good, NOW, RULES) is None


W_E = {"self_report": 2, "rectification": 2, "speed": 1, "overdue": 2, "gas_alarms": 1, "findings": 1}
W_A = {"coverage": 3, "duplicates": 1, "plan_completion": 1, "alarm_response": 2, "hazard_closure": 2}


def test_enterprise_scores_known_values_and_ranks():
    perfect = EnterpriseDay("E2", self_inspection_age_s=D)
    poor = EnterpriseDay("E1", self_inspection_age_s=45 * D, assigned=4, rectified=2, rectified_on_time=1,
                         overdue=1, gas_alarms=3, found_general=2, found_major=2)
    rows = score_enterprises([poor, perfect, EnterpriseDay("E3", self_inspection_age_s=0)], W_E, 30 * D)
    assert [(r.id, r.rank) for r in rows] == [("E2", 1), ("E3", 1), ("E1", 3)]
    p = rows[2].parts
    assert p == {"self_report": 0.5, "rectification": 0.5, "speed": 0.5, "overdue": 0.5, "gas_alarms": 0.25,
                 "findings": 0.3333}
    # (2*.5 + 2*.5 + .5 + 2*.5 + .25 + .3333) / 9 * 100
    assert rows[2].score == round(100 * (1 + 1 + 0.5 + 1 + 0.25 + 0.3333) / 9, 2)
    assert rows[0].score == 100.0
    assert score_enterprises([poor, perfect], W_E, 30 * D) == score_enterprises([perfect, poor], W_E, 30 * D)


def test_area_scores_leave_out_what_cannot_be_measured():
    a = AreaDay("ST1", enterprises=10, covered=8, visits=20, duplicates=2, alarm_response_s=(450.0, None),
                hazards_found=4, hazards_closed=3)
    row = score_areas("street", [a], W_A, 900.0)[0]
    assert row.parts == {"coverage": 0.8, "duplicates": 0.9, "plan_completion": None, "alarm_response": 0.25,
                         "hazard_closure": 0.75}
    assert row.score == round(100 * (3 * 0.8 + 0.9 + 2 * 0.25 + 2 * 0.75) / 8, 2)
    assert weighted_score({"a": None}, {"a": 1}) == 100.0


def test_the_default_catalogue_parses_and_has_both_kinds():
    raw = json.loads((Path(hazards.__file__).parent / "default_catalogue.json").read_text(encoding="utf-8"))
    cat = parse_catalogue(raw)
    kinds = {g.code: g.kind for g in cat.groups}
    assert {"equipment", "process", "place", "hazmat", "post"} <= {k for k, v in kinds.items() if v == "industrial"}
    assert {"small_catering", "small_shop", "small_workshop"} <= {k for k, v in kinds.items() if v == "small_venue"}
    assert "SC01" in cat and "液化气" in cat.items["SC01"].name  # bottled gas
    with pytest.raises(CatalogueError) as e:
        parse_catalogue({"groups": [{"code": "x y", "kind": "farm", "name": "", "items": [{"code": "A", "name": "a",
                                                                                            "level": "huge"}]}]})
    assert len(e.value.errors) == 4
