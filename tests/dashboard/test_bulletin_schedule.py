"""The bulletin schedule: Monday 08:00 China time writes last week's bulletin once, however
many processes tick; a lease held by another process is respected."""

from __future__ import annotations

from datetime import datetime

from dashboard.bulletins import SCHEDULE_ACTOR, BulletinScheduler, due_runs
from data import report_store
from geo.china import CHINA_TZ
from tests.reportkit import WEEK, write_week

MONDAY_8 = datetime(2026, 11, 23, 8, 0, tzinfo=CHINA_TZ).timestamp()  # the Monday after 2026-W47


def test_due_runs_follow_the_settings(settings):
    assert due_runs(settings, MONDAY_8 - 30, MONDAY_8 + 1) == ["weekly"]
    assert due_runs(settings, MONDAY_8 + 1, MONDAY_8 + 31) == []
    first_dec = datetime(2026, 12, 1, 8, 0, tzinfo=CHINA_TZ).timestamp()
    assert due_runs(settings, first_dec - 30, first_dec) == ["monthly"]
    later = settings.model_copy(update={"report_weekly_weekday": 2, "report_weekly_time": "09:30"})
    assert due_runs(later, MONDAY_8 - 30, MONDAY_8 + 1) == []
    tuesday = datetime(2026, 11, 24, 9, 30, tzinfo=CHINA_TZ).timestamp()
    assert due_runs(later, tuesday - 30, tuesday) == ["weekly"]


def test_schedule_writes_last_weeks_bulletin_once(settings, sqlite_engine, redis_client, namespace):
    write_week(sqlite_engine)
    s = settings.model_copy(update={"report_per_street": False})
    a = BulletinScheduler(sqlite_engine, redis_client, s)
    b = BulletinScheduler(sqlite_engine, redis_client, s)
    # Another process holds the lease of this bulletin: neither writes it.
    lease = f"{namespace}:report:lease:weekly:{WEEK}:-"
    redis_client.set(lease, "other", ex=60)
    assert a.tick(MONDAY_8 - 30, MONDAY_8 + 1) == []
    redis_client.delete(lease)

    written = a.tick(MONDAY_8 - 30, MONDAY_8 + 1)
    assert len(written) == 1
    assert b.tick(MONDAY_8 - 30, MONDAY_8 + 1) == []  # already in the archive
    rows = report_store.listing(sqlite_engine, kind="weekly")
    assert [(r["period"], r["street_id"], r["generated_by"]) for r in rows] == [(WEEK, None, SCHEDULE_ACTOR)]
    assert rows[0]["numbers"]["inspections"]["visits"] == 4
    assert redis_client.get(lease) is None  # the lease is given back
