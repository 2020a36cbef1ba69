"""The hazard screens in a real browser at 375 px (Playwright, Debian's chromium): an
officer records a hazard with a photo from the phone's file input, the enterprise's own
account uploads the rectification evidence, and the officer accepts it on site (the
GPS fix of the officer's phone at the door)."""

from __future__ import annotations

import re
import time

import pytest

from data.auth import create_user
from geo.types import Ping
from tests.citykit import ENTERPRISE_A, write_small_city
from tests.dashboard import webkit
from tests.dashboard.test_api_hazards import png_bytes
from tests.dashboard.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser


@pytest.fixture
def phone_stack(settings, sqlite_engine, redis_client):
    write_small_city(sqlite_engine)
    webkit.make_users(sqlite_engine)
    create_user(sqlite_engine, "ent1", webkit.PASSWORD, "enterprise", enterprise_id="E1")
    ctx, server, _app = webkit.build_web(settings.model_copy(update={"tiles": "none"}), sqlite_engine, redis_client)
    with webkit.ServerThread(server) as srv:
        yield ctx, srv.url
    ctx.feed.stop()


def _phone(browser, url, username, path):
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN", is_mobile=True)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + path)
    page.fill("#username", username)
    page.fill("#password", webkit.PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"**{path}")
    return context, page, errors


def test_record_rectify_accept_on_a_phone(phone_stack):
    from playwright.sync_api import sync_playwright

    ctx, url = phone_stack
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # The officer: enterprise, category, level, photo, note, record.
            octx, officer, oerr = _phone(browser, url, "off1", "/officer/hazards")
            # The frame of the other screens: a way back to the alarms, the language, dark inputs.
            assert officer.get_attribute("#hz-back", "href") == "/officer"
            assert officer.locator("#lang-toggle").count() == 1
            assert officer.eval_on_selector("#hz-note", "e => getComputedStyle(e).backgroundColor") != "rgb(255, 255, 255)"
            # The enterprise by its name, not its id: typing part of it offers the matches.
            officer.fill("#hz-enterprise", "老王")
            officer.wait_for_selector("#hz-enterprises option[data-id='E1']", state="attached")
            name = officer.get_attribute("#hz-enterprises option[data-id='E1']", "value")
            assert name == "深圳市龙华区老王餐饮店"
            officer.fill("#hz-enterprise", name)
            officer.select_option("#hz-category", "SC01")
            officer.check("#hz-level-major")
            # The photo picker speaks the page's language (the browser's own said "Choose File").
            assert officer.inner_text("#hz-photo-choose") == "选择照片"
            assert officer.inner_text("#hz-photo-name") == "未选择照片"
            officer.set_input_files("#hz-photo", {"name": "IMG_0001.png", "mimeType": "image/png",
                                                  "buffer": png_bytes()})
            assert officer.inner_text("#hz-photo-name") == "IMG_0001.png"
            officer.fill("#hz-note", "液化气钢瓶放在地下室")
            officer.click("#hz-submit")
            officer.wait_for_function("() => document.querySelector('#hz-status').dataset.hazardId")
            assert officer.inner_text("#hz-photo-name") == "未选择照片"  # the form is ready for the next
            hid = int(officer.eval_on_selector("#hz-status", "e => e.dataset.hazardId"))
            from data.hazards_store import HazardStore

            store = HazardStore(ctx.engine, ctx.settings)
            h = store.get(hid)
            assert (h["state"], h["level"], h["category"], h["enterprise_id"]) == ("rectifying", "major", "SC01", "E1")
            assert [p["stage"] for p in h["photos"]] == ["finding"]
            # No horizontal scrolling at 375 px.
            assert officer.evaluate("() => document.documentElement.scrollWidth") <= 375

            # The enterprise, from its own account: evidence and a note.
            ectx, ent, eerr = _phone(browser, url, "ent1", "/my")
            ent.wait_for_selector(f"#ev-photo-{hid}-choose")
            assert ent.inner_text(f"#ev-photo-{hid}-name") == "未选择照片"
            ent.set_input_files(f"#ev-photo-{hid}", {"name": "after.png", "mimeType": "image/png",
                                                     "buffer": png_bytes(8, 8)})
            ent.fill(f"#ev-note-{hid}", "钢瓶已移至地面通风处")
            ent.click(f"#ev-submit-{hid}")
            ent.wait_for_function(f"() => !document.querySelector('#ev-submit-{hid}')")
            assert store.get(hid)["state"] == "rectified"
            assert ent.evaluate("() => document.documentElement.scrollWidth") <= 375

            # The officer at the door accepts on site.
            ctx.live.apply_pings([Ping("I1", time.time(), ENTERPRISE_A[1] + 0.0001, ENTERPRISE_A[2], acc_m=6)])
            officer.reload()
            # The evidence to judge shows as a thumbnail that the browser decoded (not a broken image).
            officer.wait_for_function(f"() => {{ const i = document.querySelector('#thumbs-{hid} img');"
                                      f" return i && i.complete && i.naturalWidth > 0; }}")
            assert officer.eval_on_selector(f"#thumbs-{hid} img", "i => i.naturalWidth") == 8
            # The waiting item by the enterprise's and the category's names, with its deadline.
            officer.wait_for_function(f"() => document.querySelector('#w-{hid}').textContent.includes('老王餐饮店')")
            item = officer.inner_text(f"#w-{hid}")
            # The deadline in characters that never break (a phone broke "2026-" / "12-04").
            deadline = re.search(r"整改期限 \d{4}\u2011\d\d\u2011\d\d\u00a0\d\d:\d\d", item)
            assert "SC01" not in item and "E1 " not in item and deadline, item
            officer.click(f"#accept-{hid}")
            officer.wait_for_function(f"() => !document.querySelector('#accept-{hid}')")
            h = store.get(hid)
            assert (h["state"], h["accept_method"]) == ("accepted", "on_site")
            # In English, the picker's words too, whatever the browser's own language (zh-CN here).
            officer.goto(url + "/officer/hazards?lang=en")
            officer.wait_for_selector("#hz-photo-choose")
            assert officer.inner_text("#hz-photo-choose") == "Choose photo"
            assert officer.inner_text("#hz-photo-name") == "No photo chosen"
            assert not oerr and not eerr
            octx.close()
            ectx.close()
        finally:
            browser.close()
