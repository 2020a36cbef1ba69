"""Daily scoring in SQL (SQLite and PostgreSQL): a rerun gives identical rows, missed days
are caught up, the rows reflect hazards, self-inspections and visits; the schema matches
the models; the scheduler's lease lets one process score."""

from __future__ import annotations

from datetime import date, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event, func, insert, select

from data import scores_store
from data.hazards_store import HazardStore
from data.models import Base, Inspector, ScoreRowModel, ScoreRun, Unit, Visit
from data.scores_store import Scheduler, catch_up, day_end, missed_days, run_day
from tests.citykit import write_small_city

DAY = "2026-11-30"
D = 86400.0


def _rows(engine, day):
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(ScoreRowModel.date, ScoreRowModel.kind, ScoreRowModel.subject_id, ScoreRowModel.score,
                   ScoreRowModel.rank, ScoreRowModel.parts).where(ScoreRowModel.date == day)
            .order_by(ScoreRowModel.kind, ScoreRowModel.subject_id))]


def _city(engine, settings):
    write_small_city(engine)
    store = HazardStore(engine, settings)
    end = day_end(DAY)
    # E1: self-inspected, one hazard found, assigned and rectified late; E2: nothing at all.
    store.submit_self_inspection("E1", "ent1", [{"code": "SC01", "ok": True}], now=end - 5 * D)
    h = store.create("off1", enterprise_id="E1", category="SC01", level="general", found_by="inspector",
                     finder_id="I1", now=end - 20 * D)
    store.act(h["id"], "assign", "off1", now=end - 20 * D + 60)
    with engine.begin() as conn:
        conn.execute(insert(Visit), [{"enterprise_id": "E1", "inspector_id": "I1", "unit_id": "U1",
                                      "start_ts": end - 20 * D, "end_ts": end - 20 * D + 900, "stay_key": "k1"},
                                     {"enterprise_id": "E1", "inspector_id": "I2", "unit_id": "U2",
                                      "start_ts": end - 19 * D, "end_ts": end - 19 * D + 900, "stay_key": "k2",
                                      "duplicate_of": None}])
    return store


def _sqlite_width_only(diff, dialect: str) -> bool:
    """A VARCHAR width change on SQLite, which never enforces widths: migration 0002
    widens the msg_id columns on PostgreSQL only (docs/architecture.md, "History writes")."""
    return (dialect == "sqlite" and isinstance(diff, list) and len(diff) == 1 and diff[0][0] == "modify_type"
            and diff[0][3] == "msg_id")


def test_the_schema_matches_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if not _sqlite_width_only(d, engine.dialect.name)] == []


def test_scoring_a_day_twice_gives_identical_rows(engine, settings):
    _city(engine, settings)
    first = run_day(engine, settings, DAY, now=1.0)
    rows = _rows(engine, DAY)
    second = run_day(engine, settings, DAY, now=2.0)
    assert _rows(engine, DAY) == rows and first["digest"] == second["digest"]
    by = {(k, i): (s, rk, p) for _d, k, i, s, rk, p in rows}
    # E1: self-inspected, its one hazard is overdue (7 days for a general one) and unrectified.
    e1 = by[("enterprise", "E1")][2]
    assert e1["self_report"] == 1.0 and e1["overdue"] == 0.5 and e1["rectification"] == 0.0
    assert by[("enterprise", "E2")][2]["self_report"] == 0.0
    assert by[("street", "ST1")][2]["coverage"] == 1.0 and by[("street", "ST2")][2]["coverage"] == 0.0
    assert by[("street", "ST1")][2]["hazard_closure"] == 0.0
    assert {k for k, _ in by} == {"enterprise", "street", "unit"}
    ranks = sorted(rk for (k, _), (_s, rk, _p) in by.items() if k == "enterprise")
    assert ranks == [1, 2]


def test_findings_of_service_agencies_count_and_an_enterprises_own_reports_do_not(engine, settings):
    """The enterprise's findings part counts supervision's findings, an agency's as much as
    an inspector's; the agency's unit gets its findings in hazard_closure."""
    store = _city(engine, settings)
    end = day_end(DAY)
    with engine.begin() as conn:
        conn.execute(insert(Unit), [{"id": "A1", "name": "深圳安信安全技术服务有限公司", "kind": "third_party",
                                     "street_id": None}])
        conn.execute(insert(Inspector), [{"id": "I3", "name": "陈静", "unit_id": "A1", "owntracks_id": None}])
    # E2: a major hazard found by the agency's staff, one in the agency's own name, and a
    # general one the enterprise reported itself.
    store.create("off1", enterprise_id="E2", category="SC01", level="major", found_by="agency",
                 finder_id="I3", now=end - 3 * D)
    store.create("off1", enterprise_id="E2", category="SC01", level="general", found_by="agency",
                 finder_id="A1", now=end - 2 * D)
    store.create("ent2", enterprise_id="E2", category="SC01", level="general", found_by="enterprise",
                 finder_id="E2", now=end - 2 * D)
    run_day(engine, settings, DAY, now=1.0)
    by = {(k, i): p for _d, k, i, _s, _rk, p in _rows(engine, DAY)}
    # (3 x 1 major + 1 general) / 4 = 1: the enterprise's own report is not a finding.
    assert by[("enterprise", "E2")]["findings"] == 0.5
    assert by[("enterprise", "E1")]["findings"] == 0.8  # the inspector's one general hazard
    # The agency found two, closed none; U1 (the inspector's unit) one, none closed.
    assert by[("unit", "A1")]["hazard_closure"] == 0.0
    assert by[("unit", "U1")]["hazard_closure"] == 0.0
    assert by[("unit", "U2")]["hazard_closure"] == 1.0  # found nothing


