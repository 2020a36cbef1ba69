"""Answers are gzipped for clients that accept it (a wall polls every second for
hours): the bytes a screen gets must decode to exactly what it got before, and the
event stream must never be held back by a compressor."""

from __future__ import annotations

import gzip
import http.client

from data.auth import create_token
from tests.dashboard import webkit


def test_a_screen_gets_the_same_answer_gzipped_when_it_accepts_gzip(client_as):
    c = client_as("dispatcher")
    plain = c.get("/_dash-dependencies")
    zipped = c.get("/_dash-dependencies", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert plain.status_code == zipped.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    body = zipped.get_data()
    assert len(body) < len(plain.get_data()) / 3, (len(body), len(plain.get_data()))
    assert gzip.decompress(body) == plain.get_data()


def test_small_answers_are_sent_as_they_are(client_as):
    c = client_as("dispatcher")
    resp = c.get("/api/v1/health", headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and len(resp.get_data()) < 1024
    assert "Content-Encoding" not in resp.headers


def test_the_event_stream_is_never_compressed(web, sqlite_engine):
    ctx, server, _app, _users = web
    token, _ = create_token(sqlite_engine, "dispatcher")
    with webkit.ServerThread(server) as srv:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        conn.request("GET", "/api/v1/events", headers={"Authorization": f"Bearer {token}",
                                                       "Accept": "text/event-stream", "Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Encoding") is None
        assert resp.getheader("Content-Type", "").startswith("text/event-stream")
        conn.close()
