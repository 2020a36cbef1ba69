"""The dispatcher console, the officer view, the enterprise profile and replay, as plain
functions against the real alert store."""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser

import pytest
from dash.exceptions import PreventUpdate
from sqlalchemy import select

from dashboard import ids
from dashboard.pages import dispatch, enterprise, officer, replay
from dashboard.pages.common import history_entries
from data import audit
from data.alert_store import Conflict
from data.auth import create_user
from data.models import Alert
from tests.dashboard import webkit


def text_of(component) -> str:
    if isinstance(component, str):  # a panel built as HTML (dashboard/markup.py)
        return component
    return json.dumps(component, default=lambda c: c.to_plotly_json(), ensure_ascii=False)


def state_of(ctx, alert_id):
    with ctx.engine.connect() as conn:
        return conn.execute(select(Alert.state, Alert.assignee_id, Alert.outcome).where(Alert.id == alert_id)).one()


@pytest.fixture
def city_live(web):
    ctx, server, _app, users = web
    webkit.feed_city(ctx.engine, ctx.live, time.time(), n_inspectors=2, visits=2, duplicates=1)
    return ctx, server, users


# --- dispatch -----------------------------------------------------------------------------------


def test_queue_is_sorted_by_severity_then_age(city_live):
    ctx, server, users = city_live
    now = time.time()
    warn = webkit.open_alert(ctx, sensor_id="S2", severity="warning", lel=25, at=now - 600)
    crit = webkit.open_alert(ctx, sensor_id="S1", severity="critical", at=now - 10)
    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_tick(1, 0, None, {})
    text = text_of(out["queue"])
    assert text.index(f"queue-row-{crit}") < text.index(f"queue-row-{warn}")
    assert "深圳市龙华区老王餐饮店" in text
    # Nothing changed: 204.
    with webkit.as_user(server, users["dispatcher"]), pytest.raises(PreventUpdate):
        dispatch.dispatch_tick(2, 0, None, out["state"])


def test_a_long_queue_shows_the_most_urgent_and_counts_the_rest(city_live):
    ctx, server, users = city_live
    with webkit.as_user(server, users["dispatcher"]):
        from dashboard.pages.common import city

        alerts = [{"id": k, "type": "sensor_offline", "severity": "warning", "state": "open", "subject": f"s{k}",
                   "first_seen_ts": time.time() - k} for k in range(dispatch.QUEUE_MAX + 7)]
        table = dispatch.queue_table(alerts, ctx.registry(), city(), "zh-CN", time.time(), None)
    text = text_of(table)
    assert text.count('"queue-row-') == dispatch.QUEUE_MAX
    assert "queue-row-0" in text and f"queue-row-{dispatch.QUEUE_MAX}\"" not in text
    assert "另有 7 条" in text


def test_ack_assign_resolve_in_one_or_two_clicks(city_live):
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    with webkit.as_user(server, users["dispatcher"]):
        ok, msg = dispatch.perform({"type": ids.ALERT_ACTION_TYPE, "alert": alert_id, "action": "ack"}, users["dispatcher"])
        assert ok, msg
        assert state_of(ctx, alert_id).state == "acknowledged"
        # A second, stale click on the same button: a clear message, no change.
        ok, msg = dispatch.perform({"type": ids.ALERT_ACTION_TYPE, "alert": alert_id, "action": "ack"}, users["dispatcher"])
        assert not ok and "已确认" in msg
        # Assign: the detail panel offers the nearest inspectors; one click sends one.
        detail = dispatch.dispatch_detail(alert_id, "fp", 0)
        text = text_of(detail["detail"])
        assert ids.ASSIGN_TYPE in text
        nearest = ctx.alerts.nearest(alert_id)
        assert nearest and detail["marks"]["features"]
        ok, msg = dispatch.perform({"type": ids.ASSIGN_TYPE, "alert": alert_id, "inspector": nearest[0]["id"]},
                                   users["dispatcher"])
        assert ok, msg
        assert tuple(state_of(ctx, alert_id))[:2] == ("dispatched", nearest[0]["id"])
        ok, msg = dispatch.perform({"type": ids.ALERT_ACTION_TYPE, "alert": alert_id, "action": "resolve",
                                    "outcome": "false_alarm"}, users["dispatcher"])
        assert ok, msg
    assert tuple(state_of(ctx, alert_id)) == ("resolved", nearest[0]["id"], "false_alarm")


