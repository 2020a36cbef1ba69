"""Online adjudication of a disputed hazard (线上研判) in a real browser at 375 px (Playwright,
Debian's chromium): officers of two units give their views on the thread's page, the admin
makes the one final decision there, and the hazard, the thread and the audit chain say so;
after it the thread is closed on every screen.  The wall's kiosk gets no link to it."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from data import audit
from data.auth import create_user
from data.hazards_store import HazardStore
from data.models import Unit
from data.reviews_store import HazardDiscussionStore
from tests.citykit import write_small_city
from tests.dashboard import webkit
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.dashboard.test_browser_hazards import _phone  # a logged-in phone (375 px)

pytestmark = pytest.mark.browser


@pytest.fixture
def adj_stack(settings, sqlite_engine, redis_client):
    write_small_city(sqlite_engine)
    webkit.make_users(sqlite_engine)
    # An officer of a second unit (inspector I2 is of unit U2) in the same grid.
    create_user(sqlite_engine, "off3", webkit.PASSWORD, "officer", streets=["ST1"], grids=["G1"], inspector_id="I2")
    with sqlite_engine.begin() as conn:  # U2 (民治街道安监办) has an English name; U1 has none
        conn.execute(update(Unit).where(Unit.id == "U2").values(name_en="Minzhi Safety Office"))
    ctx, server, _app = webkit.build_web(settings.model_copy(update={"tiles": "none"}), sqlite_engine, redis_client)
    store = HazardStore(sqlite_engine, ctx.settings)
    h = store.create("off1", enterprise_id="E1", category="SC01", level="general", found_by="inspector",
                     finder_id="I1", description="液化气钢瓶与灶具间距不足")
    with webkit.ServerThread(server) as srv:
        yield ctx, srv.url, h["id"]
    ctx.feed.stop()


def test_two_units_discuss_and_the_admin_decides_on_a_phone(adj_stack):
    from playwright.sync_api import sync_playwright

    ctx, url, hid = adj_stack
    path = f"/hazards/{hid}/discussion"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for user, view in (("off1", "属一般隐患，限期整改即可"), ("off3", "钢瓶间距不足属重大隐患")):
                c, page, errors = _phone(browser, url, user, path)
                pages.append((c, page, errors))
                page.wait_for_selector("#adj-hazard:not(:empty)")
                # The enterprise by name, not its id; the app's frame: the way back and the language.
                assert page.inner_text("#adj-hazard").startswith("深圳市龙华区老王餐饮店 · ")
                assert page.get_attribute("#hz-back", "href") == "/officer/hazards"
                assert page.locator("#lang-toggle").count() == 1
                assert page.locator("#adj-decision-box").count() == 0  # officers discuss, they do not decide
                page.fill("#adj-comment", view)
                page.click("#adj-comment-post")
                page.wait_for_function(f"() => document.querySelector('#adj-posts').innerText.includes({view!r})")
                assert "审计" in page.inner_text("#adj-status")
                assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
            # The second unit's view names its unit; the first names its author by display name.
            assert "民治街道安监办" in pages[1][1].inner_text("#adj-posts")
            assert "网格员一（" in pages[1][1].inner_text("#adj-posts")
            # The page is dark like the other screens (the tour saw browser-default white boxes).
            bg = pages[0][1].eval_on_selector("#adj-comment", "el => getComputedStyle(el).backgroundColor")
            assert bg == "rgb(7, 18, 35)", bg
            # In English the second unit is named in English (units.name_en), the first, which has
            # no English name, by its registered name.
            officer3 = pages[1][1]
            officer3.click("#lang-toggle")
            officer3.wait_for_function("() => document.documentElement.lang === 'en' && "
                                       "document.querySelectorAll('#adj-posts .post').length === 2")
            posts = officer3.inner_text("#adj-posts")
            assert "Minzhi Safety Office" in posts and "民治街道安监办" not in posts, posts
            assert "龙华区应急管理局执法科" in posts

            # The admin decides: major, another category, the advice.
            c, admin, aerr = _phone(browser, url, "admin1", path)
            pages.append((c, admin, aerr))
            admin.wait_for_selector("#adj-posts .post")
            assert admin.locator("#adj-posts .post").count() == 2
            admin.select_option("#adj-category", "SC02")
            admin.check("input[name=adj-level][value=major]")
            admin.fill("#adj-advice", "钢瓶移至室外专用间，安装燃气泄漏报警器")
            admin.fill("#adj-grounds", "依据小餐饮场所燃气安全规定")
            admin.click("#adj-decide")
            admin.wait_for_selector("#adj-posts .post.decision")
            assert admin.is_visible("#adj-banner") and admin.is_hidden("#adj-decision-box")
            assert "钢瓶移至室外专用间" in admin.inner_text("#adj-posts .post.decision")

            # An officer's screen, reloaded: the thread is closed, the decision shown.
            officer = pages[0][1]
            officer.reload()
            officer.wait_for_selector("#adj-posts .post.decision")
            assert officer.is_visible("#adj-banner") and officer.is_hidden("#adj-comment-box")
            for _c, _page, errors in pages:
                assert errors == [], errors
        finally:
            browser.close()

    # The hazard carries the decision; the thread and the audit chain hold it.
    h = HazardStore(ctx.engine, ctx.settings).get(hid)
    assert (h["category"], h["level"], h["advice"]) == ("SC02", "major", "钢瓶移至室外专用间，安装燃气泄漏报警器")
    th = HazardDiscussionStore(ctx.engine).thread(hid)
    assert [(x["actor"], x["kind"]) for x in th["posts"]] == [("off1", "comment"), ("off3", "comment"),
                                                               ("admin1", "decision")]
    actions = [e.action for e in audit.entries(ctx.engine) if e.target == f"hazard:{hid}"]
    assert actions == ["hazard_report", "hazard_discuss", "hazard_discuss", "hazard_adjudicate"]
    assert audit.verify(ctx.engine) is None


def test_the_thread_is_linked_for_those_who_take_part_and_not_on_the_wall(adj_stack):
    from dash import html

    from dashboard.pages.hazard_panels import _item

    ctx, _url, hid = adj_stack
    h = {"id": hid, "enterprise_id": "E1", "street_id": "ST1", "grid_id": "G1", "level": "major", "overdue": False,
         "state": "rectifying", "deadline_ts": None}

    def links(role):
        from data.auth import Principal

        item = _item(h, "zh-CN", ctx.registry(), Principal(1, "x", role, streets=("ST1",), grids=("G1",)))
        return [c for c in item.children if isinstance(c, html.A)]

    assert [a.href for a in links("dispatcher")] == [f"/hazards/{hid}/discussion"]
    assert links("officer") and links("admin")
    assert links("wall") == []  # the kiosk has no controls
