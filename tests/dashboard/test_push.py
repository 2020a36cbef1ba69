"""GET /api/v1/events: alert changes pushed as server-sent events, over a real
HTTP server (werkzeug in a thread) and the test Redis."""

from __future__ import annotations

import html
import http.client
import json
import logging
import time

import pytest
import redis

from dashboard.push import ChangeFeed
from data.auth import create_token
from data.live import LiveState
from tests.dashboard import webkit
from tests.mqttkit import wait_until
from tests.servicekit import RedisServer


class EventStream:
    """A client of /api/v1/events that reads events as a browser's EventSource would."""

    def __init__(self, port: int, token: str | None, view: str | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", "/api/v1/events" + (f"?view={view}" if view else ""), headers=headers)
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


def test_a_new_alarm_comes_with_its_row_to_the_screens_that_show_it(served, sqlite_engine):
    """The wall and the console name themselves and get, with the event, the row their
    list shows for a new alarm (the page puts it in before its callback answers); a
    role the page is not for, a stream that names no page, and an alarm already
    acknowledged get the ids only."""
    ctx, srv = served
    wall, _ = create_token(sqlite_engine, "wall")
    disp, _ = create_token(sqlite_engine, "dispatcher")
    officer, _ = create_token(sqlite_engine, "officer", "off1")
    streams = {
        "wall": EventStream(srv.port, wall, "wall"),
        "dispatch": EventStream(srv.port, disp, "dispatch"),
        "unnamed": EventStream(srv.port, wall),
        "wall on the console": EventStream(srv.port, wall, "dispatch"),
        "officer on the wall": EventStream(srv.port, officer, "wall"),
        "unknown view": EventStream(srv.port, disp, "nonsense<script>"),
    }
    try:
        for s in streams.values():
            assert s.resp.status == 200
            s.next_event()  # the retry hint
        opened = webkit.open_alert(ctx, "gas_alarm", sensor_id="S1")  # 深圳市龙华区老王餐饮店, grid G1
        got = {k: json.loads(s.next_event()["data"]) for k, s in streams.items()}
        assert all(d["ids"] == [opened] for d in got.values()), got

        (row,) = got["wall"]["rows"]
        assert row["id"] == opened
        assert "深圳市龙华区老王餐饮店" in row["html"] and f'data-alert-id="{opened}"' in row["html"]
        assert "aj-provisional" in row["html"] and "紧急" in row["html"], row["html"]  # the zh UI's words
        (row,) = got["dispatch"]["rows"]
        assert f'id="queue-row-{opened}"' in row["html"] and "深圳市龙华区老王餐饮店" in row["html"]
        assert '"action":"ack"' in html.unescape(row["html"]), "the console's row carries its acknowledge button"
        for k in ("unnamed", "wall on the console", "officer on the wall", "unknown view"):
            assert "rows" not in got[k], (k, got[k])

        # Acknowledged, it is no longer new: the event says only that it changed.
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        c.request("POST", f"/api/v1/alerts/{opened}/ack", body=b"{}",
                  headers={"Authorization": f"Bearer {disp}", "Content-Type": "application/json"})
        assert c.getresponse().status == 200
        after = json.loads(streams["wall"].next_event()["data"])
        assert after["ids"] == [opened] and "rows" not in after
    finally:
        for s in streams.values():
            s.close()


def test_a_hostile_enterprise_name_reaches_the_event_escaped(served, sqlite_engine):
    """Names come from imports: the row an event carries is HTML, so the name in it is escaped."""
    from sqlalchemy import update

    from data.models import Enterprise

    ctx, srv = served
    with sqlite_engine.begin() as conn:
        conn.execute(update(Enterprise).where(Enterprise.id == "E1").values(name='<img src=x onerror="alert(1)">'))
    ctx._registry.refresh()  # the web process reloads its names on a timer; the test does not wait for it
    wall, _ = create_token(sqlite_engine, "wall")
    stream = EventStream(srv.port, wall, "wall")
    try:
        stream.next_event()
        webkit.open_alert(ctx, "gas_alarm", sensor_id="S1")
        (row,) = json.loads(stream.next_event()["data"])["rows"]
        assert "<img" not in row["html"] and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in row["html"], row
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


def test_the_change_feed_survives_a_redis_restart(tmp_path, caplog):
    """Redis restarts: the feed warns once for the outage, not once a second, and the
    alert changes written after the restart still reach the event streams."""
    server = RedisServer(tmp_path)
    server.start()
    r = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    feed = ChangeFeed(LiveState(r, "feed-restart"))
    key = feed.live.key("changes")
    try:
        with caplog.at_level(logging.DEBUG, logger="dashboard.push"):
            feed.start()
            # The feed starts from the stream's end ("from now on"): write until it has seen one.
            assert wait_until(lambda: r.xadd(key, {"v": 1, "kind": "alert", "ids": "7"})
                              and feed.wait(0, 0.5)[0])
            events, pos = feed.wait(0, 0)
            assert {tuple(e["ids"]) for e in events} == {(7,)}

            server.stop()
            time.sleep(3.5)  # several of the feed's one-second retries
            server.start()
            assert wait_until(lambda: _writes(r, key, {"v": 2, "kind": "alert", "ids": "8,9"}), 10)
            deadline = time.monotonic() + 10
            got: list = []
            while not got and time.monotonic() < deadline:
                got, pos = feed.wait(pos, 1)
            assert [e["ids"] for e in got] == [[8, 9]]
            assert feed._thread.is_alive()  # noqa: SLF001

        warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
        assert len(warnings) == 1 and "waits for Redis" in warnings[0].getMessage()
        assert any("resumed after" in rec.getMessage() for rec in caplog.records)
    finally:
        feed.stop()
        server.stop()


def _writes(r, key, fields) -> bool:
    try:
        r.xadd(key, fields)
        return True
    except redis.ConnectionError:
        return False


def test_an_idle_change_feed_reads_without_socket_timeouts(redis_client, namespace, caplog):
    """The web's Redis client has redis-py's default socket timeout (5 s, not named
    in the URL).  The feed's blocking read must end before it: an idle feed logs no
    'Timeout reading from socket', and a change after the idle time arrives at once."""
    feed = ChangeFeed(LiveState(redis_client, namespace))
    key = feed.live.key("changes")
    try:
        with caplog.at_level(logging.DEBUG, logger="dashboard.push"):
            feed.start()
            time.sleep(6.5)  # longer than one 5 s block and the 5 s socket timeout
            redis_client.xadd(key, {"v": 1, "kind": "alert", "ids": "5"})
            got, _ = feed.wait(0, 3)
            assert [e["ids"] for e in got] == [[5]]
        waits = [rec.getMessage() for rec in caplog.records if "waits for Redis" in rec.getMessage()]
        assert waits == [], waits
    finally:
        feed.stop()
        feed._thread.join(10)  # noqa: SLF001 - its last read ends before the key is deleted


class _LateFeed(ChangeFeed):
    """A feed whose thread gets its first turn a second late, as on a busy machine."""

    def _run(self, last=None):
        time.sleep(1.0)
        super()._run(last)


def test_a_change_right_after_the_retry_hint_arrives_however_late_the_feed_starts(redis_client, namespace):
    """The first stream starts the feed; an alarm opened as soon as the client has the
    retry hint is delivered, even when the feed's thread runs late (it read the
    stream's end itself, after the change, and the CI's busy clone lost the alarm)."""
    feed = _LateFeed(LiveState(redis_client, namespace))
    key = feed.live.key("changes")
    try:
        redis_client.xadd(key, {"v": 1, "kind": "alert", "ids": "4"})  # before: not this client's
        body = feed.stream(keepalive_s=5)
        assert next(body).startswith(b"retry:")
        redis_client.xadd(key, {"v": 2, "kind": "alert", "ids": "5"})
        got = next(body)
        assert got.startswith(b"id:") and b'"ids":[5]' in got, got
    finally:
        feed.stop()
        feed._thread.join(10)  # noqa: SLF001 - its last read ends before the key is deleted


def test_blocking_reads_stay_under_the_socket_timeout():
    from data.redis_wait import block_ms

    url = "redis://127.0.0.1:6379/0"
    assert block_ms(redis.Redis.from_url(url), 5000) == 2500, "redis-py's default 5 s socket timeout"
    assert block_ms(redis.Redis.from_url(url + "?socket_timeout=0.4"), 5000) == 200
    assert block_ms(redis.Redis.from_url(url, socket_timeout=None), 5000) == 5000
    assert block_ms(redis.Redis.from_url(url, socket_timeout=60), 250) == 250
    assert block_ms(redis.Redis.from_url(url, socket_timeout=0.001), 250) == 1, "BLOCK 0 would wait forever"


def test_the_feed_reads_new_alarms_only_while_a_screen_renders_rows(redis_client, namespace):
    """The batch's new alarms are read from SQL for the streams that render rows (a wall,
    a console); with only id streams, or none, no read is made."""
    reads: list[list[int]] = []

    def new_alerts(ids):
        reads.append(list(ids))
        return [{"id": i, "type": "gas_alarm"} for i in ids]

    feed = ChangeFeed(LiveState(redis_client, namespace), new_alerts)
    key = feed.live.key("changes")
    try:
        feed.start()
        wait_until(lambda: feed._thread is not None and feed._thread.is_alive(), 5)  # noqa: SLF001
        plain = feed.stream(keepalive_s=0.2)
        assert next(plain).startswith(b"retry:")
        redis_client.xadd(key, {"v": 1, "kind": "alert", "ids": "5"})
        assert b'"ids":[5]' in next(c for c in plain if c.startswith(b"id:"))
        assert reads == []  # an id-only stream: nothing read
        rows = feed.stream(keepalive_s=0.2, preview=lambda alerts: [{"id": a["id"], "html": "<li/>"} for a in alerts])
        assert next(rows).startswith(b"retry:")
        redis_client.xadd(key, {"v": 2, "kind": "alert", "ids": "6,7"})
        got = next(c for c in rows if c.startswith(b"id:"))
        assert b'"rows":[{"id":6' in got and reads == [[6, 7]]
        plain_got = next(c for c in plain if c.startswith(b"id:"))
        assert b'"ids":[6,7]' in plain_got and b"rows" not in plain_got  # the same batch, without rows
        rows.close()  # the console closed: reads stop again
        redis_client.xadd(key, {"v": 3, "kind": "alert", "ids": "8"})
        assert b'"ids":[8]' in next(c for c in plain if c.startswith(b"id:"))
        assert reads == [[6, 7]]
        plain.close()
    finally:
        feed.stop()
        feed._thread.join(10)  # noqa: SLF001 - its last read ends before the key is deleted
