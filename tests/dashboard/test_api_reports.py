"""Bulletins through the API: generate, list, download; the PDF's text and charts
(poppler's pdftotext, pdftoppm, pdfimages) and its numbers against the API's own
answers for the same period; roles."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.dashboard import webkit
from tests.reportkit import EXPECTED, W0, WEEK, write_week

# scripts/ensure-services.sh (the test command) installs poppler-utils: a missing tool fails, never skips.
assert shutil.which("pdftotext") and shutil.which("pdftoppm"), "poppler-utils is not installed (make services)"

END = W0 + 7 * 86400
# The zh-CN labels of the figures the PDF prints (dashboard/i18n.py), by figure name.
LABELS = {
    "visits": "检查次数", "enterprises_visited": "检查企业数", "duplicates": "跨单位重复检查次数",
    "same_unit_repeats": "本单位重复检查次数", "caught_live": "实时发现的重复/同时检查告警",
    "reassigned": "改派避免的重复检查", "coverage_pct": "按期检查覆盖率", "enterprises": "企业总数",
    "within": "按期内企业数", "overdue": "超期未检企业数", "overdue_red": "超期红色企业", "overdue_blue": "超期蓝色企业",
    "alarms": "燃气报警次数", "acknowledged": "已确认次数", "arrived": "到场处置次数",
    "ack_p50_s": "确认用时中位数（P50）", "ack_p95_s": "确认用时 P95", "arrive_p50_s": "到场用时中位数（P50）",
    "arrive_p95_s": "到场用时 P95",
}


@pytest.fixture
def stack(web_settings, sqlite_engine, redis_client):
    write_week(sqlite_engine)
    webkit.make_users(sqlite_engine)
    ctx, server, _app = webkit.build_web(web_settings, sqlite_engine, redis_client)
    yield server
    ctx.feed.stop()


def client(server, role):
    c = server.test_client()
    assert webkit.login(c, webkit.USERNAMES[role]).status_code == 302
    return webkit.as_our_page(c)


def pdf_figures(text: str) -> dict[str, float]:
    out = {}
    for name, label in LABELS.items():
        m = re.search(r"^\s*" + re.escape(label) + r"\s{2,}([0-9.]+)", text, re.M)
        assert m, f"no line for {label} in the PDF text"
        out[name] = float(m.group(1))
    return out


def api_numbers(c) -> dict[str, float]:
    """The same numbers, from the API's own routes for the same week."""
    visits = c.get(f"/api/v1/visits?since={W0}&until={END}&limit=5000").get_json()
    cov = c.get("/api/v1/coverage").get_json()
    overdue = c.get("/api/v1/overdue/counts").get_json()
    alerts = c.get("/api/v1/alerts?limit=2000").get_json()
    in_week = [a for a in alerts if W0 <= a["first_seen_ts"] < END]
    gas = [a for a in in_week if a["type"] == "gas_alarm"]

    def first(a, state):
        return next((h["at_ts"] - a["first_seen_ts"] for h in a["history"] if h["to_state"] == state), None)

    ack = [x for x in (first(a, "acknowledged") for a in gas) if x is not None]
    arr = [x for x in (first(a, "on_scene") for a in gas) if x is not None]
    per_colour = {c_: sum(v.get(c_, 0) for v in overdue.values()) for c_ in ("red", "blue")}
    return {
        "visits": len(visits), "enterprises_visited": len({v["enterprise_id"] for v in visits}),
        "duplicates": sum(v["duplicate_of"] is not None for v in visits),
        "same_unit_repeats": sum(v["same_unit_repeat_of"] is not None for v in visits),
        "caught_live": sum(a["type"] in ("duplicate_visit", "overlap_now") for a in in_week),
        "reassigned": sum(a["outcome"] == "reassigned" for a in in_week),
        "coverage_pct": cov["overall"], "enterprises": cov["total"], "within": cov["within"],
        "overdue": sum(sum(v.values()) for v in overdue.values()),
        "overdue_red": per_colour["red"], "overdue_blue": per_colour["blue"],
        "alarms": len(gas), "acknowledged": len(ack), "arrived": len(arr),
        "ack_p50_s": round(float(np.percentile(ack, 50)), 1), "ack_p95_s": round(float(np.percentile(ack, 95)), 1),
        "arrive_p50_s": round(float(np.percentile(arr, 50)), 1),
        "arrive_p95_s": round(float(np.percentile(arr, 95)), 1),
    }


