"""What a person sees, in a real browser: Playwright drives Debian's chromium
(/usr/bin/chromium; never a downloaded browser) against the dashboard served by
werkzeug in a thread, on the test services, with the tiny demo city of Longhua,
an ingest worker and the alert engine.  Tiles are "none": no network needed.

One module-scoped stack and browser keep the whole file well under two minutes.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import redis

from tests.conftest import TEST_MQTT_URL, TEST_REDIS_URL, unique
from tests.dashboard import webkit
from tests.mqttkit import Publisher, wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
CJK = re.compile(r"[\u4e00-\u9fff]")

# Visible text of a page, minus what is data (names from imports carry aj-data;
# street labels switch to name_en themselves) and Leaflet's attribution.
VISIBLE_TEXT_JS = """() => {
  const skip = el => el.closest('.aj-data, .leaflet-control-attribution, script, style, noscript');
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode, el = n.parentElement, s = n.textContent.trim();
    if (!s || !el || skip(el)) continue;
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || cs.visibility === 'hidden' || cs.display === 'none') continue;
    out.push(s);
  }
  for (const el of document.querySelectorAll('input[placeholder]')) {
    if (!skip(el) && el.getBoundingClientRect().width > 0) out.push(el.placeholder);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from alerts.escalation import Ladder
    from config.settings import load_settings
    from data.alert_store import AlertStore
    from data.auth import create_user
    from data.db import make_engine, migrate
    from data.demo_city import ensure_demo_city
    from data.live import LiveState
    from ingest.alert_engine import AlertEngine
    from ingest.worker import IngestWorker

    ns = unique("b")
    tmp = tmp_path_factory.mktemp("browser")
    s = load_settings(mqtt_url=TEST_MQTT_URL, redis_url=TEST_REDIS_URL, database_url=None, data_dir=tmp,
                      mqtt_prefix=ns, owntracks_topic=f"{ns}-owntracks", z2m_topic=f"{ns}-z2m", redis_namespace=ns,
                      mqtt_client_id=f"{ns}-ingest", mqtt_share_group=ns, tiles="none", sim_scale="tiny")
    engine = make_engine(f"sqlite:///{tmp / 'anjian.sqlite3'}")
    migrate(engine)
    ensure_demo_city(engine, s)
    r = redis.Redis.from_url(TEST_REDIS_URL)
    webkit.make_users(engine)
    fed = webkit.feed_city(engine, LiveState(r, ns), time.time(), n_inspectors=24, high_sensors=0, low_sensors=0)
    ctx, server, _app = webkit.build_web(s, engine, r)
    reg = ctx.registry()
    # Two alarm sensors in different grids, an officer for each grid.
    by_grid: dict = {}
    for sid, (eid, _lat, _lon, street, grid, _hb) in sorted(reg.sensors.items()):
        if grid and grid not in by_grid and eid in reg.enterprise_names:
            by_grid[grid] = (sid, eid, street)
        if len(by_grid) == 2:
            break
    (grid_a, (sensor_a, ent_a, street_a)), (grid_b, (sensor_b, ent_b, street_b)) = list(by_grid.items())
    create_user(engine, "officer-a", webkit.PASSWORD, "officer", streets=[street_a], grids=[grid_a],
                inspector_id=fed["inspectors"][0])
    create_user(engine, "officer-b", webkit.PASSWORD, "officer", streets=[street_b], grids=[grid_b],
                inspector_id=fed["inspectors"][1])
    worker = IngestWorker(s, engine, r)
    worker.start()
    store = AlertStore(engine, LiveState(r, ns), Ladder.from_settings(s), mqtt_prefix=ns)
    alert_engine = AlertEngine(s, engine, r, store, s.mqtt_url)
    alert_engine.start()
    assert worker.conn.subscribed.wait(10)
    srv = webkit.ServerThread(server)
    srv.__enter__()
    try:
        yield {"settings": s, "engine": engine, "ctx": ctx, "server": server, "url": srv.url, "fed": fed,
               # "name" as the lists show it (without the city and district all names share;
               # a part of the full name, so it is in any text that has the full one)
               "a": {"sensor": sensor_a, "enterprise": ent_a, "name": reg.short_name(ent_a),
                     "full_name": reg.enterprise_names[ent_a]},
               "b": {"sensor": sensor_b, "enterprise": ent_b, "name": reg.short_name(ent_b),
                     "full_name": reg.enterprise_names[ent_b]}}
    finally:
        srv.__exit__(None, None, None)
        ctx.feed.stop()
        alert_engine.stop()
        worker.stop()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()
        engine.dispose()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# Every visible text node under ``root`` (the tile attribution left out): [px, text, in
# the queue's badges, states and heads or the history], smallest first.
SMALLEST_TEXT_JS = """(root) => {
  const out = [];
  const walker = document.createTreeWalker(document.querySelector(root), NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const n = walker.currentNode, el = n.parentElement, s = n.textContent.trim();
    if (!s || !el || el.closest('.leaflet-control-attribution, [hidden]')) continue;
    const r = el.getBoundingClientRect(), cs = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || cs.visibility === 'hidden' || cs.display === 'none') continue;
    const desk = !!el.closest('.aj-badge, .aj-state, .aj-queue th, .aj-history');
    // The size on the screen: a CSS zoom (the enterprise page's chart) scales what is computed.
    out.push([parseFloat(cs.fontSize) * (el.currentCSSZoom || 1), s.slice(0, 30), desk]);
  }
  out.sort((a, b) => a[0] - b[0]);
  return out; }"""


class Screen:
    """One logged-in browser context, with what went wrong in it recorded."""

    def __init__(self, browser, url: str, width: int = 1920, height: int = 1080):
        self.context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
        self.page = self.context.new_page()
        self.url = url
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda req: self.requests.append(req.url))

    def login(self, username: str, path: str):
        self.page.goto(self.url + path)
        self.page.fill("#username", username)
        self.page.fill("#password", webkit.PASSWORD)
        self.page.click("#login-submit")
        self.page.wait_for_url(f"**{path}")
        return self

    def api(self, path: str):
        return self.page.evaluate(f"fetch({json.dumps(path)}).then(r => r.json())")

    def text(self) -> list[str]:
        return self.page.evaluate(VISIBLE_TEXT_JS)

    def close(self):
        self.context.close()


