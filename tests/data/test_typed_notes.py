"""A note a person typed is shown as typed, however it is worded.

The screens rewrite the system's own notes through the catalogue ("sent I2" reads 派遣 刘洋,
"takeover from I1 by I2" turns the entry into a takeover). A dispatcher's note worded like
one of them was shown as if the system had written it: an acknowledgement whose note was
"sent I2" read as a dispatch nobody made. Through the real store and SQL: the typed notes
are shown word for word, the system's own notes still through the catalogue."""

from __future__ import annotations

import time

from alerts.escalation import Ladder
from alerts.lifecycle import new_alert
from alerts.model import sensor_subject
from dashboard.pages.common import history_entries
from data.alert_store import AlertStore
from data.auth import Principal
from data.live import LiveState
from tests.citykit import write_small_city

DISPATCHER = Principal(7, "zhoumin", "dispatcher")
NAMES = {"I1": "王强", "I2": "刘洋"}


def test_typed_notes_that_look_like_the_systems_are_shown_as_typed(sqlite_engine, settings, redis_client):
    write_small_city(sqlite_engine)
    store = AlertStore(sqlite_engine, LiveState(redis_client, settings.redis_prefix), Ladder.from_settings(settings),
                       mqtt_prefix=settings.mqtt_prefix)
    now = time.time()
    alert, rec = new_alert("gas_alarm", sensor_subject("S1"), severity="critical", at=now, sensor_id="S1",
                           street_id="ST1", grid_id="G1", peak_lel=60.0, last_value_lel=60.0, details={})
    with sqlite_engine.begin() as conn:
        aid = store.insert(conn, alert, rec, now).id
    store.act(aid, "ack", DISPATCHER, note="sent I2", at=now + 10)  # typed: nobody was sent
    store.act(aid, "assign", DISPATCHER, assignee_id="I1", at=now + 20)  # the system's note: sent I1
    store.act(aid, "assign", DISPATCHER, assignee_id="I2", note="takeover from I1 by I2", at=now + 30)

    history = store.get(aid)["history"]
    assert [(h["action"], h["note"], h["note_typed"]) for h in history] == [
        ("open", history[0]["note"], False),
        ("ack", "sent I2", True),
        ("assign", "sent I1", False),
        ("reassign", "takeover from I1 by I2", True),
    ]
    shown = history_entries({"history": history}, "zh-CN", lambda i: NAMES.get(i, i), last=50)
    assert [(e["action"], e["note"]) for e in shown[1:]] == [
        ("确认", "sent I2"),  # as typed, not "派遣 刘洋"
        ("派遣", "派遣 王强"),  # the system's own note, through the catalogue
        ("改派", "takeover from I1 by I2"),  # a dispatcher's reassignment, not an officer's takeover
    ], shown
    en = history_entries({"history": history}, "en", lambda i: NAMES.get(i, i), last=50)
    assert en[1]["note"] == "sent I2" and en[2]["note"] == "sent 王强"
