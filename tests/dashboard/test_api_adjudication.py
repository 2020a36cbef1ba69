"""Online adjudication of a disputed hazard (线上研判) through the Flask test client, on SQLite
and PostgreSQL: officers of two units and a dispatcher discuss it, the admin's decision sets
its category, level and advice (in the hazard, its history and the audit chain), the thread
stays with the hazard and is closed; who may do what, and the 400/404/409 answers."""

from __future__ import annotations

import json

import pytest

from data import audit
from data.auth import create_token, create_user
from tests.citykit import write_small_city
from tests.dashboard import webkit

USERS = {"off1": "officer", "off3": "officer", "off2": "officer", "disp1": "dispatcher", "admin1": "admin",
         "wall1": "wall", "ent1": "enterprise"}


@pytest.fixture
def adj(settings, engine, redis_client):
    write_small_city(engine)
    webkit.make_users(engine)
    # A second unit's officer in the same street: inspector I2 belongs to unit U2.
    create_user(engine, "off3", webkit.PASSWORD, "officer", streets=["ST1"], grids=["G1"], inspector_id="I2")
    create_user(engine, "ent1", webkit.PASSWORD, "enterprise", enterprise_id="E1")
    tokens = {u: create_token(engine, role, u)[0] for u, role in USERS.items()}
    ctx, server, _app = webkit.build_web(settings.model_copy(update={"tiles": "none"}), engine, redis_client)
    c = server.test_client()
    r = call(c, tokens, "off1", "POST", "/hazards", json={"enterprise_id": "E1", "category": "SC01", "level": "general",
                                                          "description": "气瓶间距不足"})
    assert r.status_code == 201, r.get_json()
    yield c, tokens, r.get_json()["id"], engine
    ctx.feed.stop()


def call(client, tokens, who, method, path, **kw):
    return client.open(f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)


def test_units_discuss_and_the_admin_decides(adj):
    c, tk, hid, engine = adj
    assert call(c, tk, "disp1", "GET", f"/hazards/{hid}/discussion").get_json()["posts"] == []
    for who, text in (("off1", "应定为重大隐患"), ("off3", "间距满足规范，属一般隐患"), ("disp1", "请管理员研判")):
        r = call(c, tk, who, "POST", f"/hazards/{hid}/discussion", json={"comment": text})
        assert r.status_code == 201, r.get_json()
    th = r.get_json()
    assert [(p_["actor"], p_["unit_id"]) for p_ in th["posts"]] == [("off1", "U1"), ("off3", "U2"), ("disp1", None)]
    assert th["units"] == ["U1", "U2"] and th["decision"] is None
    assert th["posts"][1]["unit_name"] == "民治街道安监办"

    r = call(c, tk, "admin1", "POST", f"/hazards/{hid}/decision",
             json={"category": "SC02", "level": "major", "advice": "7日内增设防爆隔墙", "comment": "经研判定为重大"})
    assert r.status_code == 200, r.get_json()
    th = r.get_json()
    assert (th["hazard"]["category"], th["hazard"]["level"], th["hazard"]["advice"]) == ("SC02", "major", "7日内增设防爆隔墙")
    assert th["decision"]["decision"]["before"] == {"category": "SC01", "level": "general", "advice": None}

    h = call(c, tk, "disp1", "GET", f"/hazards/{hid}").get_json()
    assert (h["category"], h["level"], h["advice"]) == ("SC02", "major", "7日内增设防爆隔墙")
    assert h["history"][-1]["action"] == "adjudicate" and h["history"][-1]["actor"] == "admin1"

    # One decision: the thread is closed, and stays with the hazard (the enterprise reads it too).
    assert call(c, tk, "off1", "POST", f"/hazards/{hid}/discussion", json={"comment": "再议"}).status_code == 409
    r = call(c, tk, "admin1", "POST", f"/hazards/{hid}/decision", json={"category": "SC01", "level": "general",
                                                                         "advice": "x"})
    assert (r.status_code, r.get_json()["error"]) == (409, "already_decided")
    assert len(call(c, tk, "ent1", "GET", f"/hazards/{hid}/discussion").get_json()["posts"]) == 4

    acts = [(e.actor, e.action, json.loads(e.detail)) for e in audit.entries(engine)
            if e.action in ("hazard_discuss", "hazard_adjudicate")]
    assert [(a, b) for a, b, _ in acts] == [("off1", "hazard_discuss"), ("off3", "hazard_discuss"),
                                          ("disp1", "hazard_discuss"), ("admin1", "hazard_adjudicate")]
    assert acts[-1][2]["level"] == "major" and acts[-1][2]["before"]["level"] == "general"
    assert audit.verify(engine) is None


def test_who_may_and_bad_bodies(adj):
    c, tk, hid, engine = adj
    for who in ("disp1", "off1"):  # only the authorised role decides
        r = call(c, tk, who, "POST", f"/hazards/{hid}/decision", json={"category": "SC02", "level": "major",
                                                                       "advice": "x"})
        assert r.status_code == 403
    assert call(c, tk, "ent1", "POST", f"/hazards/{hid}/discussion", json={"comment": "不服"}).status_code == 403
    assert {e.actor for e in audit.entries(engine, action="access_denied")} == {"disp1", "off1", "ent1"}
    assert call(c, tk, "off2", "GET", f"/hazards/{hid}/discussion").status_code == 404  # another area
    assert call(c, tk, "off2", "POST", f"/hazards/{hid}/discussion", json={"comment": "x"}).status_code == 404
    assert call(c, tk, "admin1", "GET", "/hazards/999999/discussion").status_code == 404
    for body, code in (({}, "required"), ({"comment": 5}, "not_a_string"), ({"comment": "x" * 2001}, "too_long")):
        r = call(c, tk, "off1", "POST", f"/hazards/{hid}/discussion", json=body)
        assert (r.status_code, r.get_json()["error"]) == (400, code)
    for body, code in (({"category": "NOPE", "level": "major", "advice": "x"}, "unknown_category"),
                       ({"category": "SC02", "level": "huge", "advice": "x"}, "unknown_level"),
                       ({"category": "SC02", "level": "major"}, "required")):
        r = call(c, tk, "admin1", "POST", f"/hazards/{hid}/decision", json=body)
        assert (r.status_code, r.get_json()["error"]) == (400, code)
    h = call(c, tk, "admin1", "GET", f"/hazards/{hid}").get_json()
    assert (h["category"], h["level"], h["advice"]) == ("SC01", "general", None)