PUSH_READY_JS = ("() => !!document.querySelector('.aj-push[data-store]') && "
                 "!!window.anjianPush && window.anjianPush.readyState === 1")


def wait_number(page, selector: str, timeout_ms: int = 15000) -> int:
    page.wait_for_function(f"() => /\\d/.test((document.querySelector({json.dumps(selector)}) || {{}}).textContent || '')",
                           timeout=timeout_ms)
    return int(re.sub(r"\D", "", page.inner_text(selector)))


def test_wall_loads_cleanly_and_its_kpis_match_the_api(stack, browser):
    scr = Screen(browser, stack["url"]).login("wall1", "/wall")
    try:
        page = scr.page
        on_duty = wait_number(page, "#kpi-on-duty-value")
        visits = wait_number(page, "#kpi-visits-today-value")
        open_gas = wait_number(page, "#kpi-open-gas-value")
        inspectors = scr.api("/api/v1/inspectors")
        assert on_duty == sum(1 for d in inspectors if d["status"] != "offline") == 24
        alerts = scr.api("/api/v1/alerts?state=open")
        assert open_gas == sum(1 for a in alerts if a["type"] == "gas_alarm")
        # The fed visits, and the demo history's visits earlier today (in China working hours).
        from sqlalchemy import func, select

        from data.geo_queries import local_day_start
        from data.models import Visit

        with stack["engine"].connect() as conn:
            today = conn.execute(select(func.count()).select_from(Visit).where(
                Visit.start_ts >= local_day_start(time.time()))).scalar_one()
        assert visits == today >= stack["fed"]["visits"]
        # The SQL tiles: the same numbers /api/v1/kpis gives (data.geo_queries.kpis).
        from data import geo_queries

        ctx = stack["ctx"]
        k = geo_queries.kpis(ctx.engine, ctx.redis, ctx.settings.redis_namespace, ctx.settings.interval_days(),
                             time.time())
        assert wait_number(page, "#kpi-duplicates-today-value") == k["duplicates_today"]
        assert page.inner_text("#kpi-coverage-value") == f"{k['coverage_pct']:.1f}%"
        for colour in ("red", "orange", "yellow", "blue"):
            assert page.inner_text(f"#kpi-overdue-{colour}") == str(k["overdue"].get(colour, 0))
        # This week's plan tiles: the numbers of /api/v1/plans/actual (the demo city plans the week).
        actual = scr.api("/api/v1/plans/actual")
        assert actual["kpis"]["items"] > 0
        assert page.inner_text("#kpi-plan-done-value") == f"{actual['completion_pct']:.1f}%"
        assert page.inner_text("#kpi-dups-avoided-value") == str(actual["kpis"]["conflicts_resolved"])
        time.sleep(1.5)  # a few polls
        assert not [e for e in scr.errors if "tile" not in e.lower()], scr.errors
    finally:
        scr.close()


