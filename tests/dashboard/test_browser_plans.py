"""The plans page in a real browser (Playwright, Debian's chromium), as a dispatcher uses
it: upload a plan file (a row error first, shown and nothing stored, then a good file),
see the collision with another unit's plan in the list and on the map, and merge it into
a joint inspection in one click, which the API then lists with the rule's lead unit."""

from __future__ import annotations

import re
import time

import pytest

from data.plans_store import PlansStore, week_now
from plans.model import week_dates
from tests.citykit import write_small_city
from tests.dashboard import webkit
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

# dashboard/pages/plans.py rings a planned visit in an open collision in this colour; the
# markers are drawn on Leaflet's canvas (preferCanvas), so the test counts its pixels.
# The collision ring's colour, --attention #c9a0ff (not the risk red: colour means one thing).
RINGED_PIXELS_JS = """() => {
  let n = 0;
  for (const c of document.querySelectorAll('#plans-map .leaflet-overlay-pane canvas')) {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4)
      if (Math.abs(d[i] - 201) < 12 && Math.abs(d[i + 1] - 160) < 12 && Math.abs(d[i + 2] - 255) < 12 && d[i + 3] > 200) n++;
  }
  return n; }"""


@pytest.fixture
def plans_stack(settings, sqlite_engine, redis_client):
    write_small_city(sqlite_engine)
    webkit.make_users(sqlite_engine)
    s = settings.model_copy(update={"tiles": "none"})
    ctx, server, _app = webkit.build_web(s, sqlite_engine, redis_client)
    with webkit.ServerThread(server) as srv:
        yield ctx, srv.url, s
    pub = server.extensions.get("anjian_task_publisher")
    if pub is not None:
        pub.close()
    ctx.feed.stop()


def test_upload_see_the_collision_on_the_map_and_merge_it(plans_stack, tmp_path):
    from playwright.sync_api import sync_playwright

    ctx, url, s = plans_stack
    week = week_now(time.time())
    mon, wed = week_dates(week)[0], week_dates(week)[2]
    store = PlansStore(ctx.engine, duplicate_window_s=s.duplicate_window_s, intervals_d=s.interval_days(),
                       tolerance_d=s.plan_match_tolerance_d)
    # The street office U2 already plans E1 on Wednesday.
    store.save_plan("U2", week, [(1, {"enterprise_id": "E1", "date": wed, "inspector_ids": ["I2"]})], "test",
                    time.time())
    bad, good = tmp_path / "bad.csv", tmp_path / "u1.csv"
    bad.write_text(f"enterprise_id,date,inspector_ids\nE1,{mon},I1\nNO-SUCH,{mon},I1\n", encoding="utf-8")
    good.write_text(f"enterprise_id,date,inspector_ids\nE1,{mon},I1\n", encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN").new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/plans")
            page.fill("#username", "disp1")
            page.fill("#password", webkit.PASSWORD)
            page.click("#login-submit")
            page.wait_for_url("**/plans")
            page.wait_for_selector("#plans-conflicts")
            assert "没有冲突" in page.inner_text("#plans-conflicts") or page.locator(
                "#plans-conflicts li.aj-conflict-open").count() == 0
            time.sleep(1)  # the map has drawn U2's planned visit, not ringed
            assert page.evaluate(f"({RINGED_PIXELS_JS})()") == 0
            # A file with a bad row: the row and its reason are shown, nothing is stored.
            page.set_input_files("#plans-upload input[type=file]", str(bad))
            page.wait_for_selector("#plans-upload-errors li")
            assert "3" in page.inner_text("#plans-upload-errors") and "unknown_enterprise" in page.inner_text(
                "#plans-upload-errors")
            assert [pl["unit_id"] for pl in store.list_plans(week)] == ["U2"]
            # The good file for U1 (the unit preselected): the collision appears.
            page.set_input_files("#plans-upload input[type=file]", str(good))
            page.wait_for_selector("#plans-conflicts li.aj-conflict-open")
            li = page.inner_text("#plans-conflicts li.aj-conflict-open")
            assert "同周多单位" in li
            # The collision names the units and days that meet, not the items' numbers;
            # the week grid names units, not U1.
            assert f"龙华区应急管理局执法科 {mon[5:]}" in li and f"民治街道安监办 {wed[5:]}" in li and "#" not in li, li
            grid = page.inner_text("#plans-grid")
            assert "民治街道安监办" in grid and not re.search(r"\bU\d", grid), grid
            # The week takes the screen; upload and draw are the side column.
            width = page.eval_on_selector("#plans-grid", "el => el.closest('.aj-panel').getBoundingClientRect().width")
            assert width > 0.6 * 1920, width
            # On the map the planned visits of the collision are ringed.
            page.wait_for_function(f"({RINGED_PIXELS_JS})() > 20")
            # One click merges it into a joint inspection.
            page.click("#plans-conflicts li.aj-conflict-open button")
            page.wait_for_selector("#plans-conflicts li.aj-conflict-done")
            assert "已合并为联合检查" in page.inner_text("#plans-conflicts li.aj-conflict-done")
            assert "已生成联合检查任务" in page.inner_text("#plans-feedback")
            page.wait_for_function(f"({RINGED_PIXELS_JS})() === 0")
            joint = page.evaluate(f"fetch('/api/v1/joint-tasks?week={week}').then(r => r.json())")
            assert [(j["enterprise_id"], j["lead_unit_id"], j["unit_ids"]) for j in joint] == [("E1", "U1", ["U1", "U2"])]
            # On a phone: nothing wider than the screen, each header link on one line (they
            # broke one character per line), the title whole.
            page.set_viewport_size({"width": 375, "height": 812})
            time.sleep(0.5)
            assert page.evaluate("document.scrollingElement.scrollWidth") <= 375
            tall = page.evaluate("""() => [...document.querySelectorAll('.aj-nav-link')]
              .filter(a => a.getBoundingClientRect().height > 2 * parseFloat(getComputedStyle(a).lineHeight || 20))
              .map(a => a.textContent)""")
            assert not tall, tall
            assert page.eval_on_selector("h1", "el => el.getBoundingClientRect().right") <= 375
            assert not errors, errors
        finally:
            browser.close()
