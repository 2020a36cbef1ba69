"""Names where room is short (issue 18, third tour): the lists drop the city and district
every enterprise name starts with, and a grid's place without the street it repeats."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from dashboard.context import Registry
from dashboard.names import admin_prefixes, short_name
from dashboard.pages import dispatch, layers, wall
from data import demo_city
from tests.dashboard import webkit


def _demo_names(n: int = 5000) -> list[str]:
    rng = np.random.default_rng(3)
    return demo_city._enterprise_names(rng, rng.integers(0, len(demo_city.INDUSTRIES), n))


def test_the_demo_registry_teaches_its_own_city_and_district():
    names = _demo_names()
    prefixes = admin_prefixes(names)
    assert prefixes == {"深圳市", "龙华区"}
    shorts = [short_name(n, prefixes) for n in names]
    assert not any(s.startswith(("深圳市", "龙华区")) for s in shorts)
    assert short_name("深圳市龙华区张记川菜馆", prefixes) == "张记川菜馆"
    assert short_name("深圳市恒达五金有限公司", prefixes) == "恒达五金有限公司"
    # Another city's name, and one that would be cut to almost nothing, stay whole.
    assert short_name("广州市天河区张记川菜馆", prefixes) == "广州市天河区张记川菜馆"
    assert short_name("深圳市龙华区小店", prefixes) == "龙华区小店"
    assert short_name("", prefixes) == "" and short_name(None, prefixes) == ""


def test_a_word_is_learnt_only_when_many_names_share_it():
    # 30 supermarkets of one chain ("…超市" ends like a city) among 400 names: under a tenth.
    names = [f"万佳超市{k}号店" for k in range(30)] + [f"深圳市店{k:03d}" for k in range(370)]
    assert admin_prefixes(names) == {"深圳市"}
    assert short_name("万佳超市龙华分店", admin_prefixes(names)) == "万佳超市龙华分店"
    # A registry of a few names teaches nothing: each list shows names as registered.
    assert admin_prefixes(["深圳市龙华区老王餐饮店", "深圳市华丰电子科技有限公司"]) == frozenset()


def _district_registry(ctx):
    """The test city's registry padded with 40 shops of the district, so that the shared
    "深圳市龙华区" is learnt: (registry, an enterprise id, its full name, its short name)."""
    base = ctx.registry()
    names = dict(base.enterprise_names)
    names.update({f"X{k}": f"深圳市龙华区填充{k:02d}号店" for k in range(40)})
    reg = Registry(base.inspectors, base.sensors, names, admin_prefixes(names.values()))
    eid, full = next((k, v) for k, v in base.enterprise_names.items() if v.startswith("深圳市龙华区"))
    return reg, eid, full, full.removeprefix("深圳市龙华区")


def test_the_console_and_the_wall_show_the_short_name_and_keep_the_full_one_at_hand(web):
    ctx, server, _app, users = web
    reg, eid, full, short = _district_registry(ctx)
    a = {"id": 7, "type": "gas_alarm", "severity": "critical", "state": "open", "enterprise_id": eid,
         "street_id": "ST1", "grid_id": "G1", "first_seen_ts": time.time() - 30, "subject": f"enterprise:{eid}"}
    with server.test_request_context("/"):
        from dashboard.pages.common import city

        c = city()
        row = str(dispatch.queue_row(a, reg, c, "zh-CN", time.time(), None))
        detail = str(dispatch.detail_panel(a, [], reg, c, "zh-CN", time.time()))
        side = [text for text, _cls in wall.side_parts(a, reg, c, "zh-CN")]
    assert f'<span class="aj-data">{short}</span>' in row and f'title="{full}"' in row
    assert short in side and full not in side
    assert f"<h3 class=\"aj-data\">{full}</h3>" in detail  # the selected alarm's heading: in full
    # An area's alert is named by its area: the place column does not say it again.
    overdue = {"id": 8, "type": "overdue_inspection", "severity": "warning", "state": "open", "street_id": "ST1",
               "first_seen_ts": time.time() - 60, "subject": "overdue:ST1"}
    with server.test_request_context("/"):
        row = str(dispatch.queue_row(overdue, reg, c, "zh-CN", time.time(), None))
        line = layers.alert_line(overdue, reg, c, "zh-CN")
    assert row.count("民治街道") == 2, row  # the subject, and its tooltip; not a third time as the place
    # Nor does the wall's ticker (a tour read 检查逾期 · 民治街道 · 民治街道 · 待处理).
    assert line.count("民治街道") == 1, line
    # Units share the words too: "龙华区应急管理局执法科" reads "应急管理局执法科".
    assert reg.short("龙华区应急管理局执法科") == "应急管理局执法科" and reg.short(None) is None
    # The place: the street once, then the grid's own number.
    assert layers.area_name(a, c, "zh-CN") == "民治街道 · 第1网格"
    assert layers.area_name(a, c, "en") == "Minzhi · Grid 1"


def test_the_hazard_lists_show_the_short_name_with_the_full_one_as_tooltip(web):
    """The fourth tour: the wall's major-hazard list showed four rows all cut to
    "深圳市龙华区…".  It names enterprises as the alert lists do."""
    from dashboard.pages import hazard_panels

    ctx, server, _app, _users = web
    reg, eid, full, short = _district_registry(ctx)
    h = {"id": 3, "enterprise_id": eid, "street_id": "ST1", "grid_id": "G1", "level": "major", "overdue": True,
         "state": "rectifying", "deadline_ts": time.time() - 86400}
    with server.test_request_context("/"):
        for compact in (True, False):  # the wall, the console
            item = hazard_panels._item(h, "zh-CN", reg, None, compact)
            spans = [c for c in item.children if getattr(c, "className", "") and "aj-data" in c.className]
            assert [(x.children, x.title) for x in spans] == [(short, full)], compact


def test_a_grid_keeps_its_name_when_it_does_not_start_with_its_street():
    c = SimpleNamespace(street_names={"S": ("观湖街道", "Guanhu")},
                        grid_names={"G": "观湖街道第03网格", "H": "松元厦社区网格", "K": "观湖"})
    assert layers.area_name({"street_id": "S", "grid_id": "G"}, c, "zh-CN") == "观湖街道 · 第03网格"
    assert layers.area_name({"street_id": "S", "grid_id": "H"}, c, "zh-CN") == "观湖街道 · 松元厦社区网格"
    assert layers.area_name({"street_id": "S", "grid_id": "K"}, c, "zh-CN") == "观湖街道 · 观湖"
    assert layers.area_name({"grid_id": "G"}, c, "zh-CN") == "观湖街道第03网格"


def test_the_walls_unit_legend_leaves_out_the_district_its_title_names(web, monkeypatch):
    """The wall's title names the bureau ("龙华区应急管理局"); its legend of units need
    not say "龙华区" twelve times, and so its names fit whole at a larger type."""
    ctx, server, _app, users = web
    base = ctx.registry()
    names = dict(base.enterprise_names) | {f"X{k}": f"深圳市龙华区填充{k:02d}号店" for k in range(40)}
    monkeypatch.setattr(ctx, "registry", lambda: Registry(base.inspectors, base.sensors, names, admin_prefixes(names.values())))
    with webkit.as_user(server, users["wall"]):
        page = wall.build(users["wall"], "zh-CN")
    legend = str(webkit.find(page, "wall-unit-legend"))
    assert "'应急管理局执法科'" in legend and "title='龙华区应急管理局执法科'" in legend, legend
    assert "'民治街道安监办'" in legend  # a name without the words stays as it is