class _Buttons(HTMLParser):
    """The buttons of a panel built as HTML: (store, value, text) each."""

    def __init__(self):
        super().__init__()
        self.found, self._open = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "button" and "data-aj-store" in a:
            self._open = [a["data-aj-store"], json.loads(a["data-aj-value"]), ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag == "button" and self._open is not None:
            self.found.append(tuple(self._open))
            self._open = None


def buttons_of(markup: str) -> list[tuple]:
    p = _Buttons()
    p.feed(markup)
    return p.found


def test_the_queue_buttons_carry_commands_the_server_carries_out(city_live):
    """What a click on the queue's ack button sends (its store and value, as the
    page's script puts them) acknowledges the alert through dispatch_act."""
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_tick(1, 0, None, {})
        found = buttons_of(out["queue"])
        ack = [(store, value) for store, value, text in found if text == "确认"]
        assert ack == [(ids.DISPATCH_COMMAND, {"type": ids.ALERT_ACTION_TYPE, "alert": alert_id, "action": "ack",
                                               "outcome": ""})]
        # The row's subject and its "assign…" select the alert (no server action).
        assert (ids.DISPATCH_SELECTED, alert_id) in [(store, value) for store, value, _ in found]
        res = dispatch.dispatch_act({**ack[0][1], "n": 1}, 0)
    assert res["done"] == 1 and "aj-ok" in res["cls"]
    assert state_of(ctx, alert_id).state == "acknowledged"


def test_names_in_the_html_panels_are_escaped(city_live):
    ctx, server, users = city_live
    # Names come from imports: an enterprise the registry does not know yet is
    # shown by the alert's subject, here a hostile one.
    alerts = [{"id": 7, "type": "gas_alarm", "severity": "critical", "state": "open", "enterprise_id": "E-new",
               "subject": '<img src=x onerror="alert(1)">饭店', "first_seen_ts": time.time()}]
    with webkit.as_user(server, users["dispatcher"]):
        from dashboard.pages.common import city

        markup = str(dispatch.queue_table(alerts, ctx.registry(), city(), "zh-CN", time.time(), None))
    assert "<img" not in markup
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;饭店" in markup


def test_actions_the_console_never_offers_are_refused(city_live):
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    with webkit.as_user(server, users["dispatcher"]):
        ok, _ = dispatch.perform({"type": ids.ALERT_ACTION_TYPE, "alert": alert_id, "action": "escalate"},
                                 users["dispatcher"])
    assert not ok and state_of(ctx, alert_id).state == "open"


def test_duplicate_panel_reassigns_in_one_click(city_live):
    ctx, server, users = city_live
    import time

    from sqlalchemy import select, update

    from data.models import DispatchTask, Enterprise

    # E1 (street ST1, like I2's street office) is overdue: that is where I2 should go instead.
    with ctx.engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == "E1").values(next_due_at=time.time() - 86400))
    alert_id = webkit.open_alert(ctx, "duplicate_visit", enterprise_id="E2", inspector_id="I2", severity="info",
                                 lel=None)
    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_tick(1, 0, None, {})
        assert ids.REASSIGN_TYPE in text_of(out["duplicates"])
        ok, msg = dispatch.perform({"type": ids.REASSIGN_TYPE, "alert": alert_id}, users["dispatcher"])
    assert ok, msg
    st = state_of(ctx, alert_id)
    assert st.state == "resolved" and st.outcome == "reassigned"
    with ctx.engine.connect() as conn:
        task = conn.execute(select(DispatchTask.inspector_id, DispatchTask.enterprise_id, DispatchTask.kind)
                            .where(DispatchTask.alert_id == alert_id)).one()
    assert tuple(task) == ("I2", "E1", "reassign")


def test_enterprise_search_by_name_and_credit_code(city_live):
    ctx, server, users = city_live
    from sqlalchemy import update

    from data.models import Enterprise

    with ctx.engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == "E2").values(credit_code="91440300MA5FXXXX1X"))
    with webkit.as_user(server, users["dispatcher"]):
        by_name = text_of(dispatch.dispatch_search("华丰"))
        by_code = text_of(dispatch.dispatch_search("91440300ma5fxxxx1x"))
        nothing = text_of(dispatch.dispatch_search("100%_"))
    assert "/enterprise/E2" in by_name and "/enterprise/E2" in by_code
    assert "没有找到企业" in nothing


