"""GET /api/v1/events: alert changes pushed as server-sent events, over a real
HTTP server (werkzeug in a thread) and the test Redis."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from data.auth import create_token
from tests.dashboard import webkit


class EventStream:
    """A client of /api/v1/events that reads events as a browser's EventSource would."""

    def __init__(self, port: int, token: str | None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", "/api/v1/events", headers=headers)
        self.resp = self.conn.getresponse()

    def next_event(self, timeout_s: float = 10.0) -> dict:
        """The next event (comment lines skipped): {"event", "id", "data"}."""
        deadline = time.monotonic() + timeout_s
        ev: dict = {}
        while time.monotonic() < deadline:
            line = self.resp.fp.readline().decode().rstrip("\n")
            if not line:
                if ev:
                    return ev
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            ev[field] = value.strip()
        raise AssertionError(f"no event within {timeout_s} s (so far {ev})")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def served(web):
    ctx, server, _app, _users = web
    with webkit.ServerThread(server) as srv:
        yield ctx, srv


def test_alert_changes_reach_an_open_event_stream(served, sqlite_engine):
    ctx, srv = served
    token, _ = create_token(sqlite_engine, "wall")
    stream = EventStream(srv.port, token)
    try:
        assert stream.resp.status == 200
        assert stream.resp.getheader("Content-Type").startswith("text/event-stream")
        first = stream.next_event()
        assert first.get("retry") == "2000" and "event" not in first, "the stream opens with its retry hint"

        opened = webkit.open_alert(ctx, "inspector_offline", inspector_id="I1", severity="warning")
        ev = stream.next_event()
        assert ev["event"] == "alert"
        data = json.loads(ev["data"])
        assert data["ids"] == [opened] and data["v"] == ctx.live.version()
        assert ev["id"], "each event carries the change stream id"

        # A person's action is an alert change too: a dispatcher acknowledges through the API.
        disp, _ = create_token(sqlite_engine, "dispatcher")
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        c.request("POST", f"/api/v1/alerts/{opened}/ack", body=b"{}",
                  headers={"Authorization": f"Bearer {disp}", "Content-Type": "application/json"})
        assert c.getresponse().status == 200
        ev = stream.next_event()
        assert ev["event"] == "alert" and json.loads(ev["data"])["ids"] == [opened]
    finally:
        stream.close()


def test_the_event_stream_needs_a_credential(served):
    _ctx, srv = served
    stream = EventStream(srv.port, None)
    try:
        assert stream.resp.status == 401
        assert json.loads(stream.resp.read())["error"] == "unauthorized"
    finally:
        stream.close()
