"""Hazards on the wall and the dispatcher console: open major hazards (until closed),
overdue hazards, and the street ranking of the newest scored day.

Read through the hazard store and the scores (``data/hazards_store.py``,
``data/scores_store.py``), cached for ``TTL_S`` per process so many screens cost one
query.  Names of enterprises are data (``aj-data``); everything else is ``dashboard.i18n``.
"""

from __future__ import annotations

import time

from dash import html

from dashboard.i18n import t
from dashboard.pages.common import cache, city, fmt_time, web
from hazards.adjudication import DISCUSS_ROLES

TTL_S = 15.0
MAX_ITEMS = 12


def _store():
    from dashboard.api_hazards import store

    return store()


def _open_hazards(level: str | None, overdue: bool) -> list[dict]:
    st = _store()  # the cache computes outside the request: no flask globals in the lambda

    def read():
        now = time.time()
        return st.list(level=level, open_only=True, overdue_at=now if overdue else None, limit=200, now=now)

    return cache().get(f"hazards:{level}:{overdue}", TTL_S, read)


def _item(h: dict, lang_: str, reg, p, compact: bool = False) -> html.Li | None:
    if p is not None and not p.sees_enterprise(h["enterprise_id"], h["street_id"], h["grid_id"]):
        return None
    # As every list names enterprises: without the city and district all names share
    # (a tour found four rows of the wall's list all cut to "深圳市龙华区…"); the whole
    # name in the tooltip.
    eid = h["enterprise_id"]
    name, full = reg.short_name(eid) or eid, reg.enterprise_names.get(eid, eid)
    badges = [html.Span(t(f"hz.level.{h['level']}", lang_), className=f"aj-badge aj-hz-{h['level']}")]
    if h["overdue"]:
        badges.append(html.Span(t("hz.overdue", lang_), className="aj-badge aj-hz-overdue"))
    if compact:  # the wall: one line, the name gives way, the state and the deadline's day stay
        due = fmt_time(h["deadline_ts"], with_date=True)[5:10] if h["deadline_ts"] else "—"
        state = t("hz.state." + h["state"], lang_)
        return html.Li([*badges, html.Span(name, className="aj-data aj-hz-name", title=full),
                        html.Span(f"{state} · {t('hz.deadline', lang_)} {due}", className="aj-hz-due")],
                       className="aj-hz-item aj-hz-compact", **{"data-hazard": str(h["id"])})
    return html.Li([*badges, " ", html.Span(name, className="aj-data", title=full),
                    " · ", t(f"hz.state.{h['state']}", lang_),
                    # The deadline and its date stay together (a phone split 整改期限 | 2026-… in 19 rows of 24).
                    " · ", html.Span(f"{t('hz.deadline', lang_)} "
                                     f"{fmt_time(h['deadline_ts'], with_date=True) if h['deadline_ts'] else '—'}",
                                     className="aj-nowrap"),
                    # The thread of a disputed hazard, for those who take part (never on the wall's kiosk).
                    *([" · ", html.A(t("hz.discuss", lang_), href=f"/hazards/{h['id']}/discussion",
                                     className="aj-hz-discuss")] if p is not None and p.role in DISCUSS_ROLES else [])],
                   className="aj-hz-item", **{"data-hazard": str(h["id"])})


def major_hazard_items(lang_: str, p=None, with_left_out: bool = False, compact: bool = False):
    """Open major hazards, the overdue first: the wall's list (it stays until 销号).
    ``with_left_out``: (items, how many past MAX_ITEMS were left out); ``compact``: one
    line each (the wall)."""
    reg = web().registry()
    rows = sorted(_open_hazards("major", False), key=lambda h: (not h["overdue"], h["deadline_ts"] or 0, h["id"]))
    every = [i for i in (_item(h, lang_, reg, p, compact) for h in rows) if i is not None]
    items = every[:MAX_ITEMS] or [html.Li(t("hz.none", lang_), className="aj-muted aj-alert-none")]
    return (items, len(every) - len(every[:MAX_ITEMS])) if with_left_out else items


def overdue_and_major_items(lang_: str, p=None) -> list:
    """The dispatcher's list: every overdue hazard and every open major one, most urgent first."""
    reg = web().registry()
    seen, rows = set(), []
    for h in _open_hazards(None, True) + _open_hazards("major", False):
        if h["id"] not in seen:
            seen.add(h["id"])
            rows.append(h)
    rows.sort(key=lambda h: (not h["overdue"], h["level"] != "major", h["deadline_ts"] or 0, h["id"]))
    items = [i for i in (_item(h, lang_, reg, p) for h in rows) if i is not None][:MAX_ITEMS * 2]
    return items or [html.Li(t("hz.none", lang_), className="aj-muted aj-alert-none")]


def street_ranking_items(lang_: str) -> list:
    """The streets of the newest scored day, best first."""
    from data.scores_store import latest_date, scores_of

    engine = web().engine

    def read():
        day = latest_date(engine)
        return day, ([] if day is None else scores_of(engine, day, "street", limit=50))

    day, rows = cache().get("street_ranking", TTL_S, read)
    if not rows:
        return [html.Li(t("hz.none", lang_), className="aj-muted")]
    names = city().street_names
    out = []
    for r in rows:
        zh, en = names.get(r["id"], (r["id"], r["id"]))
        out.append(html.Li([html.Span(f"{r['rank']}. "), html.Span(en if lang_ == "en" else zh),
                            html.Span(f" {r['score']:.1f}", className="aj-score")],
                           className="aj-rank-item", **{"data-street": r["id"]}))
    return out
