"""Rendering bulletins (``reports.model.Report``): charts, HTML and PDF, in either language.

* Charts are Plotly figures rendered to PNG by Kaleido, which drives a
  headless Chromium (Debian's ``chromium``; ``BROWSER_PATH`` overrides).  All
  the charts of one bulletin, in every language asked for, are drawn in one
  browser session.
* HTML: ``dashboard/templates/bulletin.html`` (Jinja2), the charts inlined as
  data URIs, so the downloaded file stands alone.
* PDF: fpdf2, with a Chinese TrueType font embedded (subset) — see
  docs/reports.md for why fpdf2.

Every visible word comes from the one catalogue, ``dashboard.i18n``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import os
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from dashboard.i18n import LANGS, t
from geo.china import CHINA_TZ
from reports.model import Chart, Name, Report, Table, Text

TEMPLATES = Path(__file__).with_name("templates")
CHART_W, CHART_H = 900, 420
MAP_W, MAP_H = 900, 700
DEBIAN_CHROMIUM = "/usr/bin/chromium"

# Debian's packages with a TrueType (not CFF) Chinese font, which fpdf2 embeds as a subset.
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
)


class RenderError(RuntimeError):
    """A bulletin that cannot be drawn here (no Chinese font, no Chromium for the charts)."""


def find_font(configured: Path | str | None = None) -> Path:
    if configured:
        p = Path(configured)
        if not p.is_file():
            raise RenderError(f"report_font {p} does not exist")
        return p
    for c in FONT_CANDIDATES:
        if Path(c).is_file():
            return Path(c)
    raise RenderError("no Chinese TrueType font for bulletin PDFs: install fonts-wqy-microhei "
                      "(apt-get install fonts-wqy-microhei) or set report_font")


# --- words and numbers ----------------------------------------------------------------------


def fmt_value(v, unit: str = "", lang: str = "zh-CN") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return t("report.value.none", lang)
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        s = str(v)
    elif isinstance(v, float):
        s = f"{v:.2f}" if unit == "%" else f"{v:.1f}"
    else:
        return str(v)
    if unit == "%":
        return s + "%"
    if unit == "s":
        return s + " " + t("report.unit.s", lang)
    return s


def _cell(v, lang: str) -> dict:
    if isinstance(v, Text):
        return {"text": t(v.key, lang, **dict(v.fmt)), "num": False}
    if isinstance(v, Name):
        return {"text": v.en if lang == "en" and v.en else v.zh, "num": False}
    return {"text": fmt_value(v, "", lang), "num": isinstance(v, (int, float)) and not isinstance(v, bool)}


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).strftime("%Y-%m-%d")


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).strftime("%Y-%m-%d %H:%M")


def area_name(report: Report, lang: str) -> str:
    if report.street_id is None:
        return t("report.area.district", lang)
    if lang == "en" and report.street_name_en:
        return report.street_name_en
    return report.street_name or report.street_id


def title(report: Report, lang: str) -> str:
    return t(f"report.title.{report.kind}", lang, area=area_name(report, lang), period=report.period)


def subtitle(report: Report, lang: str) -> str:
    last_day = _date(report.end_ts - 1)
    return t("report.subtitle", lang, start=_date(report.start_ts), end=last_day,
             generated=_time(report.generated_at), as_of=_time(report.as_of))


def anchor_text(report: Report, lang: str) -> str:
    return t("report.anchor.text", lang, end=_time(report.end_ts), n=report.anchor.entries)


# --- charts ------------------------------------------------------------------------------------


def _rings(geometry: str) -> Iterable[list]:
    try:
        g = json.loads(geometry)
    except (TypeError, ValueError):
        return []
    if g.get("type") == "Polygon":
        return [g["coordinates"][0]]
    if g.get("type") == "MultiPolygon":
        return [p[0] for p in g["coordinates"]]
    return []


def figure(chart: Chart, lang: str):
    import plotly.graph_objects as go

    layout = dict(title=dict(text=t(chart.title, lang), x=0.02), template="plotly_white",
                  font=dict(family="WenQuanYi Micro Hei, Noto Sans CJK SC, sans-serif", size=13),
                  margin=dict(l=60, r=20, t=50, b=60), width=CHART_W, height=CHART_H,
                  legend=dict(orientation="h", y=-0.15))
    fig = go.Figure()
    if chart.kind == "map":
        xs, ys = [], []
        for st in chart.extra["streets"]:
            for ring in _rings(st["geometry"]):
                xs += [c[0] for c in ring] + [None]
                ys += [c[1] for c in ring] + [None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color="#555", width=1),
                                 name=t("report.series.streets", lang), hoverinfo="skip"))
        hexes = chart.extra["risk_hex"]
        for colour, hx in hexes.items():
            pts = [p for p in chart.extra["points"] if p["risk"] == colour]
            if pts:
                fig.add_trace(go.Scatter(x=[p["lon"] for p in pts], y=[p["lat"] for p in pts], mode="markers",
                                         marker=dict(color=hx, size=4),
                                         name=t("report.series.overdue_colour", lang,
                                                colour=t(f"risk.{colour}", lang))))
        if chart.extra["alarms"]:
            fig.add_trace(go.Scatter(x=[p["lon"] for p in chart.extra["alarms"]],
                                     y=[p["lat"] for p in chart.extra["alarms"]], mode="markers",
                                     marker=dict(color="black", size=9, symbol="x"),
                                     name=t("report.series.alarms", lang)))
        layout.update(width=MAP_W, height=MAP_H, xaxis=dict(visible=False),
                      yaxis=dict(visible=False, scaleanchor="x", scaleratio=1.0 / 0.92))
    else:
        x = [t(k, lang) for k in chart.x] if chart.x_is_keys else list(chart.x)
        for i, (name, ys) in enumerate(chart.series):
            kw = dict(x=x, y=ys, name=t(name, lang))
            if chart.kind == "line":
                fig.add_trace(go.Scatter(mode="lines+markers", **kw))
            else:
                colour = chart.colours if chart.colours and len(chart.colours) == len(x) else \
                    (chart.colours[i] if chart.colours and i < len(chart.colours) else None)
                fig.add_trace(go.Bar(marker_color=colour, text=ys, textposition="outside", **kw))
        layout.update(showlegend=len(chart.series) > 1, yaxis=dict(rangemode="tozero"))
    fig.update_layout(**layout)
    return fig


_session = threading.local()


def _browser_path() -> None:
    if "BROWSER_PATH" not in os.environ and Path(DEBIAN_CHROMIUM).exists():
        os.environ["BROWSER_PATH"] = DEBIAN_CHROMIUM


@contextmanager
def chart_session():
    """Keep one Chromium for every bulletin drawn inside (its start is most of a chart
    batch's time: about 8 s on a busy 2-core machine, against 0.4 s per chart)."""
    import kaleido

    _browser_path()
    kaleido.start_sync_server(n=1, timeout=120, silence_warnings=True)
    _session.active = True
    try:
        yield
    finally:
        _session.active = False
        kaleido.stop_sync_server(silence_warnings=True)


def render_charts(report: Report, langs: Iterable[str] = LANGS) -> dict[tuple[str, str], bytes]:
    """PNG bytes of every chart of ``report`` in every language: ``{(lang, chart id): png}``."""
    jobs = [(lang, c) for lang in langs for s in report.sections for c in s.charts]
    if not jobs:
        return {}
    figs = [figure(c, lang) for lang, c in jobs]
    try:
        import kaleido
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise RenderError(f"kaleido is not installed: {e}") from None

    def opts(f):
        return dict(format="png", width=f.layout.width, height=f.layout.height)

    async def draw():
        async with kaleido.Kaleido(n=1, timeout=120) as k:
            return [await k.calc_fig(f, opts=opts(f)) for f in figs]

    _browser_path()
    try:
        if getattr(_session, "active", False):
            images = [kaleido.calc_fig_sync(f, opts=opts(f)) for f in figs]
        else:
            images = asyncio.run(draw())
    except Exception as e:  # noqa: BLE001 - kaleido/choreographer raise many kinds
        raise RenderError(f"the charts could not be drawn (Kaleido needs Chromium: apt-get install chromium, "
                          f"or set BROWSER_PATH): {type(e).__name__}: {e}") from e
    return {(lang, c.id): img for (lang, c), img in zip(jobs, images)}


# --- HTML ----------------------------------------------------------------------------------------

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]))


