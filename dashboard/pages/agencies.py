"""/agencies — third-party safety-service agencies (安全技术服务机构): the month's ranking with
every part of the rating (the last complete month first; the current one and the ten
before it in the picker), and each agency's service contracts.

The rating's parts and weights are docs/agencies.md's; the page reads the same store as
the API (``dashboard.api_agencies``).  Dispatchers and admins.
"""

from __future__ import annotations

import time

from dash import Input, Output, dcc, html

from dashboard import ids
from dashboard.i18n import t
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import guarded_layout, header, lang, web

PATH = "/agencies"
ROLES = ("dispatcher", "admin")
MONTHS_SHOWN = 12

cb = PageCallbacks("agencies", ROLES)


def title(**_):
    return t("agencies.title", lang())


def _api():
    from dashboard import api_agencies

    return api_agencies


def _months(now: float) -> list[str]:
    from plans.model import local_date

    y, m = (int(x) for x in local_date(now)[:7].split("-"))
    out = []
    for _ in range(MONTHS_SHOWN):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out


def _part(p: dict, name: str, lang_: str) -> str:
    """A part's points and the counts they come from."""
    counts = {k: v for k, v in p.items() if k not in ("points", "max", "ratio", "missed_hazard_ids")}
    return t(f"agencies.part.{name}.detail", lang_, points=f"{p['points']:g}", **counts)


PARTS = ("timeliness", "completion", "service", "detection", "duplicates", "complaints")


def ranking(month: str, lang_: str):
    from plans.agencies import parse_month

    rows = _api().store().ratings(parse_month(month), time.time())
    if not rows:
        return html.P(t("agencies.none", lang_), className="aj-muted", id=ids.AGENCIES_RANKING)
    head = html.Thead(html.Tr([html.Th(t("agencies.col.rank", lang_)), html.Th(t("agencies.col.agency", lang_)),
                               html.Th(t("agencies.col.score", lang_)),
                               *[html.Th(t(f"agencies.part.{n}", lang_)) for n in PARTS]]))
    body = [html.Tr([html.Td(str(r["rank"])), html.Td(r["name"]), html.Td(f"{r['score']:g}", className="aj-data"),
                     *[html.Td(_part(r["parts"][n], n, lang_), className="aj-data") for n in PARTS]])
            for r in rows]
    return html.Table([head, html.Tbody(body)], className="aj-table", id=ids.AGENCIES_RANKING)


def contracts(lang_: str):
    from plans.model import local_date

    st = _api().store()
    today = local_date(time.time())
    names = web().registry().enterprise_names
    blocks = []
    for a in st.agencies(today):
        cs = st.contracts(a["id"])
        # Each enterprise by name, linked to its profile; contracts out of force muted.
        items = [html.Li([html.A(names.get(c["enterprise_id"], c["enterprise_id"]),
                                 href=f"/enterprise/{c['enterprise_id']}", className="aj-data"),
                          html.Span([" ", html.Span(c["start_date"], className="aj-nowrap"), " — ",
                                     html.Span(c["end_date"], className="aj-nowrap")], className="aj-muted")],
                         className="aj-contract" + ("" if c["start_date"] <= today <= c["end_date"] else " aj-muted"))
                 for c in cs]
        blocks.append(html.Details([
            html.Summary(a["name"], className="aj-agency-name"),
            html.P(t("agencies.contracts.summary", lang_, n=a["contracts"], live=a["contracts_in_force"],
                     staff=a["inspectors"]), className="aj-muted"),
            html.Ul(items, className="aj-contracts") if items else
            html.P(t("agencies.contracts.none", lang_), className="aj-muted"),
        ], open=len(blocks) == 0))
    return html.Div(blocks, id=ids.AGENCIES_CONTRACTS)


def build(p, lang_: str, **_):
    months = _months(time.time())
    return html.Div([
        header("agencies.title", lang_, p, PATH),
        html.Main([
            html.Section([html.Div([
                html.H2(t("agencies.ranking", lang_)),
                dcc.Dropdown(options=[{"label": m, "value": m} for m in months], value=months[1],
                             id=ids.AGENCIES_MONTH, clearable=False),
                html.Div(ranking(months[1], lang_), id=ids.AGENCIES_BODY),
                html.P(t("agencies.weights", lang_), className="aj-muted"),
            ], className="aj-panel")], className="aj-col"),
            html.Section([html.Div([html.H2(t("agencies.contracts", lang_)), contracts(lang_)],
                                   className="aj-panel")], className="aj-col"),
        ], className="aj-agencies"),
    ], id=ids.AGENCIES_ROOT, className="aj-page", lang=lang_)


layout = guarded_layout(ROLES, build)


@cb.callback(Output(ids.AGENCIES_BODY, "children"), Input(ids.AGENCIES_MONTH, "value"), prevent_initial_call=True)
def agencies_month(month):
    return ranking(month if month in _months(time.time()) else _months(time.time())[0], lang())
