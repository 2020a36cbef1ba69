"""The agencies' rating rules (plans/agencies.py), pure."""

from __future__ import annotations

import pytest

from plans.agencies import (
    WEIGHTS,
    AgencyMonth,
    AgencyVisit,
    Contract,
    month_weeks,
    parse_month,
    rate,
    under_contract,
)
from plans.model import day_start_ts


def test_months_and_their_weeks():
    m = parse_month("2026-11")
    assert (m.first_day, m.last_day) == ("2026-11-01", "2026-11-30")
    assert m.start_ts == day_start_ts("2026-11-01") and m.end_ts == day_start_ts("2026-12-01")
    assert [w.key for w in month_weeks(m)] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48", "2026-W49"]
    assert [w.key for w in month_weeks(parse_month("2026-12"))] == ["2026-W50", "2026-W51", "2026-W52", "2026-W53"]
    assert month_weeks(m)[0].start_ts == day_start_ts("2026-11-02")
    for bad in ("2026-13", "2026-1", "26-11", None, "2026-00"):
        with pytest.raises(ValueError):
            parse_month(bad)


def test_contract_days_are_inclusive():
    cs = [Contract("E1", "2026-11-10", "2026-11-30")]
    assert [under_contract(cs, "E1", d) for d in ("2026-11-09", "2026-11-10", "2026-11-30", "2026-12-01")] == [
        False, True, True, False]


def test_ties_share_a_rank_and_the_weights_sum_to_100():
    assert sum(WEIGHTS.values()) == 100
    m = parse_month("2026-11")
    visit = AgencyVisit(1, "E1", day_start_ts("2026-11-03"), "2026-11-03", False)
    a = AgencyMonth("A1", "a", contracts=[Contract("E1", "2026-01-01", "2026-12-31")], visits=[visit])
    b = AgencyMonth("A0", "b", contracts=[Contract("E1", "2026-01-01", "2026-12-31")], visits=[visit])
    c = AgencyMonth("A2", "c", complaints=9)
    rows = rate([a, b, c], m)
    assert [(r["id"], r["rank"], r["score"]) for r in rows] == [("A0", 1, 60.0), ("A1", 1, 60.0), ("A2", 3, 0.0)]
    assert rows[2]["parts"]["complaints"]["points"] == -20.0  # capped
