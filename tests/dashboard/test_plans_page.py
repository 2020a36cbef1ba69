"""The /plans page: the week grid and map, a collision merged in one click, a plan file's
row errors shown and nothing stored (page functions called as the callbacks call them)."""

from __future__ import annotations

import base64
import json
import time

from dashboard import ids
from dashboard.pages import plans as page
from data.plans_store import week_now
from plans.model import week_dates
from tests.dashboard.webkit import as_user, call_callback, find, key_of


def _csv(text: str) -> str:
    return "data:text/csv;base64," + base64.b64encode(text.encode()).decode()


def test_upload_conflict_and_merge(web):
    ctx, server, _app, users = web
    week = week_now(time.time())
    mon, wed = week_dates(week)[0], week_dates(week)[2]
    with as_user(server, users["dispatcher"], lang="en"):
        ok, shown = page.upload(_csv(f"enterprise_id,date,inspector_ids\nE1,{mon},I1\nE9,{mon},I1\n"), "p.csv", "U1",
                                week, users["dispatcher"], "en")
        assert not ok and "Row 3: unknown_enterprise" in json.dumps(shown.to_plotly_json(), default=str)
        assert page._api().store().list_plans(week) == []
        assert page.upload(_csv(f"enterprise_id,date,inspector_ids\nE1,{mon},I1\n"), "p.csv", "U1", week,
                           users["dispatcher"], "en")[0]
        assert page.upload(_csv(f"enterprise_id,date,inspector_ids\nE1,{wed},I2\n"), "p.csv", "U2", week,
                           users["dispatcher"], "en")[0]
        root = page.build(users["dispatcher"], "en")
        conflicts = find(root, ids.PLANS_CONFLICTS)
        text = json.dumps(conflicts.to_plotly_json(), default=str)
        assert "Same week" in text and "Merge into a joint inspection" in text
        cid = page._api().store().conflicts(week, time.time())[0]["id"]
        ok, message = page.resolve(cid, "joint", users["dispatcher"])
        assert ok and "Joint task" in message, message
        assert ok and page._api().store().joint_tasks(week)[0]["lead_unit_id"] == "U1"
        assert page.resolve(cid, "joint", users["dispatcher"])[0] is False  # once
        assert page.resolve(cid, "drop", users["officer"])[0] is False
        find(page.build(users["dispatcher"], "zh-CN"), ids.PLANS_MAP)
    pub = server.extensions.get("anjian_task_publisher")
    if pub is not None:
        pub.close()


def test_officer_uploads_only_for_own_unit(web):
    ctx, server, _app, users = web
    week = week_now(time.time())
    off = users["officer2"]  # street ST2 (no street office there), inspector I2 of U2: owns U2 only
    with as_user(server, off):
        ok, shown = page.upload(_csv(f"enterprise_id,date\nE1,{week_dates(week)[1]}\n"), "p.csv", "U1", week,
                                off, "zh-CN")
        assert not ok
        assert page._api().store().list_plans(week) == []
        assert page.upload(_csv(f"enterprise_id,date\nE1,{week_dates(week)[1]}\n"), "p.csv", "U2", week,
                           off, "zh-CN")[0]
        assert [u["value"] for u in find(page.upload_panel(off, "en"), ids.PLANS_UNIT).options] == ["U2"]


def test_the_gate_refuses_a_wall_resolving(web, client_as):
    _ctx, server, _app, _users = web
    key = key_of(server, "plans", "plans_resolve")
    body = {"output": key, "outputs": None, "inputs": [[]], "state": [{"id": ids.PLANS_CHANGED, "property": "data",
                                                                     "value": 0}], "changedPropIds": []}
    resp = call_callback(client_as("wall"), body)
    assert resp.status_code in (401, 403)


def test_draw_and_verify_on_the_page(web):
    _ctx, server, _app, users = web
    with as_user(server, users["dispatcher"], lang="en"):
        did, shown = page.run_draw("公告 2026-12-01", 1, users["dispatcher"], "en")
        text = json.dumps(shown.to_plotly_json(), default=str, ensure_ascii=False)
        assert did and "Pool hash" in text
        # The pick by the enterprise's and the inspectors' names, not their ids.
        pick = page._api().store().get_draw(did)["picks"][0]
        name = _ctx.registry().enterprise_names[pick["enterprise_id"]]
        assert name in text and f'{pick["enterprise_id"]} ·' not in text
        assert not any(i in text.split("Pool hash")[-1].split("·")[-1] for i in pick["inspector_ids"]), text
        assert "verifies" in page.verify_draw(did, "en").children
        assert "No such draw" in page.verify_draw(999, "en").children
        assert page.run_draw("", 1, users["dispatcher"], "en")[0] is None
        assert page.run_draw("x", 1, users["officer"], "en")[0] is None
