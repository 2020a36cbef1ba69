"""`python app.py web` as production runs it: gunicorn, two worker processes.

The process is started as the README starts it, on the test services with the
tiny demo city.  What must hold across workers: a login made in one worker is
valid in the other (one signing key, even when ANJIAN_SECRET_KEY is unset); the
API answers from both; and in chromium, the dispatcher console shows an alarm
opened after the page loaded (its event stream and its callbacks may be served
by different workers); and /metrics counts every worker's callbacks whichever
worker answers the scrape, also after a worker was replaced (prometheus_client's
multiprocess mode).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import redis

from data.embedded import free_port
from tests.conftest import TEST_MQTT_URL, TEST_REDIS_URL, unique
from tests.dashboard import webkit
from tests.mqttkit import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    from config.settings import load_settings
    from dashboard.context import WebContext
    from data.db import make_engine, migrate
    from data.demo_city import ensure_demo_city

    ns = unique("gw")
    tmp = tmp_path_factory.mktemp("gunicorn")
    db_url = f"sqlite:///{tmp / 'anjian.sqlite3'}"
    s = load_settings(mqtt_url=TEST_MQTT_URL, redis_url=TEST_REDIS_URL, database_url=db_url, data_dir=tmp,
                      mqtt_prefix=ns, redis_namespace=ns, tiles="none", sim_scale="tiny")
    engine = make_engine(db_url)
    migrate(engine)
    ensure_demo_city(engine, s)
    webkit.make_users(engine)
    port = free_port(18450)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANJIAN_")}
    env.update(ANJIAN_MQTT_URL=TEST_MQTT_URL, ANJIAN_REDIS_URL=TEST_REDIS_URL, ANJIAN_DATABASE_URL=db_url,
               ANJIAN_DATA_DIR=str(tmp), ANJIAN_MQTT_PREFIX=ns, ANJIAN_REDIS_NAMESPACE=ns, ANJIAN_TILES="none",
               ANJIAN_WEB_PORT=str(port), ANJIAN_WEB_WORKERS="2")
    log_path = tmp / "web.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "web"], cwd=tmp, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    r = redis.Redis.from_url(TEST_REDIS_URL)
    ctx = WebContext(s, engine, r, TEST_MQTT_URL)

    def up():
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=5):
                return True
        except OSError:
            return False

    try:
        wait_until(up, 90, 0.5)
        yield {"base": base, "proc": proc, "log": log_path, "ctx": ctx, "ns": ns}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ctx.feed.stop()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()
        engine.dispose()
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text()


def fresh_get(url: str, opener=None):
    """A GET on a new connection (gunicorn's workers take turns accepting them):
    (status, JSON body, the pid of the worker that answered)."""
    req = urllib.request.Request(url, headers={"Connection": "close"})
    with (opener or urllib.request.build_opener()).open(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read()), int(resp.headers["X-Anjian-Worker"])


def login(base: str, username: str):
    """An opener holding a login session of ``username``, and the session's CSRF token
    (the cookie the screens' script reads for Dash's requests)."""
    from dashboard.auth_views import CSRF_COOKIE

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(f"{base}/login", timeout=10) as resp:
        csrf = re.search(r'name="csrf" value="([^"]+)"', resp.read().decode()).group(1)
    body = urllib.parse.urlencode({"username": username, "password": webkit.PASSWORD, "csrf": csrf}).encode()
    with opener.open(urllib.request.Request(f"{base}/login", data=body), timeout=10) as resp:
        assert resp.status == 200
    return opener, next(c.value for c in jar if c.name == CSRF_COOKIE)


def test_two_workers_answer_and_share_one_login(web):
    pids = set()
    deadline = time.monotonic() + 60  # a worker answers once it has built its app (seconds on a busy machine)
    while len(pids) < 2 and time.monotonic() < deadline:
        _status, health, pid = fresh_get(f"{web['base']}/api/v1/health")
        assert health["web_pid"] == pid
        pids.add(pid)
        time.sleep(0.05)
    assert len(pids) == 2, f"answers came from {pids}: not two worker processes"
    assert web["proc"].pid not in pids, "the master serves nothing itself"

    opener, _csrf = login(web["base"], "disp1")
    # The session cookie, signed by whichever worker took the login, is good in both.
    answered: dict[int, int] = {}
    deadline = time.monotonic() + 30
    while len(answered) < 2 and time.monotonic() < deadline:
        status, alerts, pid = fresh_get(f"{web['base']}/api/v1/alerts?state=open", opener)
        answered[pid] = answered.get(pid, 0) + 1
        assert status == 200 and isinstance(alerts, list)
    assert len(answered) == 2, f"the login was only tried on {answered}"


def test_metrics_count_the_callbacks_of_every_worker(web):
    """Each worker records its own callbacks; a scrape answered by either worker
    counts them all, and keeps counting those of a worker that has exited."""
    from prometheus_client.parser import text_string_to_metric_families

    from dashboard.auth_views import CSRF_HEADER
    from dashboard.pages import wall

    ctx = web["ctx"]
    # The wall's slow poll, as the browser sends it (its Dash key from an app built here).
    here, server, _app = webkit.build_web(ctx.settings, ctx.engine, ctx.redis)
    here.feed.stop()
    key = webkit.key_of(server, "wall", "wall_slow_tick")
    outputs = [{"id": o.component_id, "property": o.component_property} for o in wall.SLOW_OUTPUTS.values()]
    body = json.dumps(webkit.callback_body(key, [{"id": "wall-slow-tick", "property": "n_intervals", "value": 1}],
                                           outputs=outputs)).encode()
    opener, csrf = login(web["base"], "wall1")

    def poll() -> int:
        req = urllib.request.Request(f"{web['base']}/_dash-update-component", data=body, method="POST",
                                     headers={"Content-Type": "application/json", CSRF_HEADER: csrf,
                                              "Connection": "close"})
        with opener.open(req, timeout=30) as resp:
            assert resp.status == 200
            return int(resp.headers["X-Anjian-Worker"])

    def scrape() -> tuple[float, int]:
        """(anjian_web_callback_seconds_count of the slow poll, the worker that answered)."""
        req = urllib.request.Request(f"{web['base']}/metrics", headers={"Connection": "close"})
        with opener.open(req, timeout=10) as resp:
            text, pid = resp.read().decode(), int(resp.headers["X-Anjian-Worker"])
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name == "anjian_web_callback_seconds_count" and s.labels == {"callback": "wall.wall_slow_tick"}:
                    return s.value, pid
        return 0.0, pid

    def scrape_both(expected: int) -> set[int]:
        seen: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            count, pid = scrape()
            seen[pid] = count
        assert len(seen) == 2, f"only {seen} answered /metrics"
        assert seen == {pid: expected for pid in seen}, f"{expected} callbacks were answered, the workers say {seen}"
        return set(seen)

    served: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while (len(served) < 2 or sum(served.values()) < 6) and time.monotonic() < deadline:
        pid = poll()
        served[pid] = served.get(pid, 0) + 1
    assert len(served) == 2, f"the callbacks were only served by {served}"
    sent = sum(served.values())
    workers = scrape_both(sent)
    metrics_dir = Path(ctx.settings.data_dir) / "prometheus-web"
    assert {p.name for p in metrics_dir.glob("histogram_*.db")} >= {f"histogram_{pid}.db" for pid in served}

    # One worker exits (gunicorn starts another): its callbacks stay counted.
    gone = sorted(workers)[0]
    os.kill(gone, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _status, _health, pid = fresh_get(f"{web['base']}/api/v1/health")
        except OSError:
            continue
        if pid not in workers:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no new worker replaced the one that exited")
    assert poll() != gone
    scrape_both(sent + 1)


@pytest.mark.browser
def test_the_console_shows_a_new_alarm_under_two_workers(web):
    from playwright.sync_api import sync_playwright

    reg = web["ctx"].registry()
    sensor = sorted(reg.sensors)[0]
    # As the console's queue names it: without the city and district all names share.
    name = reg.short_name(reg.sensors[sensor][0])
    assert name and name in reg.enterprise_names[reg.sensors[sensor][0]]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"{web['base']}/dispatch")
            page.fill("#username", "disp1")
            page.fill("#password", webkit.PASSWORD)
            page.click("#login-submit")
            page.wait_for_url("**/dispatch")
            page.wait_for_load_state("networkidle")
            time.sleep(1)
            assert name not in page.inner_text("body")
            webkit.open_alert(web["ctx"], sensor_id=sensor)
            page.wait_for_function("n => document.body.innerText.includes(n)", arg=name, timeout=15000)
        finally:
            browser.close()