def test_offline_basemap_renders_with_no_tile_server(stack, browser):
    scr = Screen(browser, stack["url"]).login("wall1", "/wall")
    try:
        page = scr.page
        page.wait_for_selector(".aj-street-label", timeout=15000)
        assert page.locator(".aj-street-label").count() == 6  # the six streets of Longhua
        assert page.locator("img.leaflet-tile").count() == 0
        # The street polygons are drawn on the base pane's canvas: count painted pixels.
        painted = page.evaluate("""() => {
          const c = document.querySelector('.leaflet-aj-base-pane canvas');
          if (!c) return 0;
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0; for (let i = 3; i < d.length; i += 4 * 97) if (d[i] > 0) n++;
          return n; }""")
        assert painted > 100
        hosts = {re.sub(r"^https?://([^/]+).*$", r"\1", u) for u in scr.requests if u.startswith("http")}
        assert hosts == {stack["url"].split("//")[1]}, hosts  # nothing fetched from anywhere else
    finally:
        scr.close()


def test_a_wall_whose_session_ended_goes_to_the_login_page(stack, browser):
    """Its polls are answered 401 once the session cookie is gone (a logout, a server
    restarted with another secret key): dash-renderer's request_refresh_jwt hook
    reloads the page, which leads to the login page, instead of a wall frozen on
    stale numbers.  Through Dash's own hook: the browser's fetch is left alone."""
    scr = Screen(browser, stack["url"]).login("wall1", "/wall")
    try:
        page = scr.page
        page.wait_for_selector("#kpi-on-duty-value:not(:text('—'))", timeout=15000)
        assert page.evaluate("() => window.fetch.toString().includes('[native code]')")
        scr.context.clear_cookies()
        page.wait_for_url(re.compile(r"/login\?next=(/|%2F)wall$"), timeout=20000)
        page.wait_for_selector("#username", timeout=10000)
    finally:
        scr.close()


def _check_language(lines: list[str], lang: str, where: str) -> None:
    assert lines, where
    if lang == "en":
        bad = [s for s in lines if CJK.search(s) and s != "中文"]
        assert not bad, f"{where}: Chinese left on the English page: {bad[:10]}"
    else:
        words = {w for s in lines for w in re.findall(r"[A-Za-z]{3,}", s)}
        bad = words - {"LEL", "English"}
        assert not bad, f"{where}: English left on the Chinese page: {sorted(bad)[:10]}"


