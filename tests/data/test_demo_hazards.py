"""The demo city's hazards: a closed loop in every stage, some overdue, a few red-light
enterprises, and the days of scores behind them (computed under the scoring lease)."""

from __future__ import annotations

import time
from collections import Counter

from sqlalchemy import func, select

from data import audit
from data.demo_city import ensure_demo_city
from data.demo_hazards import ensure_demo_hazards
from data.hazards_store import HazardStore
from data.models import ScoreRun
from data.scores_store import LEASE_KEY
from tests.mqttkit import wait_until


def test_demo_hazards_and_their_scores(sqlite_engine, settings, redis_client):
    s = settings.model_copy(update={"sim_scale": "tiny"})
    ensure_demo_city(sqlite_engine, s)
    assert ensure_demo_hazards(sqlite_engine, s, redis_client, score_days=3) is True
    # The scores are computed behind, holding the lease: the scheduler skips meanwhile.
    assert wait_until(lambda: redis_client.get(f"{s.redis_namespace}:{LEASE_KEY}") is None, 120)
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ScoreRun)).scalar_one() == 3
    assert ensure_demo_hazards(sqlite_engine, s, redis_client) is False  # once
    store = HazardStore(sqlite_engine, s)
    hs = store.list(limit=5000)
    states = Counter(h["state"] for h in hs)
    assert states["closed"] > 0 and states["rectifying"] > 0
    assert any(h["overdue"] for h in hs)
    assert {h["found_by"] for h in hs} == {"inspector", "enterprise", "agency"}  # agency: its staff found it
    red = store.red_light(time.time())
    assert 0 < len(red) < 0.25 * 600
    assert audit.verify(sqlite_engine) is None
