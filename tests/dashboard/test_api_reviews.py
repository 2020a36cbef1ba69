"""The remote-review routes through the Flask test client, on SQLite and PostgreSQL:
streams of a visit, time-coded comments and verdicts, who may post (403, audited), what
a bad body answers (400 with a reason code), and every accepted post in the audit chain."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import insert

from data import audit
from data.auth import create_token
from data.models import Visit
from data.streams import StreamStore
from geo.types import StreamNotice
from hazards.review import REASONS, check_review
from tests.citykit import write_small_city
from tests.dashboard import webkit

ROLES = {"officer": ("officer", "off1"), "officer2": ("officer", "off2"), "dispatcher": ("dispatcher", "disp1"),
         "wall": ("wall", "wall1"), "admin": ("admin", "admin1")}


@pytest.fixture
def rv(settings, engine, redis_client):
    """(client, tokens by role, visit id with a live stream, that stream's id)."""
    write_small_city(engine)
    webkit.make_users(engine)
    tokens = {who: create_token(engine, role, user)[0] for who, (role, user) in ROLES.items()}
    now = time.time()
    with engine.begin() as conn:
        vid = conn.execute(insert(Visit).values(
            enterprise_id="E1", inspector_id="I1", unit_id="U1", start_ts=now - 600, end_ts=now - 10,
            stay_key=f"I1|E1|{now - 600!r}", ended=False).returning(Visit.id)).scalar_one()
    StreamStore(engine).apply([StreamNotice("I1", now - 300, "live", "http://127.0.0.1:9/cam/I1/index.m3u8")])
    (stream,) = StreamStore(engine).for_visit(vid)
    ctx, server, _app = webkit.build_web(settings.model_copy(update={"tiles": "none"}), engine, redis_client)
    yield server.test_client(), tokens, vid, stream["id"], engine
    ctx.feed.stop()


def call(client, tokens, who, method, path, **kw):
    return client.open(f"/api/v1{path}", method=method, headers={"Authorization": f"Bearer {tokens[who]}"}, **kw)


def test_comments_and_verdicts_join_the_record_and_the_audit_chain(rv):
    c, tk, vid, sid, engine = rv
    r = call(c, tk, "dispatcher", "GET", f"/visits/{vid}/reviews")
    assert r.status_code == 200, r.get_json()
    rec = r.get_json()
    assert rec["visit"]["inspector_id"] == "I1" and rec["verdict"] is None and rec["comments"] == []
    assert [(s["id"], s["state"]) for s in rec["streams"]] == [(sid, "live")]
    assert call(c, tk, "dispatcher", "GET", f"/visits/{vid}/streams").get_json()[0]["hls_url"].endswith(".m3u8")

    r = call(c, tk, "dispatcher", "POST", f"/visits/{vid}/reviews",
             json={"at_s": 12.5, "comment": "未出示执法证", "stream_id": sid})
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["kind"], r.get_json()["at_s"], r.get_json()["actor"]) == ("comment", 12.5, "disp1")
    assert call(c, tk, "admin", "POST", f"/visits/{vid}/reviews", json={"at_s": 40, "comment": "灭火器未检查"}
                ).status_code == 201
    r = call(c, tk, "admin", "POST", f"/visits/{vid}/reviews",
             json={"verdict": "non_compliant", "reasons": ["checklist_incomplete", "no_credentials_shown"]})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["reasons"] == ["no_credentials_shown", "checklist_incomplete"]  # the list's order

    rec = call(c, tk, "officer", "GET", f"/visits/{vid}/reviews").get_json()  # I1's own area
    assert [(x["at_s"], x["comment"]) for x in rec["comments"]] == [(12.5, "未出示执法证"), (40, "灭火器未检查")]
    assert rec["verdict"]["verdict"] == "non_compliant" and rec["verdict"]["actor"] == "admin1"
    assert call(c, tk, "officer2", "GET", f"/visits/{vid}/reviews").status_code == 404  # another area

    entries = audit.entries(engine, action=None)
    mine = [(e.actor, e.action, e.target, json.loads(e.detail)) for e in entries if e.action.startswith("review_")]
    assert [(a, act, t) for a, act, t, _ in mine] == [
        ("disp1", "review_comment", f"visit:{vid}"), ("admin1", "review_comment", f"visit:{vid}"),
        ("admin1", "review_verdict", f"visit:{vid}")]
    assert mine[0][3]["at_s"] == 12.5 and mine[0][3]["comment"] == "未出示执法证" and mine[0][3]["stream_id"] == sid
    assert mine[2][3]["reasons"] == ["no_credentials_shown", "checklist_incomplete"]
    assert audit.verify(engine) is None


def test_only_reviewers_post_and_refusals_are_audited(rv):
    c, tk, vid, _sid, engine = rv
    for who in ("officer", "wall"):
        r = call(c, tk, who, "POST", f"/visits/{vid}/reviews", json={"verdict": "compliant"})
        assert r.status_code == 403, (who, r.get_json())
    assert call(c, tk, "wall", "GET", f"/visits/{vid}/reviews").status_code == 403
    denied = [e for e in audit.entries(engine, action="access_denied")]
    assert {e.actor for e in denied} == {"off1", "wall1"}
    assert all(e.target == f"/api/v1/visits/{vid}/reviews" for e in denied)
    assert not [e for e in audit.entries(engine) if e.action.startswith("review_")]
    assert c.post(f"/api/v1/visits/{vid}/reviews", json={"verdict": "compliant"}).status_code == 401
    assert call(c, tk, "dispatcher", "POST", "/visits/999999/reviews", json={"verdict": "compliant"}).status_code == 404


@pytest.mark.parametrize("body, code", [
    ({}, "comment_or_verdict"),
    ({"at_s": 3, "verdict": "compliant"}, "comment_or_verdict"),
    ({"at_s": "3", "comment": "x"}, "not_a_number"),
    ({"at_s": -1, "comment": "x"}, "out_of_range"),
    ({"at_s": 3}, "required"),
    ({"at_s": 3, "comment": "x" * 2001}, "too_long"),
    ({"at_s": 3, "comment": "a\x00b"}, "control_character"),
    ({"verdict": "fine"}, "unknown_verdict"),
    ({"verdict": "non_compliant"}, "reasons_required"),
    ({"verdict": "non_compliant", "reasons": ["sloppy"]}, "unknown_reason"),
    ({"verdict": "non_compliant", "reasons": ["other"]}, "required_with_other"),
    ({"verdict": "non_compliant", "reasons": "hazard_missed"}, "not_a_list"),
    ({"verdict": "compliant", "reasons": ["hazard_missed"]}, "no_reasons_when_compliant"),
    ({"at_s": 3, "comment": "x", "stream_id": 999999}, "not_this_visits_stream"),
])
def test_bad_bodies_answer_400_with_a_reason_code(rv, body, code):
    c, tk, vid, _sid, engine = rv
    r = call(c, tk, "dispatcher", "POST", f"/visits/{vid}/reviews", json=body)
    assert r.status_code == 400 and r.get_json()["error"] == code, r.get_json()
    assert not [e for e in audit.entries(engine) if e.action.startswith("review_")]


def test_check_review_is_pure_and_keeps_the_lists_order():
    kind, fields, errors = check_review({"verdict": "non_compliant", "reasons": list(reversed(REASONS[:3]))})
    assert (kind, errors, fields["reasons"]) == ("verdict", [], list(REASONS[:3]))
    assert check_review([1, 2])[2] == [{"field": "body", "reason": "not_an_object"}]
    assert check_review({"at_s": 1.23456, "comment": " 好 "})[1]["at_s"] == 1.235
