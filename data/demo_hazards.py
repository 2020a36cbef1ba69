"""Hazards, self-inspections and 30 days of scores for the demo city.

Written once, when the demo city has no hazards yet (``ensure_demo_hazards``, called
by ``python app.py`` after the demo city).  Over the last ``days`` days, inspectors
found hazards at some enterprises (the item fits the trade: bottled gas in
restaurants, dust in polishing shops ...; one found by a safety-service agency's staff
is ``found_by`` ``agency``); the enterprises rectified them with
realistic delays, some were sent back once, most were accepted (on site or by
review) and closed, and some went past their deadline.  Most enterprises submit a
monthly self-inspection, some late (red light), and some report hazards of their own.
Each hazard's history is written as ``hazard_events``; the seeding itself is one
audit entry (``demo_hazards``).  Then the daily scores of those days are computed,
so trends exist from the first start.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import date, timedelta

import numpy as np
from sqlalchemy import Engine, func, insert, select

from data import audit
from data.demo_loop import every
from data.hazards_store import load_catalogue
from data.models import Enterprise, HazardEvent, HazardRow, Inspector, SelfInspection, Unit
from data.scores_store import china_day, release_lease, run_day, take_lease
from hazards.model import DAY_S

log = logging.getLogger(__name__)

# trade (Enterprise.industry) -> catalogue groups its hazards come from
TRADE_GROUPS = {
    "餐饮": ("small_catering",), "零售": ("small_shop",), "住宿": ("small_lodging",),
    "娱乐场所": ("small_entertainment",), "美容美发": ("small_shop",), "教育培训": ("place",),
    "危险化学品": ("hazmat", "process"), "化工": ("hazmat", "process"), "燃气": ("hazmat", "equipment"),
    "加油站": ("hazmat", "equipment"), "粉尘涉爆": ("process", "equipment"), "汽车维修": ("small_workshop",),
    "五金": ("small_workshop", "equipment"), "机械": ("equipment", "post"), "塑胶": ("equipment", "place"),
}
DEFAULT_GROUPS = ("equipment", "place", "post")
# Between two days of the background backfill, at least this long, and at least as long as
# the day took: the demo's ingest, alert engine and web share the process, and a day's
# scoring at demo scale takes a few seconds.
BACKFILL_PAUSE_S = 2.0


def ensure_demo_hazards(engine: Engine, settings, redis_client=None, now: float | None = None,
                        days: int = 30, score_days: int | None = None) -> bool:
    """Seed the demo's hazards of the last ``days`` days once, then the scores of those days
    (or of the last ``score_days``); True when it wrote them.

    With ``redis_client`` the scores are computed in a background thread holding the
    scoring lease (taken here, before the scheduler starts, which then skips its
    catch-up): at demo scale they take a while, and the demo need not wait."""
    with engine.connect() as conn:
        if conn.execute(select(func.count()).select_from(HazardRow)).scalar_one():
            return False
        ents = conn.execute(select(Enterprise.id, Enterprise.street_id, Enterprise.grid_id, Enterprise.lat,
                                   Enterprise.lon, Enterprise.industry).order_by(Enterprise.id)).all()
        staff = conn.execute(select(Inspector.id, Unit.kind).join(Unit, Unit.id == Inspector.unit_id)
                             .order_by(Inspector.id)).all()
        inspectors = [r.id for r in staff]
        agency_staff = {r.id for r in staff if r.kind == "third_party"}
    if not ents or not inspectors:
        return False
    t0 = time.perf_counter()
    now = time.time() if now is None else now
    rng = np.random.default_rng(settings.sim_seed + 16)
    cat = load_catalogue(settings.hazard_catalogue_file)
    groups = {g.code: [i for i in g.items] for g in cat.groups}
    deadline_d = settings.hazard_deadline_days()
    period = settings.self_inspection_period_d * DAY_S
    start = now - days * DAY_S

    # Self-inspections: 96% of enterprises monthly, the last one up to 32 days ago (a few
    # late: red light), three in four finding something (the others, for long: red light too).
    # Each one the checklist of the enterprise's trade, as the /my page submits it, with one
    # item ticked as a problem when it found something.
    si_rows = []
    for e in ents:
        if rng.random() < 0.96:
            checklist = [i.code for g in TRADE_GROUPS.get(e.industry or "", DEFAULT_GROUPS) for i in groups.get(g, [])]
            t = now - rng.uniform(0, 32) * DAY_S
            for _ in range(4):
                found = int(rng.random() < 0.75) if checklist else 0
                bad = checklist[int(rng.integers(0, len(checklist)))] if found else None
                si_rows.append({"enterprise_id": e.id, "submitted_at": float(t), "submitted_by": "demo",
                                "items": [{"code": c, "ok": c != bad, "note": ""} for c in checklist],
                                "hazards_found": found})
                t -= period
    hazard_rows, steps = [], []
    n_found = max(1, len(ents) // 25)  # a hazard at one enterprise in 25 during the days
    for k in rng.choice(len(ents), size=min(n_found, len(ents)), replace=False):
        e = ents[int(k)]
        codes = [i for g in TRADE_GROUPS.get(e.industry or "", DEFAULT_GROUPS) for i in groups.get(g, [])]
        item = codes[int(rng.integers(0, len(codes)))]
        level = "major" if item.level == "major" and rng.random() < 0.5 else "general"
        own = rng.random() < 0.2
        found_by = "enterprise" if own else "inspector"
        finder = e.id if own else inspectors[int(rng.integers(0, len(inspectors)))]
        if finder in agency_staff:  # a safety-service agency's staff found it (docs/agencies.md)
            found_by = "agency"
        actor = f"ent-{e.id}" if own else f"demo-{finder}"
        t = start + rng.uniform(0, days) * DAY_S
        h = {"enterprise_id": e.id, "street_id": e.street_id, "grid_id": e.grid_id, "category": item.code,
             "level": level, "state": "reported", "description": item.name, "found_by": found_by,
             "finder_id": finder, "visit_id": None, "lat": e.lat, "lon": e.lon, "deadline": None,
             "reported_at": t, "assigned_at": None, "rectified_at": None, "accepted_at": None,
             "accept_method": None, "closed_at": None, "send_backs": 0}
        ev = [(None, "reported", "report", actor, t, item.name, None)]
        # The life it had so far: assigned within hours, rectified within 0.2-1.4 x its time (some late).
        a = t + rng.uniform(0.5, 6) * 3600
        if a < now:
            deadline = a + deadline_d[level] * DAY_S
            h.update(state="rectifying", assigned_at=a, deadline=deadline)
            ev.append(("reported", "rectifying", "assign", "demo-officer", a, None, {"deadline": deadline}))
            # One in six is negligent and goes past its deadline (red light).
            r = a + (rng.uniform(1.5, 4) if rng.random() < 1 / 6 else rng.uniform(0.2, 1.2)) * deadline_d[level] * DAY_S
            if r < now:
                h.update(state="rectified", rectified_at=r)
                ev.append(("rectifying", "rectified", "rectify", f"ent-{e.id}", r, "已整改", {"photos": 1}))
                if rng.random() < 0.1 and r + DAY_S < now:
                    h.update(state="rectifying", send_backs=1)
                    ev.append(("rectified", "rectifying", "reject", "demo-officer", r + DAY_S, "整改不到位", None))
                    r = r + rng.uniform(1, 4) * DAY_S
                    if r < now:
                        h.update(state="rectified", rectified_at=r)
                        ev.append(("rectifying", "rectified", "rectify", f"ent-{e.id}", r, "已重新整改",
                                   {"photos": 1}))
                acc = r + rng.uniform(0.5, 3) * DAY_S
                if h["state"] == "rectified" and acc < now:
                    method = "on_site" if rng.random() < 0.6 else "review"
                    h.update(state="accepted", accepted_at=acc, accept_method=method)
                    ev.append(("rectified", "accepted", "accept", "demo-officer", acc, None, {"method": method}))
                    c = acc + rng.uniform(0, 1) * DAY_S
                    if c < now:
                        h.update(state="closed", closed_at=c)
                        ev.append(("accepted", "closed", "close", "demo-officer", c, "销号", None))
        hazard_rows.append(h)
        steps.append(ev)
    with engine.begin() as conn:
        if si_rows:
            conn.execute(insert(SelfInspection), si_rows)
        events = []
        for h, ev in zip(hazard_rows, steps):
            hid = conn.execute(insert(HazardRow).values(**h, updated_at=ev[-1][4], version=len(ev))
                               ).inserted_primary_key[0]
            events += [{"hazard_id": hid, "from_state": f, "to_state": to, "action": a, "actor": who, "at": at,
                        "note": note, "detail": detail} for f, to, a, who, at, note, detail in ev]
        conn.execute(insert(HazardEvent), events)
        audit.append(conn, "demo", "demo_hazards", None,
                     {"hazards": len(hazard_rows), "self_inspections": len(si_rows), "days": days}, at=now)
    log.info("demo hazards: %d hazards, %d self-inspections in %.1f s", len(hazard_rows), len(si_rows),
             time.perf_counter() - t0)
    today = date.fromisoformat(china_day(now))
    n_days = days if score_days is None else score_days
    # Newest first: yesterday's ranking (the wall's) is there within seconds of the start;
    # the older days of the trends fill in behind it.
    day_list = [(today - timedelta(days=k)).isoformat() for k in range(1, n_days + 1)]
    token = None if redis_client is None else take_lease(redis_client, settings.redis_prefix)

    def backfill():
        t1 = time.perf_counter()
        try:
            for d in day_list:
                t_day = time.perf_counter()
                run_day(engine, settings, d, now)
                if token is not None:
                    # The live demo shares this process (and its GIL, and SQLite's one writer):
                    # rest at least as long as the day took, so alarms never queue behind
                    # more than half of the process's time.
                    time.sleep(max(BACKFILL_PAUSE_S, time.perf_counter() - t_day))
            log.info("demo scores: %d days in %.1f s", len(day_list), time.perf_counter() - t1)
        except Exception:  # noqa: BLE001 - the demo runs on; the scheduler catches yesterday up
            log.exception("demo scores failed")
        finally:
            if token is not None:
                release_lease(redis_client, settings.redis_prefix, token)

    if token is None:
        backfill()
    else:
        threading.Thread(target=backfill, name="demo-scores", daemon=True).start()
    return True


# --- the live demo: hazards found on the simulated city's visits --------------------------

# Of the visits that end, the share on which the inspector records a hazard.
LIVE_FIND_SHARE = 0.12
# A live hazard is rectified (with a photo and a note) after this many real seconds, or
# never (LIVE_IGNORED_SHARE: it runs towards its deadline); accepted on review and closed
# after as long again.
LIVE_RECTIFY_AFTER_S = (120.0, 600.0)
LIVE_IGNORED_SHARE = 0.3
LIVE_EVERY_S = 20.0


def _photo(seed: int) -> bytes:
    """A small real JPEG (the uploads are decoded: a signature alone is refused)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (90 + seed % 120, 140, 90)).save(buf, "JPEG")
    return buf.getvalue()


