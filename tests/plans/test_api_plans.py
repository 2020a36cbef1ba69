"""The plans API (dashboard/api_plans.py) through Flask's test client, on SQLite and
PostgreSQL, real Redis and the real test broker: plan files, conflicts and joint tasks,
the draw and its verification, plan against actual, roles and audit."""

from __future__ import annotations

import io
import json
import queue
import time
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import insert, select, update

from dashboard.context import WebContext
from dashboard.server import create_server
from data import audit
from data.auth import create_token, create_user
from data.models import DrawRow, Enterprise, Inspector, PlanItemRow, Unit, Visit
from plans.model import day_start_ts
from tests.citykit import write_small_city
from tests.conftest import TEST_MQTT_URL

WEEK = "2026-W49"  # 2026-11-30 .. 2026-12-06
MON, WED, FRI = "2026-11-30", "2026-12-02", "2026-12-04"


def _more_city(engine):
    with engine.begin() as conn:
        conn.execute(insert(Unit), [{"id": "U3", "name": "安全服务公司", "kind": "third_party", "street_id": None}])
        conn.execute(insert(Inspector), [
            {"id": "I3", "name": "陈静", "unit_id": "U3"}, {"id": "I4", "name": "赵磊", "unit_id": "U1"},
            {"id": "I5", "name": "孙丽", "unit_id": "U2"}])
        conn.execute(insert(Enterprise), [
            {"id": f"E{k}", "name": f"企业{k}", "credit_code": f"9144030000000000{k:02d}", "lat": 22.62 + k * 1e-4,
             "lon": 114.02, "industry": "制造", "risk": ("red", "orange", "yellow", "blue")[k % 4],
             "street_id": "ST1", "grid_id": "G1"} for k in range(3, 23)])


@pytest.fixture
def api(settings, engine, redis_client):
    write_small_city(engine)
    _more_city(engine)
    ctx = WebContext(settings, engine, redis_client, TEST_MQTT_URL)
    app = create_server(ctx)
    app.config["TESTING"] = True
    client = app.test_client()
    tokens = {r: create_token(engine, r)[0] for r in ("dispatcher", "admin", "wall")}
    create_user(engine, "office-st1", None, "officer", streets=["ST1"], grids=["G1"], inspector_id="I2")
    tokens["officer"] = create_token(engine, "officer", username="office-st1")[0]

    def call(method, path, role="dispatcher", **kw):
        return client.open(path, method=method, headers={"Authorization": f"Bearer {tokens[role]}"}, **kw)

    yield call
    pub = app.extensions.get("anjian_task_publisher")
    if pub is not None:
        pub.close()
    ctx.feed.stop()


def _xlsx(rows: list[dict]) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(rows).to_excel(buf, index=False, engine="openpyxl")
    return buf.getvalue()


def test_a_file_past_the_row_limit_is_refused(api):
    """A 1 MB XLSX of 200,000 rows took 8.7 s of a web worker's CPU before it was refused
    (the hostile-input sweep); now the reader stops one row past MAX_ROWS."""
    from data.plans_store import MAX_ROWS

    rows = [{"enterprise_id": f"E{k}", "date": MON} for k in range(MAX_ROWS * 2)]
    for name, data in (("big.xlsx", _xlsx(rows)), ("big.csv", "enterprise_id,date\n".encode()
                                                    + "".join(f"E{k},{MON}\n" for k in range(MAX_ROWS * 2)).encode())):
        r = api("POST", "/api/v1/plans/import", data={"unit_id": "U1", "week": WEEK, "file": (io.BytesIO(data), name)},
                content_type="multipart/form-data")
        assert r.status_code == 400 and r.get_json()["errors"][0]["reason"] == "too_many_rows", name


def _plan(api, unit, items, role="dispatcher"):
    r = api("POST", "/api/v1/plans", role=role, json={"unit_id": unit, "week": WEEK, "items": items})
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