@pytest.mark.parametrize("user,path,size,ready", [
    ("wall1", "/wall", (1920, 1080), "#kpi-on-duty-value"),
    ("disp1", "/dispatch", (1920, 1080), "#dispatch-inspector-list table"),
    ("officer-a", "/officer", (375, 812), "#officer-list li"),
])
def test_the_language_switch_changes_every_visible_string(stack, browser, user, path, size, ready):
    scr = Screen(browser, stack["url"], *size).login(user, path)
    try:
        page = scr.page
        page.wait_for_selector(ready, timeout=15000)
        time.sleep(0.5)
        zh = scr.text()
        _check_language(zh, "zh-CN", path)
        title_zh = page.inner_text("h1")
        kiosk = user == "wall1"  # no link to press on the kiosk: its URL sets the language

        def switch(to: str):
            if kiosk:
                assert page.locator("#lang-toggle").count() == 0
                page.goto(f"{stack['url']}{path}?lang={to}")
            else:
                page.click("#lang-toggle")
            page.wait_for_url(f"**lang={to}")

        switch("en")
        page.wait_for_selector(ready, timeout=15000)
        time.sleep(0.5)
        en = scr.text()
        _check_language(en, "en", path)
        assert page.inner_text("h1") != title_zh
        assert set(zh) != set(en)
        switch("zh-CN")  # and back
        page.wait_for_selector(ready, timeout=15000)
        assert page.inner_text("h1") == title_zh
    finally:
        scr.close()


def test_past_the_limit_the_console_map_draws_counted_cells(stack, browser, monkeypatch):
    """With more inspectors on shift than INSPECTOR_POINTS_MAX (20,000 at ten times a
    city), the console's map draws discs with counts that add up to the inspectors on
    shift, with no error in the page, and its alarm queue still works beside them."""
    from dashboard.pages import layers

    monkeypatch.setattr(layers, "INSPECTOR_POINTS_MAX", 10)
    scr = Screen(browser, stack["url"]).login("disp1", "/dispatch")
    try:
        page = scr.page
        page.wait_for_selector(".aj-icell", timeout=15000)
        page.wait_for_function("() => !!document.querySelector('#dispatch-queue table, #dispatch-queue .aj-muted')",
                               timeout=15000)
        counts = page.eval_on_selector_all(".aj-icell span", "els => els.map(e => e.textContent)")
        on_shift = [d for d in scr.api("/api/v1/inspectors") if time.time() - d["last_fix_ts"] <= layers.OFF_SHIFT_S]
        assert sum(int(c) for c in counts) == len(on_shift) == 24
        assert 1 < len(counts) < 24
        assert not [e for e in scr.errors if "tile" not in e.lower()], scr.errors
    finally:
        scr.close()


