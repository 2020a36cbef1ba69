"""`python app.py report` and `python app.py audit verify --anchor` as a user runs them:
a bulletin publishes the audit chain's head; deleting the newest entries after it is
invisible to `audit verify` but not to `audit verify --anchor`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import delete, select

from data import audit
from data.db import make_engine, migrate
from data.models import AuditEntry
from reports import period as P
from tests.reportkit import write_week

ROOT = Path(__file__).resolve().parents[1]
APP = [sys.executable, str(ROOT / "app.py")]

# scripts/ensure-services.sh (the test command) installs poppler-utils: a missing tool fails, never skips.
assert shutil.which("pdftotext"), "poppler-utils is not installed (make services)"


def run(tmp_path, *args):
    env = {"PATH": "/usr/bin:/bin", "ANJIAN_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    return subprocess.run([*APP, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_bulletin_anchor_detects_truncation(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'anjian.sqlite3'}")
    migrate(engine)
    write_week(engine)
    for i in range(8):
        audit.append(engine, "officer1", "alert_ack", f"alert:{i}", {"n": i})
    engine.dispose()

    week = P.containing("weekly", time.time()).key  # this week: every entry so far is before its end
    out = run(tmp_path, "report", "weekly", "--period", week)
    assert out.returncode == 0, out.stderr
    m = re.search(r"audit anchor at \S+'s end: ([0-9a-f]{64}) \((\d+) entries\)", out.stdout)
    assert m, out.stdout
    head, n = m.group(1), int(m.group(2))
    assert n == 8
    pdf = next(tmp_path.glob("reports/*/bulletin.zh-CN.pdf"))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert head in text.replace("\n", "") and "审计链共 8 条记录" in text

    ok = run(tmp_path, "audit", "verify", "--anchor", head)
    assert ok.returncode == 0 and f"anchor {head} is entry 8" in ok.stdout, ok.stdout + ok.stderr

    # Someone deletes the newest entries (the bulletin's own and the last ack before it).
    engine = make_engine(f"sqlite:///{tmp_path / 'anjian.sqlite3'}")
    with engine.begin() as conn:
        ids = conn.execute(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(2)).scalars().all()
        conn.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
    engine.dispose()
    plain = run(tmp_path, "audit", "verify")
    assert plain.returncode == 0 and "OK: 7 entries" in plain.stdout  # what verify alone could not see
    anchored = run(tmp_path, "audit", "verify", "--anchor", head)
    assert anchored.returncode == 1 and "does NOT contain the anchor" in anchored.stdout, anchored.stdout


def test_report_cli_refuses_bad_input(tmp_path):
    out = run(tmp_path, "report", "weekly", "--period", "2026-12")
    assert out.returncode == 2 and "PeriodError" in out.stderr
    out = run(tmp_path, "report", "monthly", "--period", "2026-11", "--street", "NOPE")
    assert out.returncode == 2 and "UnknownStreet" in out.stderr


def test_user_create_enterprise_account_refuses_in_one_line(tmp_path):
    """`user create --role enterprise` without --enterprise printed a ValueError traceback;
    an enterprise id that is not in the database was stored as a dangling binding."""
    out = run(tmp_path, "user", "create", "boss", "--role", "enterprise")
    assert out.returncode == 1 and "needs --enterprise" in out.stderr and "Traceback" not in out.stderr, out.stderr
    out = run(tmp_path, "user", "create", "chen", "--role", "dispatcher", "--enterprise", "E1")
    assert out.returncode == 1 and "only an enterprise account" in out.stderr, out.stderr
    out = run(tmp_path, "user", "create", "boss", "--role", "enterprise", "--enterprise", "NO-SUCH")
    assert out.returncode == 1 and "no enterprise 'NO-SUCH'" in out.stderr and "Traceback" not in out.stderr, out.stderr
