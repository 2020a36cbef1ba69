"""The demo's body camera: ffmpeg's test pattern as a live HLS stream, served over HTTP.

A real body camera (or its platform) publishes a live HLS playlist somewhere and
announces it on MQTT (docs/mqtt.md, ``PREFIX/v1/inspectors/{id}/stream``).  The demo
has none, so when Debian's ``ffmpeg`` is installed it makes one: ffmpeg encodes its
``testsrc`` pattern in real time into a sliding live playlist (2 s segments, the
last 6 kept) in the data directory, and a small HTTP server (with the CORS header a
player on another origin needs) serves it.  The simulator announces it for a few
inspectors (``ingest.simulator``); without ffmpeg nothing is announced and the
review page shows its "no stream" state.  docs/review.md.
"""

from __future__ import annotations

import functools
import http.server
import logging
import shutil
import subprocess
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PLAYLIST = "index.m3u8"


class _Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, *args):
        pass


class DemoCamera:
    def __init__(self, out_dir: str | Path, host: str = "127.0.0.1", port: int = 0, size: str = "320x240",
                 rate: int = 10):
        self.out_dir = Path(out_dir)
        self.host, self.port, self.size, self.rate = host, port, size, rate
        self._proc: subprocess.Popen | None = None
        self._errlog = None
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("ffmpeg") is not None

    def start(self, wait_s: float = 15.0) -> str | None:
        """Start encoding and serving; the playlist's URL once its first segment is
        written, or None (no ffmpeg, or it did not start: logged)."""
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            log.info("demo body camera: no ffmpeg, so no stream is announced (the review page says so)")
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for old in list(self.out_dir.glob("*.ts")) + list(self.out_dir.glob("*.m3u8")):
            old.unlink()
        self._errlog = open(self.out_dir / "ffmpeg.log", "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-f", "lavfi",
             "-i", f"testsrc=size={self.size}:rate={self.rate}", "-c:v", "libx264", "-preset", "ultrafast",
             "-tune", "zerolatency", "-pix_fmt", "yuv420p", "-g", str(2 * self.rate), "-f", "hls",
             "-hls_time", "2", "-hls_list_size", "6", "-hls_flags", "delete_segments",
             str(self.out_dir / PLAYLIST)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._errlog)
        deadline = time.monotonic() + wait_s
        while not (self.out_dir / PLAYLIST).exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                err = (self.out_dir / "ffmpeg.log").read_text(errors="replace")[-2000:].strip()
                log.warning("demo body camera: ffmpeg did not start (%s)", err or "no output")
                return None
            time.sleep(0.1)
        handler = functools.partial(_Handler, directory=str(self.out_dir))
        self._httpd = http.server.ThreadingHTTPServer((self.host, self.port), handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="demo-camera", daemon=True)
        self._thread.start()
        self.url = f"http://{self.host}:{self._httpd.server_port}/{PLAYLIST}"
        log.info("demo body camera: live HLS test pattern at %s", self.url)
        return self.url

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
            self._proc = None
        if self._errlog is not None:
            self._errlog.close()
            self._errlog = None