def test_gas_alarm_end_to_end(stack, browser):
    """An alarm published over MQTT takes the wall over and reaches the right officer only;
    a wall account cannot acknowledge it; a dispatcher's acknowledgement unpins the wall card."""
    s, a, b = stack["settings"], stack["a"], stack["b"]
    wall = Screen(browser, stack["url"]).login("wall1", "/wall")
    officer_a = Screen(browser, stack["url"], 375, 812).login("officer-a", "/officer")
    officer_b = Screen(browser, stack["url"], 375, 812).login("officer-b", "/officer")
    dispatcher = Screen(browser, stack["url"]).login("disp1", "/dispatch")
    try:
        wall.page.wait_for_selector("#kpi-on-duty-value:not(:text('—'))", timeout=15000)
        officer_b.page.wait_for_selector("#officer-list li", timeout=15000)
        # Each screen has drawn its page (the push store is in the DOM) and opened its event
        # stream: an event that arrives before that is dropped, and the screen's first poll
        # draws the present instead, so the push assertion below would measure the race.
        for scr in (wall, officer_a, dispatcher):
            scr.page.wait_for_function(PUSH_READY_JS, timeout=15000)
        with Publisher(s.mqtt_url) as pub:
            t0 = time.monotonic()
            pub.publish(f"{s.mqtt_prefix}/v1/sensors/{a['sensor']}/state",
                        {"ts": time.time(), "lel": 64.0, "alarm": "high", "msg_id": uuid.uuid4().hex})
            wall.page.wait_for_selector("#wall-takeover-card.aj-show", timeout=15000)
            latency_s = time.monotonic() - t0
        print(f"MQTT publish -> wall takeover card: {latency_s:.2f} s")
        card = wall.page.inner_text("#wall-takeover-card")
        # The name as a reader tells it from the others: not the city and district all share.
        assert a["name"] in card and a["full_name"] not in card and len(a["name"]) < len(a["full_name"])
        # The alarm was pushed to the screens (GET /api/v1/events), not only found by their polls.
        for scr in (wall, officer_a, dispatcher):
            scr.page.wait_for_function("window.anjianPushed >= 1", timeout=5000)
        assert wall.page.locator(".aj-alarm.aj-pulse").count() >= 1
        # The officer of that grid sees it, at phone width, without sideways scrolling.
        officer_a.page.wait_for_selector(f"#officer-list :text('{a['name']}')", timeout=15000)
        assert officer_a.page.evaluate("document.scrollingElement.scrollWidth") <= 375
        assert officer_a.page.locator("button.aj-big").count() >= 4
        # The officer of another grid does not.
        time.sleep(2.5)  # more than one officer poll
        assert a["name"] not in officer_b.page.inner_text("#officer-list")
        assert "没有未处理的燃气报警" in officer_b.page.inner_text("#officer-list")

        alert_id = wait_until(lambda: next((x["id"] for x in wall.api("/api/v1/alerts?state=open")
                                            if x["sensor_id"] == a["sensor"]), None))
        # The row the event carried (put in at once: assets/anjian.js showNewRows) has given
        # way to the callbacks' own: one row for the alarm in each list, none provisional.
        for scr, sel in ((wall, f"#wall-alert-list [data-alert-id='{alert_id}']"),
                         (dispatcher, f"#queue-row-{alert_id}")):
            scr.page.wait_for_function(
                "sel => document.querySelectorAll(sel).length === 1 && !document.querySelector('.aj-provisional')",
                arg=sel, timeout=10000)
            from_event = scr.page.evaluate(
                "id => (window.anjianPushLog || []).some(e => e.ids.includes(id) && e.rows > 0)", alert_id)
            print(f"{scr.page.url}: row first from the event: {from_event}")
        # The wall has no button to acknowledge with...
        assert wall.page.locator("button:has-text('确认')").count() == 0
        # ...and a request crafted to Dash's callback endpoint from the wall's own session is refused.
        command = {"type": "alert-action", "alert": alert_id, "action": "ack", "outcome": "", "n": 1}
        key = webkit.key_of(stack["server"], "dispatch", "dispatch_act")
        status = wall.page.evaluate("""([key, command]) => {
          const csrf = (document.cookie.match(/anjian_csrf=([^;]+)/) || [])[1] || '';
          return fetch('/_dash-update-component', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf},
            body: JSON.stringify({output: key, outputs: [], changedPropIds: ['dispatch-command.data'],
                                  inputs: [{id: 'dispatch-command', property: 'data', value: command}],
                                  state: [{id: 'dispatch-action-done', property: 'data', value: 0}]})
          }).then(r => r.status); }""", [key, command])
        assert status == 403
        assert wall.page.locator("#wall-takeover-card.aj-show").count() == 1  # still pinned

        # The dispatcher acknowledges it in one click; the wall card goes.
        dispatcher.page.wait_for_selector(f"#queue-row-{alert_id}", timeout=15000)
        dispatcher.page.click(f"#queue-row-{alert_id} button.aj-btn-primary")
        wall.page.wait_for_selector("#wall-takeover-card.aj-show", state="detached", timeout=10000)
        state = next(x for x in dispatcher.api("/api/v1/alerts?state=open") if x["id"] == alert_id)["state"]
        assert state == "acknowledged"

        # Then assigns it: the row's "assign…" opens it in the detail panel with the
        # nearest inspectors; one click sends the first.
        dispatcher.page.click(f"#queue-row-{alert_id} button:has-text('派遣')")
        send = dispatcher.page.wait_for_selector("#dispatch-detail .aj-suggestions button", timeout=10000)
        who = send.inner_text()
        send.click()
        dispatched = wait_until(lambda: next((x for x in dispatcher.api("/api/v1/alerts?state=open")
                                              if x["id"] == alert_id and x["state"] == "dispatched"), None))
        assert dispatched["assignee_id"] and dispatcher.page.inner_text("#dispatch-feedback"), who
        for scr in (wall, officer_a, officer_b, dispatcher):
            assert not [e for e in scr.errors if "tile" not in e.lower() and "403" not in e], scr.errors
    finally:
        for scr in (wall, officer_a, officer_b, dispatcher):
            scr.close()