def test_xlsx_with_one_bad_row_imports_nothing_and_names_the_row(api, engine):
    rows = [{"enterprise_id": "E1", "date": MON, "inspector_ids": "I1", "purpose": "enforcement"},
            {"credit_code": "914403000000000004", "date": WED, "inspector_ids": "I1,I4"},
            {"enterprise_name": "企业5", "date": "2026-12-09", "inspector_ids": "I1"},  # outside the week
            {"enterprise_name": "企业6", "date": FRI, "check_items": "消防;燃气"}]
    data = {"unit_id": "U1", "week": WEEK, "file": (io.BytesIO(_xlsx(rows)), "plan.xlsx")}
    r = api("POST", "/api/v1/plans/import", data=data, content_type="multipart/form-data")
    assert r.status_code == 400
    assert r.get_json()["errors"] == [{"row": 4, "reason": "date_outside_week", "detail": f"2026-12-09 is not in {WEEK}"}]
    assert api("GET", f"/api/v1/plans?week={WEEK}").get_json() == []
    # several errors at once, and an inspector of another unit
    bad = [dict(rows[0], inspector_ids="I2"), rows[1], rows[1], {"enterprise_name": "没有这家", "date": MON}]
    r = api("POST", "/api/v1/plans/import", data={"unit_id": "U1", "week": WEEK,
                                                  "file": (io.BytesIO(_xlsx(bad)), "plan.xlsx")},
            content_type="multipart/form-data")
    assert [(e["row"], e["reason"]) for e in r.get_json()["errors"]] == [
        (2, "inspector_other_unit"), (4, "duplicate_row"), (5, "unknown_enterprise")]
    # the fixed file goes in, CSV too
    rows[2]["date"] = FRI
    r = api("POST", "/api/v1/plans/import", data={"unit_id": "U1", "week": WEEK,
                                                  "file": (io.BytesIO(_xlsx(rows)), "plan.xlsx")},
            content_type="multipart/form-data")
    assert r.status_code == 201, r.get_data(as_text=True)
    plan = r.get_json()
    assert plan["state"] == "draft" and plan["unit_id"] == "U1" and plan["week"] == WEEK
    assert [(i["enterprise_id"], i["date"], i["inspector_ids"]) for i in plan["items"]] == [
        ("E1", MON, ["I1"]), ("E4", WED, ["I1", "I4"]), ("E5", FRI, ["I1"]), ("E6", FRI, [])]
    csv = "enterprise_id,date,inspector_ids,purpose\nE7,2026-12-01,I5,service\n".encode()
    r = api("POST", "/api/v1/plans/import", role="officer", data={"unit_id": "U2", "week": WEEK,
                                                                  "file": (io.BytesIO(csv), "plan.csv")},
            content_type="multipart/form-data")
    assert r.status_code == 201 and r.get_json()["items"][0]["purpose"] == "service"
    actions = [e.action for e in audit.entries(engine)]
    assert actions.count("plan_create") == 2


def test_roles_and_lifecycle(api, engine):
    # a street office plans only for its own unit
    r = api("POST", "/api/v1/plans", role="officer", json={"unit_id": "U1", "week": WEEK, "items": []})
    assert r.status_code == 403
    plan = _plan(api, "U2", [{"enterprise_id": "E3", "date": MON, "inspector_ids": ["I2"]}], role="officer")
    assert api("POST", f"/api/v1/plans/{plan['id']}/approve", role="officer").status_code == 403
    assert api("POST", f"/api/v1/plans/{plan['id']}/approve").status_code == 409  # a draft is not approved
    assert api("POST", f"/api/v1/plans/{plan['id']}/submit", role="officer").get_json()["state"] == "submitted"
    # a submitted plan cannot be rewritten
    r = api("POST", "/api/v1/plans", role="officer", json={"unit_id": "U2", "week": WEEK, "items": []})
    assert r.status_code == 409
    assert api("POST", f"/api/v1/plans/{plan['id']}/approve").get_json()["state"] == "approved"
    assert api("POST", f"/api/v1/plans/{plan['id']}/submit").status_code == 409
    other = _plan(api, "U1", [{"enterprise_id": "E4", "date": MON}])
    assert api("GET", f"/api/v1/plans/{other['id']}", role="officer").status_code == 404
    assert [p["unit_id"] for p in api("GET", f"/api/v1/plans?week={WEEK}", role="officer").get_json()] == ["U2"]
    assert api("POST", "/api/v1/plans", role="wall", json={}).status_code == 403
    r = api("POST", "/api/v1/plans", json={"unit_id": "U1", "week": "2026-49", "items": []})
    assert r.status_code == 400
    acts = [(e.action, e.target) for e in audit.entries(engine)]
    assert ("plan_submit", f"plan:{plan['id']}") in acts and ("plan_approve", f"plan:{plan['id']}") in acts
    assert ("access_denied", "/api/v1/plans") in acts


