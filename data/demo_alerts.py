"""The demo's duty dispatcher: the alarms and detector notices nobody took are answered.

The simulator opens a gas alarm about once a real minute (``sim_alarm_rate_per_h`` 6 a
simulated hour, at ``sim_speedup`` 10), a detector fault or an offline detector about
every 90 s, and an offline-inspector alert whenever a simulated phone falls silent.  In a city people answer them; in the demo nobody did, so they piled up: a
screen tour counted 36-38 open gas alarms, and the wall's takeover went round all of
them.  Here a duty dispatcher of the simulated city (an account of its own,
``demo-duty``, "值班调度（模拟）", with no password: nobody logs in as it) answers what
nobody else has, a few real minutes late, so that a person trying the demo has the time
to take an alarm first and sees the escalation ladder fire meanwhile:

- an alert still unacknowledged ``ACK_AFTER_S`` after it opened is acknowledged; a gas
  alarm is sent to an inspector of its street's office in the same step;
- ``RESOLVE_AFTER_S`` later, once its reading is back to normal, it is resolved with an
  outcome that fits (a critical gas alarm ``leak_handled``, a warning ``false_alarm``;
  a fault ``repaired``; an offline detector ``back_online``); an offline inspector's
  phone, ``back_online`` if it was heard again, else ``off_duty`` (the simulated
  inspectors' shifts end: 16 such alerts opened in the demo's first five minutes).

An alert a person acted on meanwhile (its state or its assignee not what the duty
dispatcher left) is left to that person.  Every step goes through ``AlertStore.act``,
so it is in the alert's history and the audit chain like any dispatcher's.  Only the
all-in-one demo runs it (``python app.py``, beside the simulator and
``demo_hazards.LiveDemoHazards``), and ``ANJIAN_SIM_DUTY_DISPATCHER=false`` turns it off.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine

from alerts.model import GAS_ALARM, INSPECTOR_OFFLINE, SENSOR_FAULT, SENSOR_OFFLINE
from data.auth import Principal
from data.demo_loop import every

log = logging.getLogger(__name__)

USERNAME = "demo-duty"
DISPLAY_NAME = "值班调度（模拟）"
EVERY_S = 10.0
# Real seconds: a person has this long to take an alert first.
ACK_AFTER_S = (120.0, 300.0)
RESOLVE_AFTER_S = (300.0, 900.0)
# An alert whose reading is not back to normal yet is looked at again this much later,
# and left alone after GIVE_UP_S.
RETRY_S = 60.0
GIVE_UP_S = 3600.0
OUTCOME = {SENSOR_FAULT: "repaired", SENSOR_OFFLINE: "back_online", INSPECTOR_OFFLINE: "back_online"}
ANSWERED = (GAS_ALARM, SENSOR_FAULT, SENSOR_OFFLINE, INSPECTOR_OFFLINE)


def gas_outcome(alert: dict) -> str:
    return "leak_handled" if alert.get("severity") == "critical" else "false_alarm"


class DutyDispatcher(threading.Thread):
    def __init__(self, engine: Engine, store, stop: threading.Event, *, seed: int = 0):
        super().__init__(name="demo-duty", daemon=True)
        from data.auth import create_user

        self.engine, self.store, self.stop_event = engine, store, stop
        self.rng = np.random.default_rng(seed)
        self.me: Principal = create_user(engine, USERNAME, None, "dispatcher", display_name=DISPLAY_NAME)
        # alert id -> [when, next action, what it was left as: (state, assignee), given up at]
        self.due: dict[int, list] = {}
        self._officers: dict[str, list[str]] | None = None

    def officers(self, street_id: str | None) -> list[str]:
        """The inspectors of the street's office (every street office's, without a street)."""
        if self._officers is None:
            from data.models import Inspector, Unit

            with self.engine.connect() as conn:
                rows = conn.execute(select(Inspector.id, Unit.street_id).join(Unit, Unit.id == Inspector.unit_id)
                                    .where(Unit.kind == "street_office").order_by(Inspector.id)).all()
            self._officers = {}
            for iid, sid in rows:
                self._officers.setdefault(sid, []).append(iid)
        return self._officers.get(street_id) or [i for ids in self._officers.values() for i in ids]

    def step(self, now: float) -> dict:
        """One pass: new unanswered alerts are given their time; what is due is done.
        Returns what it did, by kind."""
        done = {"acknowledged": 0, "resolved": 0, "left": 0}
        active = {a["id"]: a for a in self.store.list(state="open", limit=2000) if a.get("type") in ANSWERED}
        for aid, a in active.items():
            if aid not in self.due and a.get("state") == "open":
                opened = float(a.get("first_seen_ts") or now)
                self.due[aid] = [opened + float(self.rng.uniform(*ACK_AFTER_S)), "ack", ("open", None), now + GIVE_UP_S]
        for aid in sorted(self.due, key=lambda k: self.due[k][0]):
            when, action, left_as, give_up = self.due[aid]
            a = active.get(aid)
            if when > now:
                continue
            if a is None or (a.get("state"), a.get("assignee_id")) != left_as or now > give_up:
                del self.due[aid]  # handled by a person, or gone, or never back to normal
                done["left"] += a is not None
                continue
            try:
                if action == "ack":
                    if a["type"] == GAS_ALARM and (officers := self.officers(a.get("street_id"))):
                        who = officers[int(self.rng.integers(0, len(officers)))]
                        after = self.store.act(aid, "assign", self.me, assignee_id=who, at=now)
                    else:
                        after = self.store.act(aid, "ack", self.me, at=now)
                    done["acknowledged"] += 1
                    self.due[aid] = [now + float(self.rng.uniform(*RESOLVE_AFTER_S)), "resolve",
                                     (after["state"], after.get("assignee_id")), give_up]
                elif a.get("returned_to_normal_at") is None and a["type"] != INSPECTOR_OFFLINE:
                    self.due[aid][0] = now + RETRY_S  # still alarming, still offline: not yet
                else:
                    # An inspector still silent was rung up: gone off duty.
                    outcome = (gas_outcome(a) if a["type"] == GAS_ALARM
                               else "off_duty" if a.get("returned_to_normal_at") is None else OUTCOME[a["type"]])
                    self.store.act(aid, "resolve", self.me, outcome=outcome, at=now)
                    done["resolved"] += 1
                    del self.due[aid]
            except Exception as e:  # noqa: BLE001 - a person acted on it at the same moment
                log.info("demo duty dispatcher: alert %s: %s not applied: %s", aid, action, e)
                self.due.pop(aid, None)
        if done["acknowledged"] or done["resolved"]:
            log.info("demo duty dispatcher: %s", done)
        return done

    def run(self) -> None:
        every(self.stop_event, EVERY_S, self.step, "demo duty dispatcher")