def test_a_new_alarms_row_from_the_event_goes_in_at_once_in_its_place_and_gives_way(stack, browser):
    """What the pages do with the rows an alert event carries (dashboard/push.py): the
    wall puts the row where the one order puts it (each row's ``data-order``), where it
    stands in for "none", and takes it out when its own list has that alarm or after 5 s;
    the console does the same in its queue, where the queue's next answer, or 5 s, ends
    it.  A row that sorts after every row shown stays out: a screen tour saw old alarms,
    updated, jump from past the list's end to its top, above unacknowledged critical
    ones.  (Whether an event carries rows, and for whom, is tests/dashboard/test_push.py;
    here the rows are given to the page.)"""
    wall = Screen(browser, stack["url"]).login("wall1", "/wall")
    disp = Screen(browser, stack["url"]).login("disp1", "/dispatch")

    def li(aid: int, order: str) -> dict:
        return {"id": aid, "order": order,
                "html": (f'<li class="aj-alert-item aj-provisional" data-alert-id="{aid}" data-order="{order}">'
                         f'<span class="aj-badge aj-sev-critical">紧急</span>'
                         f'<span class="aj-alert-subject">测试餐饮店{aid}</span></li>')}

    def tr(aid: int, order: str) -> dict:
        return {"id": aid, "order": order,
                "html": (f'<tr class="aj-row-critical aj-provisional" id="queue-row-{aid}" data-order="{order}">'
                         f'<td>紧急</td><td>测试餐饮店{aid}</td></tr>')}

    # Orders as order_attr writes them are 28 digits, starting 0-2: "0" sorts before
    # them all, "00" after "0" and before them, "3" after them all.
    first, between, last = (987654, "0"), (987655, "00"), (987656, "3")
    try:
        wall.page.wait_for_selector("#wall-alert-list li", timeout=15000)
        add = "r => window.anjianShowNewRows([r])"
        assert wall.page.evaluate(add, li(*first)) == 1
        got = wall.page.eval_on_selector("#wall-alert-list > li", "li => [li.dataset.alertId, li.textContent]")
        assert got == ["987654", "紧急测试餐饮店987654"]
        assert wall.page.locator("#wall-alert-list .aj-alert-none:visible").count() == 0, "it stands in for 'none'"
        # The same row again (a second event for the alarm) is not put in twice.
        assert wall.page.evaluate(add, li(*first)) == 0
        assert wall.page.evaluate(add, li(*last)) == 0, "a row past the list's end was put in"
        assert wall.page.evaluate(add, li(*between)) == 1
        ordered = wall.page.eval_on_selector_all("#wall-alert-list > li[data-order]", "els => els.map(e => e.dataset.alertId)")
        assert ordered[:2] == ["987654", "987655"] and "987656" not in ordered
        orders = wall.page.eval_on_selector_all("#wall-alert-list > li[data-order]", "els => els.map(e => e.dataset.order)")
        assert orders == sorted(orders), orders
        # No list of the wall's own names these alarms: the rows go after 5 s.
        wall.page.wait_for_selector("#wall-alert-list .aj-provisional", state="detached", timeout=8000)

        disp.page.wait_for_function("() => !!document.querySelector('#dispatch-queue table, #dispatch-queue .aj-muted')",
                                    timeout=15000)
        assert disp.page.evaluate(add, tr(*first)) == 1
        assert disp.page.eval_on_selector("#dispatch-queue tbody > tr", "tr => tr.id") == "queue-row-987654"
        assert disp.page.evaluate(add, tr(*last)) == 0
        assert disp.page.evaluate(add, tr(*between)) == 1
        ids = disp.page.eval_on_selector_all("#dispatch-queue tbody > tr", "els => els.map(e => e.id)")
        assert ids[:2] == ["queue-row-987654", "queue-row-987655"] and "queue-row-987656" not in ids
        disp.page.wait_for_selector("#queue-row-987654", state="detached", timeout=8000)
        for scr in (wall, disp):
            assert not [e for e in scr.errors if "tile" not in e.lower()], scr.errors
    finally:
        wall.close()
        disp.close()