class _Subscriber:
    def __init__(self, topic: str):
        parts = urlsplit(TEST_MQTT_URL)
        self.q: queue.Queue = queue.Queue()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{uuid.uuid4().hex[:8]}")
        subscribed = queue.Queue()
        self.c.on_message = lambda c, u, m: self.q.put((m.topic, m.qos, json.loads(m.payload)))
        self.c.on_subscribe = lambda *a: subscribed.put(1)
        self.c.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.c.connect(parts.hostname, parts.port or 1883)
        self.c.loop_start()
        subscribed.get(timeout=10)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_same_week_conflict_merges_into_one_joint_task_that_reaches_the_inspectors(api, engine, settings):
    a = _plan(api, "U2", [{"enterprise_id": "E1", "date": MON, "inspector_ids": ["I2"], "check_items": ["燃气"]}])
    b = _plan(api, "U1", [{"enterprise_id": "E1", "date": WED, "inspector_ids": ["I1", "I4"]},
                          {"enterprise_id": "E4", "date": WED, "inspector_ids": ["I1"]}])
    c = _plan(api, "U3", [{"enterprise_id": "E1", "date": FRI, "inspector_ids": ["I3"],
                           "check_items": ["消防", "燃气", "用电"], "purpose": "service"}])
    conflicts = api("GET", f"/api/v1/plans/conflicts?week={WEEK}").get_json()
    same = [x for x in conflicts if x["kind"] == "same_week"]
    e1_items = sorted([a["items"][0]["id"], b["items"][0]["id"], c["items"][0]["id"]])
    assert [(x["enterprise_id"], x["item_ids"], x["suggestion"], x["resolved"]) for x in same] == [
        ("E1", e1_items, "joint", False)]
    # the conflict list is stable across re-runs
    assert api("GET", f"/api/v1/plans/conflicts?week={WEEK}").get_json() == conflicts
    sub = _Subscriber(f"{settings.mqtt_prefix}/v1/inspectors/+/tasks")
    try:
        r = api("POST", f"/api/v1/plans/conflicts/{same[0]['id']}/resolve", json={"action": "joint"})
        assert r.status_code == 200, r.get_data(as_text=True)
        out = r.get_json()
        assert out["resolved"] and out["resolution"] == "joint" and out["joint_task_id"]
        tasks = api("GET", f"/api/v1/joint-tasks?week={WEEK}").get_json()
        assert len(tasks) == 1
        t = tasks[0]
        # the rule: district section U1 leads (level), then street office U2, then the agency U3
        assert (t["id"], t["enterprise_id"], t["lead_unit_id"], t["unit_ids"], t["date"]) == (
            out["joint_task_id"], "E1", "U1", ["U1", "U2", "U3"], WED)
        assert t["inspector_ids"] == ["I1", "I4", "I2", "I3"] and t["item_ids"] == e1_items
        got = {}
        deadline = time.monotonic() + 10
        while len(got) < 4 and time.monotonic() < deadline:
            try:
                topic, qos, payload = sub.q.get(timeout=0.5)
            except queue.Empty:
                continue
            got[topic.split("/")[-2]] = (qos, payload)
        assert sorted(got) == ["I1", "I2", "I3", "I4"]
        qos, p = got["I3"]
        assert qos == 1
        assert set(p) == {"task_id", "kind", "enterprise_id", "name", "lat", "lon", "date", "lead_unit_id",
                          "unit_ids", "issued_at"}
        assert (p["task_id"], p["kind"], p["enterprise_id"], p["date"], p["lead_unit_id"], p["unit_ids"]) == (
            f"joint-{t['id']}", "joint", "E1", WED, "U1", ["U1", "U2", "U3"])
        assert p["issued_at"].endswith("+08:00") and p["name"] == "深圳市龙华区老王餐饮店"
    finally:
        sub.close()
    # resolved once only; the audit chain holds the resolution
    assert api("POST", f"/api/v1/plans/conflicts/{same[0]['id']}/resolve", json={"action": "drop"}).status_code == 409
    assert api("POST", f"/api/v1/plans/conflicts/{same[0]['id']}/resolve", role="officer",
               json={"action": "drop"}).status_code == 403
    entry = [e for e in audit.entries(engine) if e.action == "conflict_resolve"][0]
    assert json.loads(entry.detail)["joint_task_id"] == t["id"] and entry.actor.startswith("api-dispatcher")
    assert audit.verify(engine) is None
    with engine.connect() as conn:
        states = dict(conn.execute(select(PlanItemRow.id, PlanItemRow.state)).all())
    assert [states[i] for i in e1_items] == ["joint"] * 3
    # the conflict stays listed, resolved, after the next check
    again = [x for x in api("GET", f"/api/v1/plans/conflicts?week={WEEK}").get_json() if x["kind"] == "same_week"]
    assert [(x["id"], x["resolved"]) for x in again] == [(same[0]["id"], True)]
    bad = api("POST", f"/api/v1/plans/conflicts/{same[0]['id']}/resolve", json={"action": "merge", "item_ids": "x"})
    assert bad.status_code == 400 and len(bad.get_json()["errors"]) == 2