def test_inspector_list_shows_status_and_current_task(city_live):
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    ctx.alerts.act(alert_id, "assign", users["dispatcher"], assignee_id="I1")
    with webkit.as_user(server, users["dispatcher"]):
        out = dispatch.dispatch_inspectors(1, None, {}, None)
    text = text_of(out["inspector_list"])
    assert "执行任务" in text and "燃气报警: 深圳市龙华区老王餐饮店" in text


# --- officer ---------------------------------------------------------------------------------------


def test_officer_sees_only_the_alarms_of_own_grids(city_live):
    ctx, server, users = city_live
    mine = webkit.open_alert(ctx, sensor_id="S1")  # grid G1
    theirs = webkit.open_alert(ctx, sensor_id="S2")  # grid G2
    with webkit.as_user(server, users["officer"]):
        assert [a["id"] for a in officer.my_alarms(users["officer"])] == [mine]
        out = officer.officer_tick(1, 0, None, {})
    text = text_of(out["list"])
    assert "老王餐饮店" in text and "华丰电子" not in text
    assert out["route"] and len(out["route"]) == 2  # from I1's last fix to the alarm
    with webkit.as_user(server, users["officer2"]):
        assert [a["id"] for a in officer.my_alarms(users["officer2"])] == [theirs]


def test_officer_buttons_walk_the_lifecycle(city_live):
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    me = users["officer"]
    with webkit.as_user(server, me):
        for action, expect in (("ack", "acknowledged"), ("go", "dispatched"), ("arrive", "on_scene")):
            ok, msg, _pending = officer.perform({"alert": alert_id, "action": action}, me)
            assert ok, (action, msg)
            assert state_of(ctx, alert_id).state == expect
            if action == "go":  # what the officer did, not the store's step (a tour read 已执行：派遣)
                assert msg.startswith("已执行：出发 · "), msg
        assert state_of(ctx, alert_id).assignee_id == "I1"  # "on my way" assigns the alarm to the officer
        # An outcome asks first: nothing changes until it is confirmed.
        ok, msg, pending = officer.perform({"alert": alert_id, "action": "resolve", "outcome": "leak_handled"}, me)
        assert ok is None and pending == {"alert": alert_id, "action": "resolve", "outcome": "leak_handled"}
        assert state_of(ctx, alert_id).state == "on_scene"
        out = officer.officer_tick(2, 1, None, {}, pending=pending)
        assert "确定以“泄漏已处置”结束此报警吗？" in text_of(out["detail"])
        ok, msg, pending = officer.perform({"alert": alert_id, "action": "confirm"}, me, pending)
    assert ok, msg
    assert pending is None
    assert tuple(state_of(ctx, alert_id)) == ("resolved", "I1", "leak_handled")


