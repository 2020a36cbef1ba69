"""Remote review in a real browser (Playwright, Debian's chromium): Debian's ffmpeg makes
a real test-pattern HLS stream, a local HTTP server serves it, a body camera announces it
over the test Mosquitto and the ingest worker links it to the inspector's visit; a
dispatcher opens /review/<visit>, the video really plays (hls.js from the app), two
time-coded comments and a verdict are posted through the page, and they are in the
visit's record (the API) and the audit chain."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import threading
import time

import pytest
from sqlalchemy import insert

from data import audit
from data.auth import create_token
from data.models import Visit
from data.streams import StreamStore
from ingest.worker import IngestWorker
from tests.citykit import write_small_city
from tests.dashboard import webkit
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.mqttkit import Publisher, wait_until

pytestmark = pytest.mark.browser

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


def make_hls(out_dir, seconds: int = 12) -> None:
    """A real HLS stream (H.264 in MPEG-TS, 2 s segments) of ffmpeg's test pattern."""
    out_dir.mkdir()
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi",
                    "-i", "testsrc=size=320x240:rate=10", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "20", "-f", "hls", "-hls_time", "2",
                    "-hls_list_size", "0", str(out_dir / "index.m3u8")], check=True, timeout=120)


class _CorsHandler(http.server.SimpleHTTPRequestHandler):
    """A camera's HLS server: the page (another origin) fetches the playlist and segments."""

    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hls_server(tmp_path):
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg is missing: scripts/ensure-services.sh installs Debian's ffmpeg")
    make_hls(tmp_path / "cam")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(_CorsHandler, directory=str(tmp_path / "cam")))
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_port}/index.m3u8"
    httpd.shutdown()
    th.join(5)


@pytest.fixture
def review_stack(settings, sqlite_engine, redis_client, hls_server):
    write_small_city(sqlite_engine)
    webkit.make_users(sqlite_engine)
    now = time.time()
    with sqlite_engine.begin() as conn:
        vid = conn.execute(insert(Visit).values(
            enterprise_id="E1", inspector_id="I1", unit_id="U1", start_ts=now - 300, end_ts=now - 5,
            stay_key=f"I1|E1|{now - 300!r}", ended=False).returning(Visit.id)).scalar_one()
    worker = IngestWorker(settings, sqlite_engine, redis_client, geo=False)
    worker.start()
    try:
        assert worker.conn.subscribed.wait(10)
        with Publisher(settings.mqtt_url) as pub:
            pub.publish(f"{settings.mqtt_prefix}/v1/inspectors/I1/stream",
                        {"ts": now, "state": "live", "hls_url": hls_server, "msg_id": "bodycam-I1-1"})
        wait_until(lambda: StreamStore(sqlite_engine).for_visit(vid))
    finally:
        worker.stop()
    ctx, server, _app = webkit.build_web(settings.model_copy(update={"tiles": "none"}), sqlite_engine, redis_client)
    with webkit.ServerThread(server) as srv:
        yield ctx, server, srv.url, vid, hls_server
    ctx.feed.stop()


def test_a_dispatcher_reviews_a_live_stream(review_stack):
    from playwright.sync_api import sync_playwright

    ctx, server, url, vid, hls_url = review_stack
    (stream,) = StreamStore(ctx.engine).for_visit(vid)
    assert (stream["state"], stream["hls_url"], stream["visit_id"]) == ("live", hls_url, vid)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + ["--autoplay-policy=no-user-gesture-required"])
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
            page = context.new_page()
            errors, requests = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{url}/review/{vid}")
            page.fill("#username", "disp1")
            page.fill("#password", webkit.PASSWORD)
            page.click("#login-submit")
            page.wait_for_url(f"**/review/{vid}")

            # The video really plays: hls.js fetched the playlist and segments, frames advance.
            page.wait_for_function("() => { const v = document.querySelector('#review-video');"
                                   " return v && v.currentTime > 0.5 && !v.paused; }", timeout=30_000)
            assert page.inner_text("#review-player-status") == "播放中"
            assert page.evaluate("() => !!window.Hls && window.Hls.version") == "1.5.20"

            def comment(text: str, n: int) -> float:
                at = page.evaluate("() => document.querySelector('#review-video').currentTime")
                page.fill("#review-comment", text)
                page.click("#review-comment-post")
                page.wait_for_function(f"() => document.querySelectorAll('#review-entries .aj-review-comment')"
                                       f".length === {n}", timeout=15_000)
                return at

            at1 = comment("未出示执法证件", 1)
            page.wait_for_function(f"() => document.querySelector('#review-video').currentTime > {at1 + 1.0}",
                                   timeout=15_000)
            at2 = comment("灭火器压力不足未指出", 2)
            assert page.input_value("#review-comment") == ""  # cleared for the next one
            assert "已保存" in page.inner_text("#review-status")

            # Each box on the line of its text (the text fell under the box).
            apart = page.evaluate("""() => [...document.querySelectorAll('#review-verdict label, #review-reasons label')]
              .map(l => { const i = l.querySelector('input').getBoundingClientRect();
                          const x = l.querySelector('.dash-options-list-option-text').getBoundingClientRect();
                          return [l.textContent, Math.abs((i.top + i.bottom) / 2 - (x.top + x.bottom) / 2)]; })
              .filter(([_, d]) => d > 6)""")
            assert not apart, apart
            page.check("#review-verdict input[value='non_compliant']")
            page.check("#review-reasons input[value='no_credentials_shown']")
            page.check("#review-reasons input[value='hazard_missed']")
            page.click("#review-verdict-post")
            page.wait_for_selector("#review-current [data-verdict='non_compliant']", timeout=15_000)
            assert errors == [], errors
            # Only this app, the camera's server, and the page's own blob: (hls.js's worker, the MSE source).
            foreign = [u for u in requests if not (u.startswith((url, hls_url.rsplit("/", 1)[0], "blob:", "data:")))]
            assert foreign == [], f"the page loaded something from elsewhere: {foreign[:5]}"
            assert any(u.endswith("/assets/vendor/hls.js/hls.min.js") for u in requests)
            assert any(u.endswith(".ts") for u in requests), "no segment was fetched"
        finally:
            browser.close()

    # In the visit's record (the API) ...
    token = create_token(ctx.engine, "dispatcher", "disp1")[0]
    rec = server.test_client().get(f"/api/v1/visits/{vid}/reviews",
                                   headers={"Authorization": f"Bearer {token}"}).get_json()
    comments = rec["comments"]
    assert [c["comment"] for c in comments] == ["未出示执法证件", "灭火器压力不足未指出"]
    assert all(c["stream_id"] == stream["id"] and c["actor"] == "disp1" for c in comments)
    # Stamped with the playback time: where the video was when the button was clicked.
    assert 0 < comments[0]["at_s"] < comments[1]["at_s"] <= 12.5
    assert comments[0]["at_s"] >= at1 - 0.01 and comments[1]["at_s"] >= at2 - 0.01
    assert rec["verdict"]["verdict"] == "non_compliant"
    assert rec["verdict"]["reasons"] == ["no_credentials_shown", "hazard_missed"]

    # ... and in the audit chain, which still holds.
    entries = [e for e in audit.entries(ctx.engine) if e.action.startswith("review_")]
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("disp1", "review_comment", f"visit:{vid}"), ("disp1", "review_comment", f"visit:{vid}"),
        ("disp1", "review_verdict", f"visit:{vid}")]
    assert audit.verify(ctx.engine) is None
