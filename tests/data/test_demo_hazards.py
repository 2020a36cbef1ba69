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
from data.models import ScoreRun, SelfInspection
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
    # Self-inspections as the /my page submits them: the trade's checklist, and as many
    # problems found as items ticked (the enterprise page showed "0 items, 1 problem").
    with sqlite_engine.connect() as conn:
        sis = conn.execute(select(SelfInspection.items, SelfInspection.hazards_found)).all()
    assert sis and all(items for items, _ in sis)
    assert all(found == sum(not i["ok"] for i in items) for items, found in sis)
    assert audit.verify(sqlite_engine) is None


def test_the_live_demo_finds_hazards_on_visits_and_most_are_rectified_and_closed(sqlite_engine, settings,
                                                                                monkeypatch):
    """Issue 16's demo, live: on visits the ingest saw end, inspectors record hazards (linked
    to the visit, with a photo, assigned with their deadline); most are rectified by the
    enterprise a few minutes later and then accepted and closed; the rest run on.  Every
    step is in the hazard's history and the audit chain."""
    import threading

    from sqlalchemy import insert

    from data import demo_hazards
    from data.demo_hazards import LiveDemoHazards
    from data.models import HazardRow, Visit
    from tests.citykit import write_small_city

    write_small_city(sqlite_engine)
    monkeypatch.setattr(demo_hazards, "LIVE_FIND_SHARE", 1.0)  # every ended visit finds one: known counts
    now = time.time()
    with sqlite_engine.begin() as conn:
        for k in range(6):
            ent, insp, unit = (("E1", "I1", "U1"), ("E2", "I2", "U2"))[k % 2]
            t = now - 300 + k * 10
            conn.execute(insert(Visit).values(enterprise_id=ent, inspector_id=insp, unit_id=unit, start_ts=t - 900,
                                              end_ts=t, stay_key=f"{insp}|{ent}|{t}", ended=True))
        conn.execute(insert(Visit).values(enterprise_id="E1", inspector_id="I1", unit_id="U1", start_ts=now - 60,
                                          end_ts=now - 1, stay_key="still-there", ended=False))  # not ended
    live = LiveDemoHazards(sqlite_engine, settings, threading.Event(), seed=3)
    live.since = now - 400
    assert live.step(now)["found"] == 6
    assert live.step(now + 1)["found"] == 0  # a visit is considered once
    store = HazardStore(sqlite_engine, settings)
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(HazardRow.id, HazardRow.visit_id, HazardRow.state, HazardRow.deadline,
                                   HazardRow.found_by)).all()
    assert len(rows) == 6 and len({r.visit_id for r in rows}) == 6
    assert all(r.state == "rectifying" and r.deadline > now and r.found_by == "inspector" for r in rows)
    assert all([p["stage"] for p in store.get(r.id)["photos"]] == ["finding"] for r in rows)
    # Minutes later the enterprises have rectified most; later still they are accepted and closed.
    rectified = live.step(now + 601)["rectified"]
    closed = live.step(now + 1300)["closed"]
    states = Counter(store.get(r.id)["state"] for r in rows)
    assert rectified == closed == states["closed"] and 3 <= closed <= 6, states
    assert states["rectifying"] == 6 - closed  # the ignored ones run on towards their deadline
    h = next(store.get(r.id) for r in rows if store.get(r.id)["state"] == "closed")
    assert [e["action"] for e in h["history"]][:1] == ["report"] and h["history"][-1]["to_state"] == "closed"
    assert audit.verify(sqlite_engine) is None
