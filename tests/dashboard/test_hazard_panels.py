"""Major hazards on the wall until they are closed, overdue ones on the dispatcher
console, and the street ranking of the newest scored day (plain calls of the page
callbacks, as the signed-in user, on the small city)."""

from __future__ import annotations

import time

from data.hazards_store import HazardStore
from data.scores_store import run_day
from tests.dashboard import webkit
from tests.dashboard.test_api_hazards import png_bytes

D = 86400.0


def _hazard_ids(children) -> list[str]:
    return [c.to_plotly_json()["props"].get("data-hazard") for c in children
            if c.to_plotly_json()["props"].get("data-hazard")]


def test_wall_and_dispatcher_show_major_and_overdue_hazards(web):
    ctx, server, _app, users = web
    from dashboard.pages.dispatch import dispatch_hazards
    from dashboard.pages.wall import wall_hazards

    store = HazardStore(ctx.engine, ctx.settings)
    now = time.time()
    major = store.create("off1", enterprise_id="E1", category="SC01", level="major", found_by="inspector", now=now)
    late = store.create("off1", enterprise_id="E2", category="EQ01", level="general", found_by="inspector",
                        now=now - 20 * D)
    store.act(late["id"], "assign", "off1", now=now - 20 * D + 60)  # 7 days: overdue now
    store.create("off1", enterprise_id="E2", category="EQ03", level="general", found_by="inspector", now=now)
    run_day(ctx.engine, ctx.settings, "2026-11-30")
    server.extensions["anjian_cache"]._data.clear()

    with webkit.as_user(server, users["wall"]):
        out = wall_hazards(1)
    assert _hazard_ids(out["major"]) == [str(major["id"])]
    ranking = [c.to_plotly_json()["props"]["data-street"] for c in out["ranking"]]
    assert sorted(ranking) == ["ST1", "ST2"]
    with webkit.as_user(server, users["dispatcher"]):
        items = dispatch_hazards(1)
    assert _hazard_ids(items) == [str(late["id"]), str(major["id"])]  # overdue first, then major
    # An overdue hazard's deadline is days past: it carries its date, not only a time of day.
    from dashboard.pages.common import fmt_time
    from tests.dashboard.test_consoles import text_of

    deadline = store.get(late["id"])["deadline_ts"]
    assert f'"整改期限 {fmt_time(deadline, with_date=True)}", "className": "aj-nowrap"' in text_of(items)

    # Closed (销号), the major hazard leaves the wall.
    store.act(major["id"], "assign", "off1")
    store.add_photo(major["id"], "rectification", png_bytes(), "ent1")
    store.act(major["id"], "rectify", "ent1", note="done")
    store.act(major["id"], "accept", "off1", method="review")
    store.act(major["id"], "close", "off1")
    server.extensions["anjian_cache"]._data.clear()
    with webkit.as_user(server, users["wall"]):
        assert _hazard_ids(wall_hazards(2)["major"]) == []


def test_the_enterprise_profile_shows_the_credit_face(web):
    ctx, server, _app, users = web
    from dashboard.pages import enterprise
    from tests.dashboard.test_consoles import text_of

    store = HazardStore(ctx.engine, ctx.settings)
    now = time.time()
    h = store.create("off1", enterprise_id="E1", category="SC01", level="general", found_by="inspector",
                     now=now - 20 * D)
    store.act(h["id"], "assign", "off1", now=now - 20 * D + 60)  # overdue: red light
    from data.scores_store import china_day

    run_day(ctx.engine, ctx.settings, china_day(now - D))
    store.submit_self_inspection("E1", "ent1", [{"code": "SC01", "ok": False}, {"code": "SC02", "ok": True}],
                                 now=now - 2 * D)
    with webkit.as_user(server, users["dispatcher"]):
        page = text_of(enterprise.layout(enterprise_id="E1"))
    assert "信用脸谱" in page and "enterprise-score-trend" in page
    # The rank beside how many were scored and how many share it (E2 has nothing against it).
    assert "第 2 名 / 共 2 家" in page or "第 1 名 / 共 2 家" in page, page
    # The hazards in a panel of their own, and the enterprise's self-inspections: two
    # items, one problem.
    assert '"id": "enterprise-hazards"' in page and '"id": "enterprise-self-inspections"' in page
    assert "企业自查" in page and '"检查项"' in page
    assert "隐患：未销号 1，已销号 0，超期 1" in page
    assert "红灯企业" in page and "隐患超期未整改" in page
    # The hazard by the catalogue's name, not its code (the tour saw "SC01").
    assert "瓶装液化气钢瓶放置在地下室" in page and "SC01" not in page
    # The trend's dates as numbers (plotly would write "Nov 8" in the Chinese page).
    assert '"tickformat": "%m-%d"' in page


def test_a_shared_rank_says_how_many_share_it():
    from dashboard.pages.enterprise import rank_text

    face = {"rank": 1, "ranked": 20018, "tied": 17587, "score_date": "2026-12-05"}
    # Thousands tied: the share of all ranked says that this one is typical, not first.
    assert rank_text(face, "zh-CN") == "第 1 名 / 共 20,018 家（与 88% 的企业同分并列） · 2026-12-05"
    assert rank_text(face, "en") == "#1 of 20,018 (tied with 88% of them) · 2026-12-05"
    assert rank_text({**face, "tied": 150}, "en") == "#1 of 20,018 (tied with 0.7% of them) · 2026-12-05"
    assert rank_text({**face, "tied": 12}, "zh-CN") == "第 1 名 / 共 20,018 家（12 家并列） · 2026-12-05"
    assert rank_text({**face, "rank": 3, "tied": 1}, "en") == "#3 of 20,018 · 2026-12-05"