def test_recent_visit_conflict_and_shift(api, engine):
    plan = _plan(api, "U1", [{"enterprise_id": "E2", "date": MON, "inspector_ids": ["I1"]}])
    with engine.begin() as conn:
        t = day_start_ts("2026-11-27") + 10 * 3600
        conn.execute(insert(Visit).values(enterprise_id="E2", inspector_id="I2", unit_id="U2", start_ts=t,
                                          end_ts=t + 900, stay_key=f"I2|E2|{t}", ended=True))
    cs = api("GET", f"/api/v1/plans/conflicts?week={WEEK}").get_json()
    assert [(c["kind"], c["item_ids"], c["suggestion"], c["detail"]["shift_to"]) for c in cs] == [
        ("recently_visited", [plan["items"][0]["id"]], "shift", "2026-12-05")]
    r = api("POST", f"/api/v1/plans/conflicts/{cs[0]['id']}/resolve", json={"action": "shift"})
    assert r.status_code == 200 and r.get_json()["resolution"] == "shift"
    assert api("GET", f"/api/v1/plans/{plan['id']}").get_json()["items"][0]["date"] == "2026-12-05"


def test_draw_verifies_and_a_changed_input_fails(api, engine):
    body = {"count": 6, "seed": "2026-12-01 龙华区公告 0815", "pool": {"street": "ST1", "exclude_inspected_days": 30},
            "inspectors_per_enterprise": 2}
    r = api("POST", "/api/v1/draws", json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    d = r.get_json()
    assert d["seed"] == body["seed"] and len(d["pool_hash"]) == 64 and len(d["picks"]) == 6
    units = {"I1": "U1", "I4": "U1", "I2": "U2", "I5": "U2", "I3": "U3"}
    for p in d["picks"]:
        assert len(p["inspector_ids"]) == 2 and units[p["inspector_ids"][0]] != units[p["inspector_ids"][1]]
    assert api("GET", f"/api/v1/draws/{d['id']}", role="wall").get_json()["picks"] == d["picks"]
    assert api("GET", f"/api/v1/draws/{d['id']}/verify", role="wall").get_json()["ok"] is True
    # the same inputs give the same draw
    assert api("POST", "/api/v1/draws", json=body).get_json()["picks"] == d["picks"]
    entry = [e for e in audit.entries(engine) if e.action == "draw"][0]
    assert json.loads(entry.detail)["seed"] == body["seed"] and json.loads(entry.detail)["pool_hash"] == d["pool_hash"]
    with engine.begin() as conn:
        conn.execute(update(DrawRow).where(DrawRow.id == d["id"]).values(seed=body["seed"] + "x"))
    v = api("GET", f"/api/v1/draws/{d['id']}/verify").get_json()
    assert v["ok"] is False and v["picks_ok"] is False
    with engine.begin() as conn:
        pool = json.loads(conn.execute(select(DrawRow.pool).where(DrawRow.id == d["id"])).scalar())
        pool["enterprises"] = pool["enterprises"][1:]
        conn.execute(update(DrawRow).where(DrawRow.id == d["id"]).values(seed=body["seed"], pool=json.dumps(pool)))
    v = api("GET", f"/api/v1/draws/{d['id']}/verify").get_json()
    assert v["ok"] is False and v["pool_hash_ok"] is False
    bad = api("POST", "/api/v1/draws", json={"count": 0, "seed": "", "pool": {"risk": "purple"}})
    assert bad.status_code == 400 and {e["field"] for e in bad.get_json()["errors"]} == {"count", "seed", "pool.risk"}
    assert api("POST", "/api/v1/draws", role="officer", json=body).status_code == 403
    assert api("GET", "/api/v1/draws/9999/verify").status_code == 404


def test_each_drawn_inspector_receives_the_drawn_enterprise_as_a_task(api, engine, settings):
    """A draw sends its result to the phones: every (enterprise, drawn inspector) pair is one
    QoS 1 task message of kind ``draw`` on that inspector's tasks topic, counted one by one."""
    body = {"count": 4, "seed": "2026-12-04 公告 task", "pool": {"street": "ST1"}, "inspectors_per_enterprise": 2}
    sub = _Subscriber(f"{settings.mqtt_prefix}/v1/inspectors/+/tasks")
    try:
        r = api("POST", "/api/v1/draws", json=body)
        assert r.status_code == 201, r.get_data(as_text=True)
        d = r.get_json()
        expected = sorted((iid, p["enterprise_id"]) for p in d["picks"] for iid in p["inspector_ids"])
        assert len(expected) == 8 and d["tasks_sent"] == 8
        got = []
        deadline = time.monotonic() + 10
        while len(got) < len(expected) and time.monotonic() < deadline:
            try:
                topic, qos, payload = sub.q.get(timeout=0.5)
            except queue.Empty:
                continue
            assert qos == 1
            got.append((topic.split("/")[-2], payload))
        time.sleep(0.3)  # one more would be a duplicate
        while not sub.q.empty():
            topic, _qos, payload = sub.q.get()
            got.append((topic.split("/")[-2], payload))
    finally:
        sub.close()
    assert sorted((iid, p["enterprise_id"]) for iid, p in got) == expected
    units = {"I1": "U1", "I4": "U1", "I2": "U2", "I5": "U2", "I3": "U3"}
    with engine.connect() as conn:
        names = dict(conn.execute(select(Enterprise.id, Enterprise.name)).all())
    for iid, p in got:
        pick = next(x for x in d["picks"] if x["enterprise_id"] == p["enterprise_id"])
        assert p["kind"] == "draw" and p["task_id"] == f"draw-{d['id']}-{p['enterprise_id']}"
        assert p["unit_ids"] == [units[i] for i in pick["inspector_ids"]] and p["lead_unit_id"] == p["unit_ids"][0]
        assert p["name"] == names[p["enterprise_id"]] and p["issued_at"].endswith("+08:00")
        assert p["date"] == time.strftime("%Y-%m-%d", time.gmtime(d["created_at"] + 8 * 3600))


def test_plan_against_actual(api, engine):
    plan = _plan(api, "U1", [{"enterprise_id": "E1", "date": MON, "inspector_ids": ["I1"]},
                             {"enterprise_id": "E5", "date": WED, "inspector_ids": ["I4"]}])
    t = day_start_ts(MON) + 9 * 3600
    with engine.begin() as conn:
        for k, (eid, iid, unit) in enumerate([("E1", "I1", "U1"), ("E6", "I4", "U1")]):
            conn.execute(insert(Visit).values(enterprise_id=eid, inspector_id=iid, unit_id=unit, start_ts=t + k * 3600,
                                              end_ts=t + k * 3600 + 900, stay_key=f"{iid}|{eid}|{t}", ended=True))
        ids = dict(conn.execute(select(Visit.enterprise_id, Visit.id)).all())
    out = api("GET", f"/api/v1/plans/actual?week={WEEK}&unit=U1").get_json()
    e1, e5 = plan["items"][0]["id"], plan["items"][1]["id"]
    assert out["items"] == [{"item_id": e1, "done": True, "visit_id": ids["E1"]},
                            {"item_id": e5, "done": False, "visit_id": None}]
    assert out["unplanned_visits"] == [ids["E6"]]
    assert out["completion_pct"] == 50.0
    assert api("GET", f"/api/v1/plans/actual?week={WEEK}&unit=U1", role="officer").status_code == 404


def test_an_inspectors_tasks_of_the_day(api, engine):
    """GET /tasks: what the officer's phone lists for a day: approved plan items naming the
    inspector and the joint tasks they join, done when a visit matched them (the same
    matching as /plans/actual)."""
    mine = _plan(api, "U2", [{"enterprise_id": "E3", "date": WED, "inspector_ids": ["I2"], "purpose": "enforcement"},
                             {"enterprise_id": "E7", "date": WED, "inspector_ids": ["I2", "I5"]},
                             {"enterprise_id": "E8", "date": FRI, "inspector_ids": ["I2"]},
                             {"enterprise_id": "E9", "date": WED, "inspector_ids": ["I5"]},
                             {"enterprise_id": "E1", "date": WED, "inspector_ids": ["I2"]}])
    # U1 plans E1 too: merged into a joint task that U1 leads and I2 joins.
    _plan(api, "U1", [{"enterprise_id": "E1", "date": WED, "inspector_ids": ["I1"]}])
    same = [c for c in api("GET", f"/api/v1/plans/conflicts?week={WEEK}").get_json() if c["kind"] == "same_week"]
    joint_id = api("POST", f"/api/v1/plans/conflicts/{same[0]['id']}/resolve",
                   json={"action": "joint"}).get_json()["joint_task_id"]
    # The plan is not approved yet: only the joint task (sent when it was merged) is on the phone.
    assert [x["task_id"] for x in api("GET", f"/api/v1/tasks?date={WED}", role="officer").get_json()] == [
        f"joint-{joint_id}"]
    assert api("POST", f"/api/v1/plans/{mine['id']}/submit").status_code == 200
    assert api("POST", f"/api/v1/plans/{mine['id']}/approve").status_code == 200
    # A visit by I2's unit at E7 on Wednesday does that item.
    t = day_start_ts(WED) + 10 * 3600
    with engine.begin() as conn:
        conn.execute(insert(Visit).values(enterprise_id="E7", inspector_id="I5", unit_id="U2", start_ts=t,
                                          end_ts=t + 900, stay_key=f"I5|E7|{t}", ended=True))
        vid = conn.execute(select(Visit.id).where(Visit.enterprise_id == "E7")).scalar_one()
    got = api("GET", f"/api/v1/tasks?date={WED}", role="officer").get_json()
    by_id = {x["task_id"]: x for x in got}
    item_of = {i["enterprise_id"]: i["id"] for i in mine["items"]}
    e3, e7 = item_of["E3"], item_of["E7"]
    assert sorted(by_id) == sorted([f"item-{e3}", f"item-{e7}", f"joint-{joint_id}"])
    j = by_id[f"joint-{joint_id}"]
    assert (j["kind"], j["enterprise_id"], j["lead_unit_id"], j["unit_ids"], j["done"]) == (
        "joint", "E1", "U1", ["U1", "U2"], False)
    assert (by_id[f"item-{e7}"]["done"], by_id[f"item-{e7}"]["visit_id"]) == (True, vid)
    assert (by_id[f"item-{e3}"]["done"], by_id[f"item-{e3}"]["purpose"]) == (False, "enforcement")
    assert by_id[f"item-{e3}"]["name"] == "企业3" and by_id[f"item-{e3}"]["kind"] == "planned"
    assert [x["task_id"] for x in got][-1] == f"item-{e7}"  # what is left comes first
    # The same answer as plan against actual for the week.
    actual = {i["item_id"]: i for i in api("GET", f"/api/v1/plans/actual?week={WEEK}").get_json()["items"]}
    assert actual[e7]["done"] and not actual[e3]["done"]
    # Friday has the one other task; a dispatcher asks for an inspector by id.
    fri = api("GET", f"/api/v1/tasks?date={FRI}&inspector=I2").get_json()
    assert [x["task_id"] for x in fri] == [f"item-{item_of['E8']}"]
    # Refusals: another inspector for an officer, no inspector for a dispatcher, a bad date, the wall.
    assert api("GET", f"/api/v1/tasks?date={WED}&inspector=I5", role="officer").status_code == 404
    assert api("GET", f"/api/v1/tasks?date={WED}").status_code == 400
    assert api("GET", "/api/v1/tasks?date=2026-13-01&inspector=I2").status_code == 400
    assert api("GET", f"/api/v1/tasks?date={WED}&inspector=I2", role="wall").status_code == 403


def test_targets_show_their_parts(api, engine):
    now = time.time()
    with engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == "E1").values(next_due_at=now - 40 * 86400))
    out = api("GET", "/api/v1/targets?limit=3").get_json()
    assert out[0]["enterprise_id"] == "E1" and out[0]["rank"] == 1
    assert out[0]["parts"]["risk"] == 40.0 and out[0]["parts"]["overdue"] == pytest.approx(10.0, abs=0.01)
    assert set(out[0]["parts"]) == {"risk", "overdue", "alarms", "duplicates", "hazards", "red_light"}
    assert len(out) == 3