def test_taking_over_an_alarm_asks_first_names_both_and_is_audited(city_live):
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    ctx.alerts.act(alert_id, "assign", users["dispatcher"], assignee_id="I2")  # the dispatcher sent 刘洋
    me = users["officer"]  # linked to I1, 王强
    with webkit.as_user(server, me):
        out = officer.officer_tick(1, 0, None, {})
        card = text_of(out["list"])
        assert "出发人员：" in card and "刘洋" in card  # the card names who is on the way
        detail = text_of(out["detail"])
        # The takeover button names the other officer, the name kept whole on one line.
        assert '"接管（现由 ", {"props": {"children": "刘洋", "className": "aj-nowrap aj-data"}' in detail
        assert "当前报警：" in detail  # the buttons say which alarm they act on
        # Arrival is the sent officer's to report: not offered to me, and refused if sent.
        arrive = next(b for b in out["detail"][0].children[1].children if b.id["action"] == "arrive")
        assert arrive.disabled
        ok, msg, _ = officer.perform({"alert": alert_id, "action": "arrive"}, me)
        assert ok is False and "刘洋" in msg and state_of(ctx, alert_id).state == "dispatched"
        ok, msg, pending = officer.perform({"alert": alert_id, "action": "go"}, me)
        assert ok is None and pending["action"] == "takeover"
        assert state_of(ctx, alert_id).assignee_id == "I2"  # nothing taken yet
        out = officer.officer_tick(2, 0, None, {}, pending=pending)
        assert "此报警已派给 刘洋。确定改由 王强 接管吗？" in text_of(out["detail"])
        ok, msg, _ = officer.perform({"alert": alert_id, "action": "cancel"}, me, pending)
        assert state_of(ctx, alert_id).assignee_id == "I2"
        ok, msg, _ = officer.perform({"alert": alert_id, "action": "confirm"}, me, pending)
    assert ok, msg
    assert state_of(ctx, alert_id).assignee_id == "I1"
    taken = audit.entries(ctx.engine, action="alert.takeover")
    assert len(taken) == 1 and taken[0].actor == "off1" and json.loads(taken[0].detail) == {"from": "I2", "to": "I1"}
    # Through the API, without the confirmation, an officer gets a 409, not a silent takeover.
    ctx.alerts.act(alert_id, "assign", users["dispatcher"], assignee_id="I2")
    with pytest.raises(Conflict):
        ctx.alerts.act(alert_id, "assign", me)
    assert state_of(ctx, alert_id).assignee_id == "I2"
    # Confirmed with a note typed, it is still recorded as a takeover: the history reads
    # 接管 with the note after the system's words, and the audit names both (with the note
    # alone it read 改派, as a dispatcher's second send).
    ctx.alerts.act(alert_id, "assign", me, take_over=True, note="我离得更近")
    assert state_of(ctx, alert_id).assignee_id == "I1"
    last = history_entries(ctx.alerts.get(alert_id), "zh-CN", {"I1": "王强", "I2": "刘洋"}.get)[-1]
    assert (last["action"], last["note"]) == ("接管", "从 刘洋 接管给 王强：我离得更近"), last
    taken = audit.entries(ctx.engine, action="alert.takeover")
    assert len(taken) == 2 and json.loads(taken[-1].detail) == {"from": "I2", "to": "I1"}


def test_an_account_without_an_inspector_cannot_take_an_alarm(city_live):
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    p = create_user(ctx.engine, "off9", webkit.PASSWORD, "officer", streets=["ST1"], grids=["G1"])
    with pytest.raises(PermissionError):
        ctx.alerts.act(alert_id, "assign", p)  # refused on the server, whatever the screen shows
    with webkit.as_user(server, p):
        out = officer.officer_tick(1, 0, None, {})
        assert "账号未绑定执法终端，不能接警出发" in text_of(out["detail"])
        # Said once: the line under the buttons, where the distance goes, said "账号未绑定执法终端"
        # again (a tour at 375 px read it twice on one screen).
        assert text_of(out["detail"]).count("账号未绑定执法终端") == 1
        ok, msg, _ = officer.perform({"alert": alert_id, "action": "go"}, p)
    assert not ok
    assert state_of(ctx, alert_id).assignee_id is None


def test_officer_cannot_act_on_another_grid(city_live):
    ctx, server, users = city_live
    theirs = webkit.open_alert(ctx, sensor_id="S2")
    with webkit.as_user(server, users["officer"]):
        ok, msg, _ = officer.perform({"alert": theirs, "action": "ack"}, users["officer"])
    assert not ok and msg == "无权执行此操作。"
    assert state_of(ctx, theirs).state == "open"
    denied = audit.entries(ctx.engine, action="access_denied")
    assert denied and denied[-1].actor == "off1" and denied[-1].target == f"alert:{theirs}"


def test_officer_view_when_there_is_nothing(city_live):
    _ctx, server, users = city_live
    with webkit.as_user(server, users["officer"], "en"):
        out = officer.officer_tick(1, 0, None, {})
    assert "No open gas alarms in your grids" in text_of(out["list"])


# --- enterprise profile and replay -------------------------------------------------------------------