def _table_view(tb: Table, lang: str) -> dict:
    return {"title": t(tb.title, lang), "columns": [t(c, lang) for c in tb.columns],
            "rows": [[_cell(v, lang) for v in r] for r in tb.rows],
            "note": t(tb.note.key, lang, **dict(tb.note.fmt)) if tb.note else None}


def render_html(report: Report, lang: str, images: dict[tuple[str, str], bytes]) -> str:
    sections = []
    for s in report.sections:
        sections.append({
            "key": s.key, "title": t(s.title, lang),
            "figures": [{"name": f.name, "label": t(f.key, lang), "value": fmt_value(f.value, f.unit, lang)}
                        for f in s.figures],
            "charts": [{"title": t(c.title, lang), "png": base64.b64encode(images[(lang, c.id)]).decode()}
                       for c in s.charts if (lang, c.id) in images],
            "tables": [_table_view(tb, lang) for tb in s.tables],
            "notes": [t(n.key, lang, **dict(n.fmt)) for n in s.notes],
        })
    return _env.get_template("bulletin.html").render(
        lang=lang, title=title(report, lang), subtitle=subtitle(report, lang), sections=sections,
        anchor_title=t("report.anchor.title", lang), anchor_text=anchor_text(report, lang),
        anchor_hash=report.anchor.head_hash or t("report.value.none", lang))


