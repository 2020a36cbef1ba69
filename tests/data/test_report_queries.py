"""data/report_queries: a bulletin's numbers from a week of known history, on SQLite and
PostgreSQL; the audit anchor and truncation."""

from __future__ import annotations

import time

from sqlalchemy import delete, func, select

from data import audit, report_queries
from data.models import AuditEntry
from reports import period as P
from reports.model import Anchor
from reports.sections import build
from tests.reportkit import EXPECTED, W0, WEEK, write_week

INTERVALS = {"red": 30, "orange": 60, "yellow": 90, "blue": 180}


def gather(engine, street=None, now=None):
    p = P.parse("weekly", WEEK)
    return report_queries.gather(engine, INTERVALS, since=p.start_ts, until=p.end_ts, day_starts=p.day_starts(),
                                 days=[d.isoformat() for d in p.days()], now=now or time.time(), street=street)


def test_district_week_by_hand(engine):
    now = time.time()
    write_week(engine, now)
    data = gather(engine, now=now)
    r = build(data, kind="weekly", period=WEEK, start_ts=W0, end_ts=W0 + 7 * 86400, generated_at=now,
              anchor=Anchor(None, 0))
    flat = {k: v for sec in r.numbers().values() for k, v in sec.items()}
    for k, v in EXPECTED.items():
        assert flat[k] == v, (k, flat[k], v)
    units = {u["id"]: u for u in data["inspections"]["units"]}
    assert (units["U1"]["visits"], units["U1"]["enterprises"], units["U1"]["same_unit_repeats"]) == (3, 2, 1)
    assert (units["U2"]["visits"], units["U2"]["duplicates"]) == (1, 1)
    assert data["inspections"]["daily_visits"] == [2, 1, 0, 1, 0, 0, 0]
    assert data["alarms"]["daily"] == [0, 0, 1, 0, 1, 1, 0]
    # The rankings: U1's arrivals (300 s) beat U2's (600 s); ST1 covers 100 %, ST2 0 %.
    rk = r.section("rankings")
    by_title = {tb.title: tb.rows for tb in rk.tables}
    assert [row[1] for row in by_title["report.tbl.units_by_response"]][:2] == ["龙华区应急管理局执法科", "民治街道安监办"]
    assert [(row[0], row[1].zh, row[2]) for row in by_title["report.tbl.streets_by_coverage"]] == \
        [(1, "民治街道", 100.0), (2, "龙华街道", 0.0)]
    # The map: the one overdue enterprise and the three alarms.
    assert len(data["map"]["points"]) == 1 and len(data["map"]["alarms"]) == 3
    # Every word of the bulletin is in the one catalogue.
    from dashboard.i18n import has
    from reports.model import Text

    keys = {f"report.title.{r.kind}", "report.subtitle", "report.anchor.title", "report.anchor.text"}
    for sec in r.sections:
        keys |= {sec.title, *(f.key for f in sec.figures), *(n.key for n in sec.notes)}
        for tb in sec.tables:
            keys |= {tb.title, *tb.columns, *(v.key for row in tb.rows for v in row if isinstance(v, Text))}
        for ch in sec.charts:
            keys |= {ch.title, *(name for name, _ in ch.series), *(ch.x if ch.x_is_keys else ())}
    assert not [k for k in keys if not has(k)]


def test_street_week_keeps_only_the_street(engine):
    now = time.time()
    write_week(engine, now)
    data = gather(engine, street="ST1", now=now)
    assert data["street_name"] == "民治街道"
    assert data["inspections"]["total"] == 2  # both visits at E1
    assert len(data["alarms"]["rows"]) == 2
    assert data["coverage"]["total"] == 1 and data["coverage"]["overall"] == 100.0
    assert data["duplicates"]["caught_live"] == 1 and data["duplicates"]["warned_live"] == 0


def test_unknown_street(engine):
    write_week(engine)
    try:
        gather(engine, street="NOPE")
    except report_queries.UnknownStreet:
        return
    raise AssertionError("an unknown street was accepted")


def test_audit_anchor_and_truncation(engine):
    end = W0 + 7 * 86400
    for i in range(9):
        audit.append(engine, "t", "act", str(i), at=end - 100 + i * 25)  # entries 1-4 before the end, 5-9 after
    head, n = report_queries.audit_anchor(engine, end)
    assert n == 4
    assert audit.find_anchor(engine, head) == 4
    assert audit.verify(engine) is None
    # Delete the newest 5 entries: verify alone still holds, the anchor still holds (it is entry 4) ...
    with engine.begin() as conn:
        ids = conn.execute(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(5)).scalars().all()
        conn.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
    assert audit.verify(engine) is None and audit.find_anchor(engine, head) == 4
    # ... deleting entry 4 too is seen by the anchor only.
    with engine.begin() as conn:
        last = conn.execute(select(func.max(AuditEntry.id))).scalar_one()
        conn.execute(delete(AuditEntry).where(AuditEntry.id == last))
    assert audit.verify(engine) is None
    assert audit.find_anchor(engine, head) is None
    assert report_queries.audit_anchor(engine, W0) == (None, 0)


def test_archive_rows_and_the_migration_match_the_model(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from data import report_store
    from data.models import Base

    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diffs if "reports" in repr(d)], diffs
    rid = report_store.create(engine, kind="weekly", period=WEEK, street_id=None, start_ts=W0, end_ts=W0 + 1,
                              as_of=W0, generated_at=W0, generated_by="t", anchor_hash=None, anchor_entries=0,
                              numbers={"inspections": {"visits": 4}})
    assert report_store.listing(engine) == [] and report_store.get(engine, rid) is None  # no files yet
    assert not report_store.exists(engine, "weekly", WEEK, None, "t")
    report_store.set_files(engine, rid, {"zh-CN": {"pdf": "bulletin.zh-CN.pdf", "html": "bulletin.zh-CN.html"}})
    [row] = report_store.listing(engine, kind="weekly")
    assert row["numbers"] == {"inspections": {"visits": 4}}
    assert row["downloads"] == {"zh-CN": {"html": f"/api/v1/reports/{rid}.html", "pdf": f"/api/v1/reports/{rid}.pdf"}}
    assert report_store.exists(engine, "weekly", WEEK, None, "t")
    assert not report_store.exists(engine, "weekly", WEEK, "ST1", "t")
    assert report_store.listing(engine, kind="monthly") == []