def test_enterprise_profile(city_live):
    ctx, server, users = city_live
    webkit.open_alert(ctx, sensor_id="S1")
    with webkit.as_user(server, users["dispatcher"]):
        page = text_of(enterprise.layout(enterprise_id="E1"))
    assert "深圳市龙华区老王餐饮店" in page and "S1" in page and "燃气报警" in page
    assert "aj-risk-red" in page and "enterprise-visits-table" in page
    assert "民治街道 / 第1网格" in page  # the grid without the street its name repeats
    assert "重复（见 #1）" in page  # the duplicate visit names the visit it repeats
    with webkit.as_user(server, users["officer2"]):  # E1 is in G1, not officer2's G2
        outside = text_of(enterprise.layout(enterprise_id="E1"))
        missing = text_of(enterprise.layout(enterprise_id="NOPE"))
    # The logout form's random CSRF token is blanked first: a token that happened to
    # contain "E1" once made the two differ, and one containing "S1" once looked like
    # the sensor's id leaking.
    def blank_csrf(text: str) -> str:
        return re.sub(r'"value": "[A-Za-z0-9_-]+", "type": "hidden", "name": "csrf"', '"value": ""', text)

    outside, missing = blank_csrf(outside), blank_csrf(missing)
    assert '"type": "hidden", "name": "csrf"' not in outside, "the token was not blanked"
    # Honest about the scope, and the same for a firm elsewhere and no firm at all: nothing leaks.
    assert "您的辖区内没有这家企业" in outside and "老王" not in outside and "S1" not in outside
    assert outside.replace("E1", "") == missing.replace("NOPE", "")
    with webkit.as_user(server, users["dispatcher"]):
        assert "没有这家企业" in text_of(enterprise.layout(enterprise_id="NOPE"))


def test_the_enterprise_facts_agree_with_its_visits(city_live):
    from sqlalchemy import delete, update

    from data.models import Enterprise, Visit

    ctx, server, users = city_live
    with ctx.engine.begin() as conn:  # inspected before the system: a registered date, no visit rows
        conn.execute(delete(Visit).where(Visit.enterprise_id == "E2"))
        conn.execute(update(Enterprise).where(Enterprise.id == "E2").values(last_inspected_at=time.time() - 5 * 86400))
    with webkit.as_user(server, users["dispatcher"]):
        page = text_of(enterprise.layout(enterprise_id="E2"))
    assert "\"暂无检查记录\"" not in page  # not "no inspections" next to a last inspection date
    assert "本系统暂无检查记录；上次检查" in page and "（登记数据）" in page


def test_replay_loads_a_day(city_live):
    ctx, server, users = city_live
    with webkit.as_user(server, users["dispatcher"]):
        out = replay.replay_load("I1", None)
        empty = replay.replay_load("I1", "2001-01-01")
    assert len(out["track"]["t"]) == 20 and len(out["line"]) == 20 and out["max"] > 500
    assert "20 个定位点" in out["summary"]
    assert empty["track"] is None and empty["summary"] == "当天没有轨迹"


def test_dispatcher_sees_todays_plan_and_the_unplanned_visits(city_live):
    """Today's plan items (every unit) with how many a visit has done, and the day's
    unplanned visits newest first, named (inspector, unit, enterprise)."""
    from sqlalchemy import func, insert, select

    from dashboard.api_plans import store as plans_store
    from data.models import Enterprise, Inspector, Visit
    from plans.model import day_start_ts, local_date, week_of

    ctx, server, users = city_live
    now = time.time()
    today = local_date(now)
    with ctx.engine.connect() as conn:
        iid, unit = conn.execute(select(Inspector.id, Inspector.unit_id).order_by(Inspector.id)).first()
        ents = [e for (e,) in conn.execute(select(Visit.enterprise_id).distinct())]
        every = [e for (e,) in conn.execute(select(Enterprise.id).order_by(Enterprise.id))]
    with webkit.as_user(server, users["dispatcher"]):
        store = plans_store()
        others = ["EPLAN1", "EPLAN2"]  # two enterprises nobody has visited
        with ctx.engine.begin() as conn:
            e1 = conn.execute(select(Enterprise.__table__).where(Enterprise.id == every[0])).one()._asdict()
            conn.execute(insert(Enterprise), [{**e1, "id": e, "name": f"计划企业{k}", "credit_code": f"91440300PLAN{k:06d}"}
                                              for k, e in enumerate(others)])
        plan = store.save_plan(unit, week_of(today), [
            (1, {"enterprise_id": others[0], "date": today, "inspector_ids": [iid]}),
            (2, {"enterprise_id": others[1], "date": today, "inspector_ids": [iid]})], "test", now)
        store.act_on_plan(plan["id"], "submit", "test", now)
        store.act_on_plan(plan["id"], "approve", "test", now)
        # One planned item is visited; one more visit elsewhere is unplanned (the newest).
        with ctx.engine.begin() as conn:
            t0 = now - 120
            conn.execute(insert(Visit).values(enterprise_id=others[0], inspector_id=iid, unit_id=unit, start_ts=t0,
                                              end_ts=t0 + 60, stay_key=f"{iid}|{others[0]}|{t0}", ended=True))
            conn.execute(insert(Visit).values(enterprise_id=ents[0], inspector_id=iid, unit_id=unit, start_ts=now - 30,
                                              end_ts=now, stay_key=f"{iid}|{ents[0]}|{now}", ended=False))
            newest = conn.execute(select(func.max(Visit.id))).scalar_one()
            all_today = conn.execute(select(func.count()).select_from(Visit).where(
                Visit.start_ts >= day_start_ts(today))).scalar_one()
        out = text_of(dispatch.plan_today("zh-CN"))
        unplanned = all_today - 1  # every visit of the day but the one that did a planned item
        assert f"计划 2 项，已完成 1 项；计划外检查 {unplanned} 次" in out, out
        assert f'"data-visit": "{newest}"' in out.split("aj-plan-unplanned")[1]  # the newest listed first
        name = ctx.registry().inspectors[iid][0]
        assert name in out
        assert "2 planned done" not in out
        en = text_of(dispatch.plan_today("en"))
        assert f"1 of 2 planned done; {unplanned} unplanned visits" in en