def test_officer_phone_lists_the_days_tasks(stack, browser):
    """An approved plan's items for the officer's inspector appear on the phone as today's
    tasks, the one a visit completed marked done, what is left first; the page says so in
    Chinese, fits 375 px, and the list equals GET /api/v1/tasks for that officer."""
    from sqlalchemy import insert

    from data.auth import create_user
    from data.models import Inspector, Unit, Visit
    from data.plans_store import PlansStore
    from plans.model import day_start_ts, local_date, week_of

    engine, s, a, b = stack["engine"], stack["settings"], stack["a"], stack["b"]
    now = time.time()
    today = local_date(now)
    with engine.begin() as conn:
        conn.execute(insert(Unit).values(id="UT-TASKS", name="测试街道安监办", kind="street_office", street_id=None))
        conn.execute(insert(Inspector).values(id="IT-TASKS", name="任务测试员", unit_id="UT-TASKS"))
    create_user(engine, "officer-tasks", webkit.PASSWORD, "officer", streets=[], grids=[], inspector_id="IT-TASKS")
    store = PlansStore(engine, duplicate_window_s=s.duplicate_window_s, intervals_d=s.interval_days(),
                       tolerance_d=s.plan_match_tolerance_d)
    plan = store.save_plan("UT-TASKS", week_of(today), [
        (1, {"enterprise_id": a["enterprise"], "date": today, "inspector_ids": ["IT-TASKS"], "purpose": "enforcement"}),
        (2, {"enterprise_id": b["enterprise"], "date": today, "inspector_ids": ["IT-TASKS"]})], "test", now)
    store.act_on_plan(plan["id"], "submit", "test", now)
    store.act_on_plan(plan["id"], "approve", "test", now)
    start = max(day_start_ts(today), now - 3600)
    with engine.begin() as conn:
        conn.execute(insert(Visit).values(enterprise_id=a["enterprise"], inspector_id="IT-TASKS", unit_id="UT-TASKS",
                                          start_ts=start, end_ts=start + 600, stay_key=f"IT-TASKS|{start}", ended=True))
    scr = Screen(browser, stack["url"], 375, 812).login("officer-tasks", "/officer")
    try:
        page = scr.page
        page.wait_for_selector("#officer-tasks li.aj-task", timeout=15000)
        rows = page.eval_on_selector_all("#officer-tasks li.aj-task", "els => els.map(e => e.innerText)")
        assert len(rows) == 2
        assert b["name"] in rows[0] and "待检查" in rows[0]  # what is left comes first
        assert a["name"] in rows[1] and "已完成" in rows[1] and "执法检查" in rows[1]
        # Names as the alarm cards above show them, without the shared city and district
        # (a tour read 深圳市龙华区… here under cards that left it out); the full name in the title.
        assert a["full_name"] not in rows[1] and b["full_name"] not in rows[0], rows
        titles = page.eval_on_selector_all("#officer-tasks li.aj-task a.aj-name", "els => els.map(e => e.title)")
        assert titles == [b["full_name"], a["full_name"]], titles
        assert "今日任务" in page.inner_text("#officer-tasks") and "共 2 项，已完成 1 项" in page.inner_text("#officer-tasks")
        api = scr.api("/api/v1/tasks")
        assert [(x["name"], x["done"]) for x in api] == [(b["full_name"], False), (a["full_name"], True)]
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
        # Read at arm's length: no text on the phone under 14 px, its header included (13 px before).
        sizes = page.evaluate(SMALLEST_TEXT_JS, ".aj-officer")
        assert sizes and sizes[0][0] >= 14, sizes[:5]
        assert not scr.errors, scr.errors
        # The same page on a desktop keeps a phone's column (a tour at 1920 px found its
        # buttons 950 px wide).
        page.set_viewport_size({"width": 1920, "height": 1080})
        width = page.eval_on_selector(".aj-officer-body", "el => el.getBoundingClientRect().width")
        assert width <= 720, width
    finally:
        scr.close()