def test_open_hazards_and_red_light_raise_an_enterprise_in_the_targets(api, engine):
    """Issue 16: an open hazard adds 5 points, red-light status 15, with its reasons shown;
    an enterprise that self-inspected on time is not red-light."""
    from data.models import SelfInspection

    r = api("POST", "/api/v1/hazards", json={"enterprise_id": "E2", "category": "EQ01", "level": "general"})
    assert r.status_code == 201, r.get_data(as_text=True)
    with engine.begin() as conn:
        conn.execute(insert(SelfInspection).values(enterprise_id="E5", submitted_at=time.time(), submitted_by="ent",
                                                   items=[], hazards_found=0))
    by = {x["enterprise_id"]: x for x in api("GET", "/api/v1/targets?limit=100").get_json()}
    assert (by["E2"]["open_hazards"], by["E2"]["parts"]["hazards"]) == (1, 5.0)
    assert by["E3"]["parts"]["hazards"] == 0.0
    assert (by["E5"]["parts"]["red_light"], by["E5"]["red_light_reasons"]) == (0.0, [])
    assert by["E3"]["parts"]["red_light"] == 15.0 and "no_self_inspection" in by["E3"]["red_light_reasons"]
    # The parts add up to the score, and the list is ranked by it.
    for x in by.values():
        assert x["score"] == pytest.approx(sum(x["parts"].values()), abs=0.01)
    ranked = api("GET", "/api/v1/targets?limit=100").get_json()
    assert [x["score"] for x in ranked] == sorted((x["score"] for x in ranked), reverse=True)