def test_closing_someone_elses_alarm_on_the_phone_says_whose_it_is(city_live):
    """The third tour: an officer's outcome on an alarm sent to another inspector asked
    only "close as …?", not that it was someone else's."""
    ctx, server, users = city_live
    alert_id = webkit.open_alert(ctx, sensor_id="S1")
    ctx.alerts.act(alert_id, "ack", users["dispatcher"])
    ctx.alerts.act(alert_id, "assign", users["dispatcher"], assignee_id="I2")  # 刘洋
    me = users["officer"]
    with webkit.as_user(server, me):
        ok, _msg, pending = officer.perform({"alert": alert_id, "action": "resolve", "outcome": "false_alarm"}, me)
        assert ok is None and pending["action"] == "resolve"
        out = officer.officer_tick(2, 1, None, {}, pending=pending)
    assert "此报警已派给 刘洋。确定以“误报”结束此报警吗？" in text_of(out["detail"])
    # The history names who the dispatcher sent.
    history = ctx.alerts.get(alert_id)["history"]
    assert [h["note"] for h in history if h["action"] == "assign"] == ["sent I2"]


def test_the_enterprise_page_names_the_neighbours_due_within_the_viewers_area(city_live):
    """The enterprise page's "due nearby": the enterprises within 500 m that are overdue
    or soon due, linked to their pages, in the viewer's language; an officer sees only
    those of their own area."""
    from sqlalchemy import insert, update

    from data.models import Enterprise

    ctx, server, users = city_live
    m = 1 / 111_320
    lat, lon = 22.620, 114.020  # E1 (grid G1)
    with ctx.engine.begin() as conn:
        conn.execute(insert(Enterprise), [
            {"id": "N1", "name": "深圳市龙华区隔壁小吃店", "lat": lat + 150 * m, "lon": lon, "risk": "orange",
             "street_id": "ST1", "grid_id": "G1", "last_inspected_at": time.time() - 100 * 86400},
            {"id": "N2", "name": "深圳市别区五金店", "lat": lat - 200 * m, "lon": lon, "risk": "red",
             "street_id": "ST2", "grid_id": "G2", "last_inspected_at": time.time() - 45 * 86400},
        ])
        conn.execute(update(Enterprise).where(Enterprise.id == "E2").values(last_inspected_at=time.time()))
    with webkit.as_user(server, users["dispatcher"]):
        page = text_of(enterprise.layout(enterprise_id="E1"))
    with webkit.as_user(server, users["officer"]):  # grid G1
        scoped = text_of(enterprise.layout(enterprise_id="E1"))
    with webkit.as_user(server, users["dispatcher"], lang="en"):
        english = text_of(enterprise.layout(enterprise_id="E1"))
    assert "附近待检企业（500 米内）" in page
    assert "/enterprise/N1" in page and "逾期 10 天" in page and "/enterprise/N2" in page and "逾期 15 天" in page
    assert "150 米" in page and "200 米" in page
    assert "/enterprise/N1" in scoped and "/enterprise/N2" not in scoped and "五金店" not in scoped
    assert "Due nearby (within 500 m)" in english and "10 days overdue" in english
