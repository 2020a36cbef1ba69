"""A week of known history on the small city of tests/citykit, for the bulletin tests.

The week is 2026-W47 (Monday 2026-11-16 00:00 to Monday 2026-11-23 00:00, China
time).  What it holds, by hand:

* visits in the week: U1/I1 at E1 (day 0), U2/I2 at E1 (day 0, a duplicate of
  the first), U1/I1 at E2 (day 1), U1/I1 at E2 (day 3, a same-unit repeat);
  one visit the day before and one the Monday after, outside the week.
* gas alarms in the week: S1/ST1 day 2 (ack +30 s, arrive +600 s, assigned to
  I2 of U2), S2/ST2 day 4 (ack +90 s, never arrived), S1/ST1 day 5 (ack +60 s,
  arrive +300 s, I1 of U1); one the Sunday before, outside.
  ack p50 60 s, p95 87 s; arrive p50 450 s, p95 585 s.
* live duplicate alerts: one duplicate_visit (resolved "reassigned") and one
  approach_warning in the week.
* coverage (as of now): E1 (red) inspected a day ago, within; E2 (blue) never
  inspected, no planned date: overdue.  50 %.
"""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import insert, update

from data.models import Alert, AlertEvent, Enterprise, Visit
from geo.china import CHINA_TZ
from tests.citykit import write_small_city

WEEK = "2026-W47"
W0 = datetime(2026, 11, 16, tzinfo=CHINA_TZ).timestamp()
DAY = 86400.0
H = 3600.0

EXPECTED = {
    "visits": 4, "enterprises_visited": 2, "units_active": 2, "duplicates": 1, "same_unit_repeats": 1,
    "caught_live": 1, "warned_live": 1, "reassigned": 1,
    "alarms": 3, "acknowledged": 3, "arrived": 2,
    "ack_p50_s": 60.0, "ack_p95_s": 87.0, "arrive_p50_s": 450.0, "arrive_p95_s": 585.0,
    "coverage_pct": 50.0, "enterprises": 2, "within": 1, "overdue": 1, "overdue_red": 0, "overdue_blue": 1,
}

_n = iter(range(1, 10**9))


def _visit(conn, ent, insp, unit, start, **kw) -> int:
    return conn.execute(insert(Visit).values(
        enterprise_id=ent, inspector_id=insp, unit_id=unit, start_ts=start, end_ts=start + 900, ended=True,
        stay_key=f"{insp}|{ent}|{start}|{next(_n)}", **kw).returning(Visit.id)).scalar_one()


def _alert(conn, type_, subject, first_seen, street, *, sensor=None, assignee=None, outcome=None,
           events=()) -> int:
    aid = conn.execute(insert(Alert).values(
        type=type_, subject=subject, severity="critical", state="resolved" if outcome else "open",
        sensor_id=sensor, street_id=street, assignee_id=assignee, outcome=outcome, first_seen=first_seen,
        last_seen=first_seen + 60, created_at=first_seen, updated_at=first_seen + 60, version=1, count=1,
        escalation_level=0).returning(Alert.id)).scalar_one()
    prev = "open"
    for to_state, action, dt in events:
        conn.execute(insert(AlertEvent).values(alert_id=aid, from_state=prev, to_state=to_state, action=action,
                                               actor="disp1", at=first_seen + dt))
        prev = to_state
    return aid


def write_week(engine, now: float | None = None, *, city: bool = True) -> None:
    now = time.time() if now is None else now
    if city:
        write_small_city(engine)
    with engine.begin() as conn:
        first = _visit(conn, "E1", "I1", "U1", W0 + 10 * H)
        _visit(conn, "E1", "I2", "U2", W0 + 14 * H, duplicate_of=first)
        e2 = _visit(conn, "E2", "I1", "U1", W0 + DAY + 9 * H)
        _visit(conn, "E2", "I1", "U1", W0 + 3 * DAY + 9 * H, same_unit_repeat_of=e2)
        _visit(conn, "E1", "I2", "U2", W0 - 2 * H)  # Sunday before
        _visit(conn, "E2", "I2", "U2", W0 + 7 * DAY + H)  # Monday after
        gas = "gas_alarm"
        _alert(conn, gas, "sensor:S1", W0 + 2 * DAY + 9 * H, "ST1", sensor="S1", assignee="I2", outcome="leak_handled",
               events=[("acknowledged", "ack", 30), ("dispatched", "assign", 40), ("on_scene", "arrive", 600),
                       ("resolved", "resolve", 900)])
        _alert(conn, gas, "sensor:S2", W0 + 4 * DAY + 9 * H, "ST2", sensor="S2",
               events=[("acknowledged", "ack", 90)])
        _alert(conn, gas, "sensor:S1", W0 + 5 * DAY + 20 * H, "ST1", sensor="S1", assignee="I1", outcome="false_alarm",
               events=[("acknowledged", "ack", 60), ("dispatched", "assign", 70), ("on_scene", "arrive", 300),
                       ("resolved", "resolve", 400)])
        _alert(conn, gas, "sensor:S2", W0 - 3 * H, "ST2", sensor="S2", events=[("acknowledged", "ack", 5)])
        _alert(conn, "duplicate_visit", "enterprise:E1", W0 + 14 * H, "ST1", outcome="reassigned")
        _alert(conn, "approach_warning", "enterprise:E2", W0 + DAY + 8 * H, "ST2")
        conn.execute(update(Enterprise).where(Enterprise.id == "E1").values(last_inspected_at=now - DAY))