class LiveDemoHazards(threading.Thread):
    """The demo's hazard loop while it runs (issue 16's demo): on some of the visits the
    ingest detects as they end, the inspector records a hazard that fits the trade, linked
    to the visit and assigned for rectification with its level's deadline; the enterprise
    rectifies most of them a few minutes later (a photo and a note), and they are accepted
    on review and closed; some are left to run towards their deadline.  Everything goes
    through ``HazardStore``, so each step is in the hazard's history and the audit chain
    (actors ``demo-<inspector>``, ``ent-<enterprise>``, ``demo-reviewer``)."""

    def __init__(self, engine: Engine, settings, stop: threading.Event, *, seed: int | None = None):
        super().__init__(name="demo-hazards", daemon=True)
        from data.hazards_store import HazardStore

        self.engine, self.settings, self.stop_event = engine, settings, stop
        self.store = HazardStore(engine, settings)
        self.rng = np.random.default_rng(settings.sim_seed + 17 if seed is None else seed)
        groups = {g.code: list(g.items) for g in self.store.catalogue.groups}
        self.items_for = lambda industry: [i for g in TRADE_GROUPS.get(industry or "", DEFAULT_GROUPS)
                                           for i in groups.get(g, [])]
        self.since: float | None = None  # visits ended after this are considered next
        self.due: list[tuple[float, int, str]] = []  # (when, hazard id, next action)

    def step(self, now: float) -> dict:
        """One pass: hazards on the visits ended since the last pass, then the due
        rectifications and acceptances.  Returns what it did, by kind."""
        from data.models import Visit

        done = {"found": 0, "rectified": 0, "closed": 0}
        since = now - LIVE_EVERY_S if self.since is None else self.since
        with self.engine.connect() as conn:
            ended = conn.execute(
                select(Visit.id, Visit.enterprise_id, Visit.inspector_id, Visit.end_ts, Enterprise.industry,
                       Enterprise.lat, Enterprise.lon)
                .join(Enterprise, Enterprise.id == Visit.enterprise_id)
                .where(Visit.ended.is_(True), Visit.end_ts > since, Visit.end_ts <= now)
                .order_by(Visit.end_ts, Visit.id)).all()
            seen = set(conn.execute(select(HazardRow.visit_id).where(
                HazardRow.visit_id.in_([v.id for v in ended] or [-1]))).scalars())
        self.since = max([since] + [v.end_ts for v in ended])
        for v in ended:
            if v.id in seen or self.rng.random() >= LIVE_FIND_SHARE:
                continue
            items = self.items_for(v.industry)
            item = items[int(self.rng.integers(0, len(items)))]
            level = "major" if item.level == "major" and self.rng.random() < 0.4 else "general"
            h = self.store.create(f"demo-{v.inspector_id}", enterprise_id=v.enterprise_id, category=item.code,
                                  level=level, found_by="inspector", finder_id=v.inspector_id, visit_id=v.id,
                                  lat=v.lat, lon=v.lon, description=item.name, now=now)
            self.store.add_photo(h["id"], "finding", _photo(h["id"]), f"demo-{v.inspector_id}", now=now)
            self.store.act(h["id"], "assign", f"demo-{v.inspector_id}", now=now)
            done["found"] += 1
            if self.rng.random() >= LIVE_IGNORED_SHARE:
                self.due.append((now + float(self.rng.uniform(*LIVE_RECTIFY_AFTER_S)), h["id"], "rectify"))
        keep = []
        for when, hid, action in sorted(self.due):
            if when > now:
                keep.append((when, hid, action))
                continue
            try:
                h = self.store.get(hid, now)
                if action == "rectify" and h and h["state"] == "rectifying":
                    ent = f"ent-{h['enterprise_id']}"
                    self.store.add_photo(hid, "rectification", _photo(hid + 7), ent, now=now)
                    self.store.act(hid, "rectify", ent, now=now, note="已按要求整改，附整改后照片")
                    done["rectified"] += 1
                    keep.append((now + float(self.rng.uniform(*LIVE_RECTIFY_AFTER_S)), hid, "accept"))
                elif action == "accept" and h and h["state"] == "rectified":
                    self.store.act(hid, "accept", "demo-reviewer", now=now, method="review")
                    self.store.act(hid, "close", "demo-reviewer", now=now)
                    done["closed"] += 1
            except Exception as e:  # noqa: BLE001 - someone acted on it meanwhile (a person in the demo)
                log.info("demo hazard %s: %s not applied: %s", hid, action, e)
        self.due = keep
        if any(done.values()):
            log.info("demo hazards: %s", done)
        return done

    def run(self) -> None:
        every(self.stop_event, LIVE_EVERY_S, self.step, "demo hazards")