def test_missed_days_are_caught_up(engine, settings):
    _city(engine, settings)
    run_day(engine, settings, "2026-11-25")
    now = day_end("2026-11-30") + 3600  # 01:00 on Dec 1st, China time
    assert missed_days(engine, settings, now) == ["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29",
                                                  "2026-11-30"]
    done = catch_up(engine, settings, now)
    assert [d["date"] for d in done] == ["2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30"]
    assert missed_days(engine, settings, now) == []
    with engine.connect() as conn:
        assert conn.execute(select(ScoreRun.date).order_by(ScoreRun.date)).scalars().all()[-1] == "2026-11-30"
    # A long downtime catches up at most score_catchup_max_d days.
    later = now + 60 * D
    days = missed_days(engine, settings.model_copy(update={"score_catchup_max_d": 3}), later)
    yesterday = date.fromisoformat(scores_store.china_day(later)) - timedelta(days=1)
    assert days == [(yesterday - timedelta(days=k)).isoformat() for k in (2, 1, 0)]


def test_the_scheduler_lease_lets_one_process_score(engine, settings, redis_client):
    _city(engine, settings)
    now = day_end(DAY) + 120
    a, b = Scheduler(engine, settings, redis_client), Scheduler(engine, settings, redis_client)
    redis_client.set(f"{settings.redis_namespace}:{scores_store.LEASE_KEY}", "other", ex=60)
    assert a.run_once(now) is None  # another process holds the lease
    redis_client.delete(f"{settings.redis_namespace}:{scores_store.LEASE_KEY}")
    assert [d["date"] for d in b.run_once(now)] == [DAY]
    assert redis_client.get(f"{settings.redis_namespace}:{scores_store.LEASE_KEY}") is None
    assert scores_store.seconds_to_midnight(day_end(DAY) - 10) == 10


def test_the_cli_scores_a_day_and_reruns_it_identically(tmp_path, monkeypatch, capsys):
    import app
    from data.db import make_engine, migrate

    monkeypatch.setenv("ANJIAN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ANJIAN_DATABASE_URL", raising=False)
    monkeypatch.delenv("ANJIAN_CONFIG", raising=False)
    eng = make_engine(f"sqlite:///{tmp_path / 'anjian.sqlite3'}")
    migrate(eng)
    write_small_city(eng)
    assert app.main(["scores", "run", "--date", DAY]) == 0
    first = capsys.readouterr().out
    assert app.main(["scores", "run", "--date", DAY]) == 0
    assert capsys.readouterr().out == first and f"scores of {DAY}: 6 rows" in first  # 2 enterprises, 2 streets, 2 units
    assert app.main(["scores", "run", "--date", "30/11/2026"]) == 2
    eng.dispose()


def test_a_day_is_written_in_slices_and_counts_as_scored_only_once_whole(engine, settings, monkeypatch):
    """On SQLite one transaction of a city's day held the one writer's lock for about
    2 s, and every alarm's commit waited behind it.  The day is written a slice a
    transaction; until its last, the day is not scored (catch-up, the newest day), and
    a rerun replaces each subject's row in the transaction that writes it."""
    _city(engine, settings)
    monkeypatch.setattr(scores_store, "WRITE_SLICE", 2)  # the small city's 6 rows: 3 slices
    monkeypatch.setattr(scores_store, "SQLITE_PAUSE_S", 0.0)
    seen = []  # as each commit is made (from another connection): the day's rows, and the newest scored day

    def on_commit(conn):
        with engine.connect() as c:
            n = c.execute(select(func.count()).select_from(ScoreRowModel).where(ScoreRowModel.date == DAY)).scalar()
        seen.append((n, scores_store.latest_date(engine)))

    event.listen(engine, "commit", on_commit)
    try:
        first = run_day(engine, settings, DAY, now=1.0)
    finally:
        event.remove(engine, "commit", on_commit)
    # Three slices, then the day's score_runs row: all six rows were in before the day counted.
    assert first["rows"] == 6 and seen == [(0, None), (2, None), (4, None), (6, None)]
    assert scores_store.latest_date(engine) == DAY
    rows = _rows(engine, DAY)
    # A subject no longer scored (its row from an earlier run) goes with the day's last transaction.
    with engine.begin() as conn:
        conn.execute(insert(ScoreRowModel).values(date=DAY, kind="enterprise", subject_id="GONE", score=0.5, rank=3,
                                                  parts={}))
    second = run_day(engine, settings, DAY, now=2.0)
    assert _rows(engine, DAY) == rows and second["digest"] == first["digest"]


def test_the_schedule_starts_a_childs_run_only_for_a_missing_day_nobody_is_scoring(engine, settings, redis_client):
    """With the work in a child process (data/jobs.py), the schedule asks first: a day
    missing, and no other process holding the night's lease.  Every alert engine of a
    deployment schedules; only one child need start (each is a second of CPU)."""
    _city(engine, settings)
    started = []
    s = Scheduler(engine, settings, redis_client, run_job=lambda: started.append(1) or 0)
    now = day_end(DAY) + 3600  # an hour into the next day: DAY is yesterday, not scored
    lease = f"{settings.redis_prefix}:{scores_store.LEASE_KEY}"
    redis_client.set(lease, "another process", ex=60)
    assert not s.tick(now) and started == []
    redis_client.delete(lease)
    assert s.tick(now) and started == [1]
    run_day(engine, settings, DAY, now)
    assert not s.tick(now) and started == [1]  # nothing missing
