"""Overdue inspections rolled up: one alert per street per (China) day."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.overdue import OverdueEnterprise, apply_rollup, local_day, overdue_subject, rollup

T0 = 1_718_000_000.0  # 2024-06-10 06:13:20 UTC = 14:13:20 in Shenzhen


def test_subject():
    assert overdue_subject("ST01", "2024-06-10") == "street:ST01:overdue:2024-06-10"
    assert overdue_subject("ST01", dt.date(2024, 6, 10)) == "street:ST01:overdue:2024-06-10"
    with pytest.raises(ValueError):
        overdue_subject("ST01", "10/06/2024")
    with pytest.raises(ValueError):
        overdue_subject("", "2024-06-10")


def test_local_day_is_china_standard_time():
    assert local_day(T0) == "2024-06-10"
    midnight_cst = dt.datetime(2024, 6, 10, 16, 0, tzinfo=dt.timezone.utc).timestamp()  # 00:00 on the 11th
    assert local_day(midnight_cst - 1) == "2024-06-10"
    assert local_day(midnight_cst) == "2024-06-11"


def test_rollup_counts_by_colour():
    items = [
        ("E1", "ST02", "red"),
        ("E2", "ST01", "blue"),
        OverdueEnterprise("E3", "ST01", "red"),
        ("E4", "ST01", "red"),
        ("E4", "ST01", "red"),  # listed twice (two ticks): counted once
        ("E5", None, "yellow"),  # outside every street
        ("E6", "ST02", "orange"),
    ]
    assert rollup(items) == [
        ("ST01", {"red": 2, "orange": 0, "yellow": 0, "blue": 1}),
        ("ST02", {"red": 1, "orange": 1, "yellow": 0, "blue": 0}),
        (None, {"red": 0, "orange": 0, "yellow": 1, "blue": 0}),
    ]
    assert rollup([]) == []
    with pytest.raises(ValueError):
        rollup([("E1", "ST01", "green")])


def test_apply_rollup_opens_once_then_updates_in_place():
    counts = {"red": 2, "orange": 0, "yellow": 3, "blue": 1}
    alert, rec = apply_rollup("ST01", "2024-06-10", counts, T0, None)
    assert (alert.type, alert.subject, alert.street_id, alert.count) == (
        "overdue_inspection", "street:ST01:overdue:2024-06-10", "ST01", 6)
    assert alert.severity == "warning" and alert.details["by_colour"] == counts
    assert rec.to_state == "open"
    assert apply_rollup("ST01", "2024-06-10", dict(counts), T0 + 600, alert) is None  # the next tick: nothing
    fewer = {"red": 0, "orange": 0, "yellow": 3, "blue": 1}
    updated, rec = apply_rollup("ST01", "2024-06-10", fewer, T0 + 1200, alert)
    assert rec is None and updated.count == 4 and updated.severity == "info" and updated.last_seen == T0 + 1200
    assert apply_rollup("ST01", "2024-06-10", {"red": 0}, T0, None) is None
    with pytest.raises(ValueError):
        apply_rollup("ST02", "2024-06-10", counts, T0, alert)
