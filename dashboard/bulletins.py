"""Generating bulletins: gather (``data.report_queries``), build (``reports.sections``),
render (``dashboard.bulletin_render``), archive (``data.report_store``), audit.

``generate`` is what ``python app.py report`` and the schedule call;
``BulletinScheduler`` is the schedule (a thread of ``app.py alerts`` and of the
all-in-one demo), with a Redis lease so that only one of several running
processes writes a given bulletin.  docs/reports.md describes both.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dashboard import bulletin_render as render
from dashboard.i18n import LANGS
from data import audit, report_queries, report_store
from reports import period as periods
from reports.model import Anchor, Report
from reports.sections import build

log = logging.getLogger(__name__)

SCHEDULE_ACTOR = "schedule"
# A run holds its lease this long; a bulletin takes seconds to a minute, and a
# process that died mid-run frees the period for another after this.
LEASE_S = 600
# The schedule looks at the clock this often.
TICK_S = 30.0


@dataclass(frozen=True, slots=True)
class Generated:
    id: int
    report: Report
    files: dict[str, dict[str, str]]
    dir: Path


def period_weeks(kind: str, key: str) -> list[str]:
    """The ISO weeks whose plans a bulletin counts: the week itself, or a month's weeks (those
    whose Monday falls in it, as the agencies' rating counts them)."""
    if kind == "weekly":
        return [key]
    from plans.agencies import month_weeks, parse_month

    return [w.key for w in month_weeks(parse_month(key))]


def generate(engine, settings, kind: str, period_key: str | None = None, street: str | None = None, *,
             actor: str = "cli", now: float | None = None, langs=LANGS) -> Generated:
    """Write one bulletin (every language, PDF and HTML) into the archive and the audit log.

    ``period_key`` None: the last complete period of ``kind`` before ``now``.
    Raises ``periods.PeriodError`` / ``report_queries.UnknownStreet`` for bad
    input and ``render.RenderError`` when this machine cannot draw it.
    """
    now = time.time() if now is None else now
    p = periods.parse(kind, period_key) if period_key else periods.last_complete(kind, now)
    data = report_queries.gather(engine, settings.interval_days(), since=p.start_ts, until=p.end_ts,
                                 day_starts=p.day_starts(), days=[d.isoformat() for d in p.days()],
                                 now=now, street=street,
                                 agency_month=p.key if kind == "monthly" and street is None else None,
                                 plan_tolerance_d=settings.plan_match_tolerance_d, plan_weeks=period_weeks(kind, p.key),
                                 settings=settings)
    head, entries = report_queries.audit_anchor(engine, p.end_ts)
    report = build(data, kind=kind, period=p.key, start_ts=p.start_ts, end_ts=p.end_ts, generated_at=now,
                   anchor=Anchor(head, entries))
    images = render.render_charts(report, langs)
    rid = report_store.create(engine, kind=kind, period=p.key, street_id=street, start_ts=p.start_ts,
                              end_ts=p.end_ts, as_of=report.as_of, generated_at=now, generated_by=actor,
                              anchor_hash=head, anchor_entries=entries, numbers=report.numbers())
    out = report_store.report_dir(settings.data_dir, rid)
    try:
        out.mkdir(parents=True, exist_ok=True)
        files: dict[str, dict[str, str]] = {}
        for lang in langs:
            html = render.render_html(report, lang, images)
            pdf = render.render_pdf(report, lang, images, settings.report_font)
            (out / report_store.file_name(lang, "html")).write_text(html, encoding="utf-8")
            (out / report_store.file_name(lang, "pdf")).write_bytes(pdf)
            files[lang] = {"html": report_store.file_name(lang, "html"), "pdf": report_store.file_name(lang, "pdf")}
        report_store.set_files(engine, rid, files)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        report_store.delete(engine, rid)
        raise
    audit.append(engine, actor, "report_generate", f"report:{rid}",
                 {"kind": kind, "period": p.key, "street": street, "anchor_hash": head, "anchor_entries": entries})
    log.info("bulletin %s %s %s written: report %d in %s", kind, p.key, street or "district", rid, out)
    return Generated(rid, report, files, out)


# --- the schedule -----------------------------------------------------------------------------------


def _hm(s: str) -> tuple[int, int]:
    h, m = s.split(":")
    return int(h), int(m)


def due_runs(settings, last_check: float, now: float) -> list[str]:
    """The kinds whose scheduled time fell in ``(last_check, now]``."""
    out = []
    h, m = _hm(settings.report_weekly_time)
    if periods.next_weekly_run(last_check, settings.report_weekly_weekday, h, m) <= now:
        out.append("weekly")
    h, m = _hm(settings.report_monthly_time)
    if periods.next_monthly_run(last_check, settings.report_monthly_day, h, m) <= now:
        out.append("monthly")
    return out


class BulletinScheduler:
    """Writes the weekly and monthly bulletins at the times the settings name (China time).

    Each (kind, period, street) is written once: a Redis lease
    (``SET {ns}:report:lease:{kind}:{period}:{area} NX EX``) keeps two processes
    from writing it at the same time, and the archive is checked under the lease,
    so a process that starts later does not write it again.  A process that was
    not running at the scheduled time does not catch up: write the bulletin on
    demand (``python app.py report weekly``).
    """

    def __init__(self, engine, redis, settings, stop: threading.Event | None = None,
                 run_job: Callable[[str], object] | None = None):
        self.engine, self.redis, self.settings = engine, redis, settings
        self.stop = stop or threading.Event()
        self.run_job = run_job  # a kind's run here (run_kind), or in a child process (data.jobs)
        self._thread: threading.Thread | None = None

    def areas(self) -> list[str | None]:
        if not self.settings.report_per_street:
            return [None]
        return [None, *(s["id"] for s in report_queries.streets(self.engine))]

    def run_kind(self, kind: str, now: float) -> list[int]:
        """Write every missing bulletin of ``kind`` for the last complete period; the ids written."""
        p = periods.last_complete(kind, now)
        todo = [s for s in self.areas() if not report_store.exists(self.engine, kind, p.key, s, SCHEDULE_ACTOR)]
        written: list[int] = []
        if todo:
            with render.chart_session():
                self._run_areas(kind, p, todo, now, written)
        return written

    def _run_areas(self, kind: str, p, areas: list[str | None], now: float, written: list[int]) -> None:
        ns = self.settings.redis_prefix
        for street in areas:
            key = report_store.lease_key(ns, kind, p.key, street)
            if not report_store.take_lease(self.redis, key, now, LEASE_S):
                continue
            try:
                if report_store.exists(self.engine, kind, p.key, street, SCHEDULE_ACTOR):
                    continue
                written.append(generate(self.engine, self.settings, kind, p.key, street, actor=SCHEDULE_ACTOR,
                                        now=now).id)
            except Exception:  # noqa: BLE001 - one failed bulletin must not stop the schedule
                log.exception("scheduled bulletin %s %s %s failed", kind, p.key, street or "district")
            finally:
                report_store.release_lease(self.redis, key)

    def tick(self, last_check: float, now: float) -> list[int]:
        return [i for kind in due_runs(self.settings, last_check, now) for i in self.run_kind(kind, now)]

    def _loop(self) -> None:
        last = time.time()
        while not self.stop.wait(TICK_S):
            now = time.time()
            try:
                if self.run_job is None:
                    self.tick(last, now)
                else:
                    for kind in due_runs(self.settings, last, now):
                        self.run_job(kind)
            except Exception:  # noqa: BLE001
                log.exception("bulletin schedule tick failed")
            last = now

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._loop, name="bulletins", daemon=True)
        self._thread.start()
        return self._thread
