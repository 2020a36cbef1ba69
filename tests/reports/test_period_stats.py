"""reports/: periods in China time, percentiles and rankings, with known values."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.china import CHINA_TZ
from reports import period as P
from reports.stats import percentile, rank


def ts(*a) -> float:
    return datetime(*a, tzinfo=CHINA_TZ).timestamp()


def test_iso_week_is_monday_to_sunday_in_china_time():
    w = P.parse("weekly", "2026-W49")
    assert (w.first_day, w.last_day) == (date(2026, 11, 30), date(2026, 12, 6))
    assert w.start_ts == ts(2026, 11, 30) and w.end_ts == ts(2026, 12, 7)
    # 2026-11-29 16:00 UTC is Monday 00:00 in Shanghai: it belongs to W49, a second earlier to W48.
    assert P.containing("weekly", w.start_ts).key == "2026-W49"
    assert P.containing("weekly", w.start_ts - 1).key == "2026-W48"
    assert len(w.days()) == 7


def test_week_across_the_year_and_week_53():
    assert P.parse("weekly", "2026-W53").first_day == date(2026, 12, 28)  # 2026 has 53 ISO weeks
    assert P.containing("weekly", ts(2027, 1, 3, 23, 59)).key == "2026-W53"
    assert P.containing("weekly", ts(2027, 1, 4)).key == "2027-W01"
    with pytest.raises(P.PeriodError):
        P.parse("weekly", "2027-W53")


def test_months():
    m = P.parse("monthly", "2026-02")
    assert (m.first_day, m.last_day) == (date(2026, 2, 1), date(2026, 2, 28))
    assert P.parse("monthly", "2026-12").end_ts == ts(2027, 1, 1)
    assert P.last_complete("monthly", ts(2027, 1, 1, 8)).key == "2026-12"
    assert P.last_complete("weekly", ts(2026, 12, 7, 8)).key == "2026-W49"


@pytest.mark.parametrize("kind,key", [("weekly", "2026-12"), ("monthly", "2026-W01"), ("monthly", "2026-13"),
                                      ("weekly", ""), ("yearly", "2026")])
def test_bad_periods(kind, key):
    with pytest.raises(P.PeriodError):
        P.parse(kind, key)


def test_schedule_times_are_china_time():
    # Thursday 2026-12-03 12:00 Shanghai -> next Monday 08:00 is 2026-12-07 08:00 Shanghai.
    assert P.next_weekly_run(ts(2026, 12, 3, 12), 1, 8) == ts(2026, 12, 7, 8)
    # At Monday 08:00 exactly the next run is a week later; a second before, it is now.
    assert P.next_weekly_run(ts(2026, 12, 7, 8), 1, 8) == ts(2026, 12, 14, 8)
    assert P.next_weekly_run(ts(2026, 12, 7, 8) - 1, 1, 8) == ts(2026, 12, 7, 8)
    assert P.next_monthly_run(ts(2026, 12, 3), 1, 8) == ts(2027, 1, 1, 8)


def test_percentile_known_values():
    assert percentile([], 50) is None
    assert percentile([5], 95) == 5
    assert percentile([30, 90, 60], 50) == 60
    assert percentile([30, 90, 60], 95) == pytest.approx(87.0)
    assert percentile([600, 300], 50) == 450
    assert percentile([600, 300], 95) == pytest.approx(585.0)
    assert percentile([1, float("nan"), 3, None], 50) == 2


@settings(deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_equals_numpy_and_stays_in_range(xs, q):
    import numpy as np

    p = percentile(xs, q)
    assert min(xs) <= p <= max(xs)
    assert p == pytest.approx(float(np.percentile(xs, q)), rel=1e-9, abs=1e-6)


def test_rank_shares_ties_and_puts_missing_last():
    rows = [{"id": "a", "v": 3}, {"id": "b", "v": None}, {"id": "c", "v": 5}, {"id": "d", "v": 3}]
    assert [(r["id"], r["rank"]) for r in rank(rows, "v")] == [("c", 1), ("a", 2), ("d", 2), ("b", None)]
    assert [(r["id"], r["rank"]) for r in rank(rows, "v", descending=False)] == [("a", 1), ("d", 1), ("c", 3),
                                                                                  ("b", None)]