def coloured_pixels(png_path) -> int:
    from PIL import Image

    img = np.asarray(Image.open(png_path).convert("RGB")).astype(int)
    spread = img.max(axis=2) - img.min(axis=2)  # grey text and rules have none; chart traces have much
    return int((spread > 60).sum())


def test_bulletin_pdf_has_text_charts_and_the_apis_numbers(stack, tmp_path):
    admin = client(stack, "admin")
    resp = admin.post("/api/v1/reports", json={"kind": "weekly", "period": WEEK})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    rep = resp.get_json()
    assert (rep["kind"], rep["period"], rep["street_id"]) == ("weekly", WEEK, None)

    # Archived and listed, under its kind only.
    assert [r["id"] for r in admin.get("/api/v1/reports?kind=weekly").get_json()] == [rep["id"]]
    assert admin.get("/api/v1/reports?kind=monthly").get_json() == []
    assert admin.get("/api/v1/reports?kind=yearly").status_code == 400

    pdf = admin.get(f"/api/v1/reports/{rep['id']}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    path = tmp_path / "b.pdf"
    path.write_bytes(pdf.data)

    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"WenQuanYi\S*\s+CID TrueType\s+Identity-H\s+yes", fonts), fonts  # embedded
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert f"全区安全生产监管周通报（{WEEK}）" in text
    for heading in ("各单位检查情况", "重复检查实时发现情况", "检查覆盖率与超期企业", "燃气报警与响应时间",
                    "街道与单位排名", "超期企业与报警分布图", "执法记录链锚点"):
        assert heading in text, heading

    # The charts are in the PDF as images, and drawn on its pages.
    images = subprocess.run(["pdfimages", "-list", str(path)], capture_output=True, text=True, check=True).stdout
    n_images = len(images.strip().splitlines()) - 2
    assert n_images >= 5, images  # daily visits, by unit, coverage by colour, daily alarms, map
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    assert coloured_pixels(pages[0]) > 2000  # page 1 carries the first chart

    # Its numbers are the API's for the same week, and the known ones.
    figures = pdf_figures(text)
    api = api_numbers(admin)
    assert figures == pytest.approx(api), (figures, api)
    for name, value in figures.items():
        assert value == pytest.approx(EXPECTED[name]), name
    assert rep["numbers"]["alarms"]["ack_p95_s"] == api["ack_p95_s"]

    # English from the same catalogue; the HTML stands alone with its charts inline.
    en = admin.get(f"/api/v1/reports/{rep['id']}.pdf?lang=en")
    (tmp_path / "en.pdf").write_bytes(en.data)
    en_text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "en.pdf"), "-"], capture_output=True, text=True,
                             check=True).stdout
    assert f"District safety supervision weekly bulletin ({WEEK})" in en_text
    assert re.search(r"Gas alarms\s+3", en_text)
    html = admin.get(f"/api/v1/reports/{rep['id']}.html").get_data(as_text=True)
    assert "燃气报警与响应时间" in html and html.count("data:image/png;base64,") >= 5

    # The anchor printed at the end: the audit chain at the week's end (every entry of this
    # test was written after it, so none).
    assert rep["anchor"] == {"hash": None, "entries": 0}
    assert "审计链共 0 条记录" in text


def test_roles_and_missing(stack):
    for role in ("wall", "officer"):
        c = client(stack, role)
        assert c.get("/api/v1/reports").status_code == 403
        assert c.get("/api/v1/reports/1.pdf").status_code == 403
        assert c.post("/api/v1/reports", json={"kind": "weekly"}).status_code == 403
    assert stack.test_client().get("/api/v1/reports").status_code == 401
    disp = client(stack, "dispatcher")
    assert disp.get("/api/v1/reports").get_json() == []
    assert disp.get("/api/v1/reports/99.pdf").status_code == 404
    bad = disp.post("/api/v1/reports", json={"kind": "daily", "street": 5})
    assert bad.status_code == 400 and len(bad.get_json()["errors"]) == 2
    assert disp.post("/api/v1/reports", json={"kind": "weekly", "period": "2026-13"}).status_code == 400
