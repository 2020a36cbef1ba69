"""Opening a live body-camera stream for review: time to the first frame (issue 17 §3).

    .venv/bin/python bench/bench_review_stream.py [--opens 7] [--segment-s 2]

Debian's ffmpeg encodes a live test-pattern HLS stream (H.264, ``--segment-s``
segments, a sliding playlist, as a camera platform serves it) into a directory that
a local HTTP server serves with CORS; the stream is linked to a visit; a dispatcher,
logged in once in Debian's chromium (Playwright), opens ``/review/<visit>``
``--opens`` times.  Each open is timed from the navigation's start to the first
frame shown (the first ``requestVideoFrameCallback`` of the page's video element),
and split at the moment the page's player exists.

The baseline, in the same run: the same stream opened as often in a bare HTML page
holding only a ``<video>`` and the same vendored hls.js (served beside the stream),
so the ratio says what the review page adds to what HLS itself costs.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
HLS_JS = ROOT / "dashboard" / "assets" / "vendor" / "hls.js" / "hls.min.js"

BARE_PAGE = """<!DOCTYPE html><html><body>
<video id="v" muted autoplay playsinline width="320" height="240"></video>
<script src="hls.min.js"></script>
<script>
  const v = document.getElementById('v');
  const hls = new Hls();
  hls.loadSource('index.m3u8');
  hls.attachMedia(v);
  v.play().catch(() => {});
</script></body></html>"""

FIRST_FRAME_JS = """(sel) => new Promise((resolve) => {
  function arm() {
    const v = document.querySelector(sel);
    if (!v) { requestAnimationFrame(arm); return; }
    const made = performance.now();
    v.requestVideoFrameCallback(() => resolve({made: made, frame: performance.now()}));
  }
  arm();
})"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--opens", type=int, default=7)
    ap.add_argument("--segment-s", type=int, default=2)
    args = ap.parse_args()

    import redis
    from playwright.sync_api import sync_playwright
    from sqlalchemy import insert

    from config.settings import load_settings
    from data.db import make_engine, migrate
    from data.models import Visit
    from data.streams import StreamStore
    from geo.types import StreamNotice
    from tests.citykit import write_small_city
    from tests.dashboard import webkit
    from tests.dashboard.test_browser import CHROMIUM_ARGS

    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit("ffmpeg is missing (scripts/ensure-services.sh installs Debian's)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-review-"))
    cam = tmp / "cam"
    cam.mkdir()
    shutil.copy(HLS_JS, cam / "hls.min.js")
    (cam / "bare.html").write_text(BARE_PAGE)
    enc = subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi",
                            "-i", "testsrc=size=640x360:rate=25", "-c:v", "libx264", "-preset", "ultrafast",
                            "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", str(25 * args.segment_s),
                            "-f", "hls", "-hls_time", str(args.segment_s), "-hls_list_size", "6",
                            "-hls_flags", "delete_segments", str(cam / "index.m3u8")])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(cam)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cam_url = f"http://127.0.0.1:{httpd.server_port}"
    ns = "brev" + str(int(time.time()))
    r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        while not (cam / "index.m3u8").exists() or (cam / "index.m3u8").read_text().count(".ts") < 2:
            time.sleep(0.2)  # two segments out: the stream is live
        s = load_settings(data_dir=tmp, database_url=None, redis_namespace=ns, mqtt_prefix=ns, tiles="none")
        engine = make_engine(f"sqlite:///{tmp / 'anjian.sqlite3'}")
        migrate(engine)
        write_small_city(engine)
        webkit.make_users(engine)
        now = time.time()
        with engine.begin() as conn:
            vid = conn.execute(insert(Visit).values(
                enterprise_id="E1", inspector_id="I1", unit_id="U1", start_ts=now - 60, end_ts=now,
                stay_key=f"I1|E1|{now - 60!r}", ended=False).returning(Visit.id)).scalar_one()
        StreamStore(engine).apply([StreamNotice("I1", now - 30, "live", hls_url=f"{cam_url}/index.m3u8")])
        ctx, server, _app = webkit.build_web(s, engine, r)
        results: dict[str, list[tuple[float, float]]] = {"review page": [], "bare hls.js page": []}
        with webkit.ServerThread(server) as srv, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM,
                                        args=CHROMIUM_ARGS + ["--autoplay-policy=no-user-gesture-required"])
            page = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN").new_page()
            page.goto(f"{srv.url}/review/{vid}")
            page.fill("#username", "disp1")
            page.fill("#password", webkit.PASSWORD)
            page.click("#login-submit")
            page.wait_for_url(f"**/review/{vid}")
            page.wait_for_function("() => { const v = document.querySelector('#review-video');"
                                   " return v && v.currentTime > 0; }", timeout=30_000)  # warm: assets cached
            for k in range(args.opens):
                for label, url, sel in (("review page", f"{srv.url}/review/{vid}", "#review-video"),
                                        ("bare hls.js page", f"{cam_url}/bare.html", "#v")):
                    page.goto("about:blank")
                    page.goto(url, wait_until="commit")
                    t = page.evaluate(FIRST_FRAME_JS, sel)
                    results[label].append((t["made"], t["frame"]))
            browser.close()
        ctx.feed.stop()
    finally:
        enc.terminate()
        enc.wait(10)
        httpd.shutdown()
        for k in r.scan_iter(match=f"{ns}:*"):
            r.delete(k)
    print(f"first frame of a live HLS stream ({args.segment_s} s segments), {args.opens} opens each, "
          "ms from the navigation's start:")
    med = {}
    for label, rows in results.items():
        frames = [f for _m, f in rows]
        made = [m for m, _f in rows]
        med[label] = statistics.median(frames)
        print(f"  {label:17s} first frame median {statistics.median(frames):6.0f} (min {min(frames):.0f}, "
              f"max {max(frames):.0f}); player in the page at median {statistics.median(made):.0f}")
    print(f"review page / bare page: {med['review page'] / med['bare hls.js page']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
