"""`python app.py draw verify ID`, as a citizen's auditor would run it on the bureau's database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import update

from data.db import make_engine, migrate
from data.models import DrawRow
from data.plans_store import PlansStore
from plans.draw import DrawParams
from tests.citykit import write_small_city

ROOT = Path(__file__).resolve().parents[2]


def _run(db_url: str, tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIAN_")}
    env.update(ANJIAN_DATABASE_URL=db_url, ANJIAN_DATA_DIR=str(tmp_path))
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_verifies_a_draw_and_catches_a_change(tmp_path):
    url = f"sqlite:///{tmp_path / 'anjian.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    write_small_city(engine)
    store = PlansStore(engine, duplicate_window_s=7 * 86400, intervals_d={})
    d = store.create_draw("announced-seed", {}, DrawParams(count=1, inspectors_per_enterprise=1), "test", time.time())
    ok = _run(url, tmp_path, "draw", "verify", str(d["id"]))
    assert ok.returncode == 0 and f"draw {d['id']} OK" in ok.stdout, ok.stderr
    with engine.begin() as conn:
        conn.execute(update(DrawRow).where(DrawRow.id == d["id"]).values(params='{"count":2}'))
    bad = _run(url, tmp_path, "draw", "verify", str(d["id"]))
    assert bad.returncode == 1 and "does NOT verify" in bad.stdout
    assert _run(url, tmp_path, "draw", "verify", "999").returncode == 2
    engine.dispose()