# --- PDF -----------------------------------------------------------------------------------------


def render_pdf(report: Report, lang: str, images: dict[tuple[str, str], bytes],
               font: Path | str | None = None) -> bytes:
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    font_path = find_font(font)
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_margins(15, 15, 15)
    pdf.add_font("cjk", "", str(font_path))
    pdf.set_title(title(report, lang))
    pdf.set_creator("Anjian")
    pdf.set_lang(lang)
    def _footer(self=pdf):
        self.set_y(-12)
        self.set_font("cjk", size=8)
        self.cell(0, 5, t("report.pdf.page", lang, page=self.page_no()), align="C")

    pdf.footer = _footer
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("cjk", size=18)
    pdf.multi_cell(width, 9, title(report, lang), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("cjk", size=9)
    pdf.multi_cell(width, 5, subtitle(report, lang), new_x="LMARGIN", new_y="NEXT")
    head_style = FontFace(emphasis=None, fill_color=(225, 230, 240))

    def heading(text: str, size: int = 14):
        pdf.ln(3)
        pdf.set_font("cjk", size=size)
        pdf.multi_cell(width, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("cjk", size=9)

    def table(columns: list[str], rows: list[list[str]], widths=None):
        with pdf.table(col_widths=widths, headings_style=head_style, line_height=5.5,
                       text_align="LEFT", first_row_as_headings=True) as tb:
            row = tb.row()
            for c in columns:
                row.cell(c)
            for r in rows:
                row = tb.row()
                for v in r:
                    row.cell(v)

    for s in report.sections:
        heading(t(s.title, lang))
        if s.figures:
            table([t("report.col.item", lang), t("report.col.value", lang)],
                  [[t(f.key, lang), fmt_value(f.value, f.unit, lang)] for f in s.figures], widths=(3, 2))
        for c in s.charts:
            png = images.get((lang, c.id))
            if png is None:
                continue
            h = width * (MAP_H if c.kind == "map" else CHART_H) / (MAP_W if c.kind == "map" else CHART_W)
            if pdf.get_y() + h > pdf.h - 15:
                pdf.add_page()
            pdf.image(io.BytesIO(png), w=width, h=h)
        for tb in s.tables:
            heading(t(tb.title, lang), 11)
            v = _table_view(tb, lang)
            table(v["columns"], [[c["text"] for c in r] for r in v["rows"]])
            if v["note"]:
                pdf.multi_cell(width, 5, v["note"], new_x="LMARGIN", new_y="NEXT")
        for n in s.notes:
            pdf.set_font("cjk", size=8)
            pdf.multi_cell(width, 4.5, t(n.key, lang, **dict(n.fmt)), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("cjk", size=9)
    heading(t("report.anchor.title", lang))
    pdf.multi_cell(width, 5, anchor_text(report, lang), new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(width, 5, report.anchor.head_hash or t("report.value.none", lang), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())

