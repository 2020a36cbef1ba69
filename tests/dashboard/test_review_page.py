"""The review page (/review/<visit_id>) built on the server: the player's source, the
"no stream" state, the comment and verdict posts through the page's own checks, the
gate (a page for reviewers only), hls.js served from the app and not put on every page,
and the dispatcher console's live badge."""

from __future__ import annotations

import json
import time

from sqlalchemy import insert

from dashboard import ids
from dashboard.pages import dispatch, enterprise, review as page
from data import audit
from data.models import Visit
from data.streams import StreamStore
from geo.types import StreamNotice
from tests.dashboard import webkit


def _visit(engine, inspector_id="I1", enterprise_id="E1") -> int:
    now = time.time()
    with engine.begin() as conn:
        return conn.execute(insert(Visit).values(
            enterprise_id=enterprise_id, inspector_id=inspector_id, unit_id="U1", start_ts=now - 600, end_ts=now,
            stay_key=f"{inspector_id}|{enterprise_id}|{now - 600!r}", ended=False).returning(Visit.id)).scalar_one()


def _text(component) -> str:
    return json.dumps(component.to_plotly_json(), default=str, ensure_ascii=False)


def test_the_page_plays_the_live_stream_and_posts_through_the_same_checks(web, sqlite_engine):
    ctx, server, _app, users = web
    with_stream, without = _visit(sqlite_engine), _visit(sqlite_engine, "I2", "E2")
    hls = "http://127.0.0.1:9/cam/I1/index.m3u8"
    StreamStore(sqlite_engine).apply([StreamNotice("I1", time.time() - 60, "live", hls)])
    with webkit.as_user(server, users["dispatcher"], lang="en"):
        root = page.build(users["dispatcher"], "en", visit_id=str(with_stream))
        source = webkit.find(root, ids.REVIEW_SOURCE).data
        assert (source["url"], source["kind"], source["live"]) == (hls, "hls", True)
        assert "Connecting" in source["texts"]["loading"]
        assert webkit.find(root, ids.REVIEW_NO_STREAM).style == {"display": "none"}

        empty = page.build(users["dispatcher"], "zh-CN", visit_id=str(without))
        assert webkit.find(empty, ids.REVIEW_SOURCE).data is None
        assert "暂无执法记录仪视频流" in _text(webkit.find(empty, ids.REVIEW_NO_STREAM))
        assert webkit.find(empty, ids.REVIEW_COMMENT_POST).disabled is True
        assert "review-missing" in _text(page.build(users["dispatcher"], "en", visit_id="999999"))
        assert "review-missing" in _text(page.build(users["dispatcher"], "en", visit_id="x'; drop"))

        status, cleared = page.post(users["dispatcher"], with_stream,
                                    {"at_s": 3.2, "comment": "灭火器过期", "stream_id": source["id"]}, "en")
        assert "Saved" in _text(status) and cleared == ""
        status, _ = page.post(users["dispatcher"], with_stream, {"verdict": "non_compliant", "reasons": []}, "en")
        assert "reasons_required" in _text(status)
        status, _ = page.post(users["dispatcher"], with_stream,
                              {"verdict": "non_compliant", "reasons": ["hazard_missed"]}, "en")
        assert "Saved" in _text(status)
        rec = page.store().record(with_stream)
        assert [c["comment"] for c in rec["comments"]] == ["灭火器过期"] and rec["verdict"]["verdict"] == "non_compliant"
        assert "Hazard missed" in _text(page.entries_view(rec, "en")) and "00:03.2" in _text(page.entries_view(rec, "en"))
    assert [e.action for e in audit.entries(sqlite_engine) if e.action.startswith("review_")] == [
        "review_comment", "review_verdict"]

    # The visit's record on the enterprise page links its review, for reviewers.
    for who, linked in (("dispatcher", True), ("officer", False)):
        with webkit.as_user(server, users[who]):
            table = _text(webkit.find(enterprise.build(users[who], "zh-CN", enterprise_id="E1"), ids.ENTERPRISE_VISITS))
        assert (f"/review/{with_stream}" in table) is linked, who

    # The dispatcher console's inspector list links the live stream's visit.
    html_ = str(dispatch.inspector_table([{"id": "I1", "name": "王强", "unit_name": "U1", "status": "online",
                                           "last_fix_ts": time.time()}], [], ctx.registry(), "zh-CN", time.time(),
                                         StreamStore(sqlite_engine).live()))
    assert f'href="/review/{with_stream}"' in html_ and "aj-live-badge" in html_


def test_reviewers_only_and_hls_js_is_served_locally_but_not_on_every_page(web, client_as, sqlite_engine):
    vid = _visit(sqlite_engine)
    assert client_as("officer").get(f"/review/{vid}").status_code == 403
    c = client_as("dispatcher")
    r = c.get(f"/review/{vid}")
    assert r.status_code == 200
    js = c.get("/assets/vendor/hls.js/hls.min.js")
    assert js.status_code == 200 and b"1.5.20" in js.get_data()
    assert "hls.min.js" not in r.get_data(as_text=True)  # loaded by review.js on the review page only
    assert "review.js" in r.get_data(as_text=True)
