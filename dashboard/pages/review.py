"""/review/<visit_id> — remote review of one inspection (远程点评).

The visit (enterprise, inspector, when), its body-camera stream played in the page
(hls.js, served with the app from ``assets/vendor/hls.js``, loaded only here:
``assets/review.js``), a comment box that stamps the player's current time, the
verdict form (compliant, or not with reasons from ``hazards.review.REASONS``) and
the visit's comments and verdicts.  A visit without a stream says so.

Reviewers only (dispatcher, admin; ``hazards.review.REVIEW_ROLES``).  A comment or
verdict goes through the same checks and store as ``POST /api/v1/visits/{id}/reviews``
(``hazards.review.check_review``, ``data.reviews_store``): one row and one audit entry
in one transaction.  docs/review.md.
"""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.api_reviews import store
from dashboard.i18n import t
from dashboard.pages.callbacks import PageCallbacks
from dashboard.pages.common import city, fmt_time, guarded_layout, header, lang, principal
from dashboard.pages.layers import unit_name
from hazards.review import REASONS, REVIEW_ROLES, VERDICTS, check_review

PATH = "/review/<visit_id>"
ROLES = REVIEW_ROLES
REFRESH_MS = 10_000  # other reviewers' comments appear within this

cb = PageCallbacks("review", ROLES)


def title(visit_id=None, **_):
    return t("review.title", lang())


def _visit_id(raw) -> int | None:
    try:
        v = int(str(raw))
    except (TypeError, ValueError):
        return None
    return v if 0 < v < 2**31 else None


def visible_record(p, visit_id) -> dict | None:
    vid = _visit_id(visit_id)
    rec = store().record(vid) if vid is not None else None
    if rec is None or p is None:
        return None
    v = rec["visit"]
    return rec if p.sees_enterprise(v["enterprise_id"], v["street_id"], v["grid_id"]) else None


def pick_source(streams: list[dict]) -> dict | None:
    """What the player plays: the newest live stream, else the newest recording, else
    the newest stream's HLS address (a camera that ended without a recording)."""
    for s in reversed(streams):
        if s["state"] == "live" and s.get("hls_url"):
            return {"id": s["id"], "url": s["hls_url"], "kind": "hls", "live": True}
    for s in reversed(streams):
        if s.get("recording_url"):
            url = s["recording_url"]
            return {"id": s["id"], "url": url, "kind": "hls" if ".m3u8" in url.lower() else "file", "live": False}
    for s in reversed(streams):
        if s.get("hls_url"):
            return {"id": s["id"], "url": s["hls_url"], "kind": "hls", "live": False}
    return None


def fmt_offset(at_s: float | None) -> str:
    if at_s is None:
        return "—"
    m, s = divmod(float(at_s), 60)
    return f"{int(m):02d}:{s:04.1f}"


def streams_list(streams: list[dict], lang_: str):
    items = []
    for s in streams:
        state = "live" if s["state"] == "live" else "ended"
        items.append(html.Li([
            html.Span(t(f"review.stream.{state}", lang_), className=f"aj-badge aj-stream-{state}"), " ",
            fmt_time(s["started_ts"], with_date=True),
            f" – {fmt_time(s['ended_ts'])}" if s.get("ended_ts") else "",
            " · " if s.get("recording_url") else "",
            html.A(t("review.recording", lang_), href=s["recording_url"], target="_blank", rel="noopener")
            if s.get("recording_url") else "",
        ], className="aj-review-stream", **{"data-stream": str(s["id"])}))
    return html.Ul(items, className="aj-results")


def entries_view(rec: dict, lang_: str):
    def by(e):
        return html.Span(t("review.by", lang_, who=e["actor"], when=fmt_time(e["created_ts"], with_date=True)),
                         className="aj-muted")

    items = [html.Li([html.Strong(fmt_offset(e["at_s"]), className="aj-review-at"), " ", e["comment"] or "", " ",
                      by(e)], className="aj-review-comment", **{"data-at": f"{e['at_s']:.3f}"})
             for e in rec["comments"]]
    items += [html.Li([html.Strong(t(f"review.verdict.{e['verdict']}", lang_)), " ",
                       "; ".join(t(f"review.reason.{r}", lang_) for r in e["reasons"] or []),
                       f" ({e['comment']})" if e.get("comment") else "", " ", by(e)],
                      className=f"aj-review-verdict aj-verdict-{e['verdict']}") for e in rec["verdicts"]]
    if not items:
        return html.P(t("review.entries.empty", lang_), className="aj-muted")
    return html.Ul(items, className="aj-results")


def current_view(rec: dict, lang_: str):
    v = rec["verdict"]
    if v is None:
        return html.Span(t("review.not_judged", lang_), className="aj-muted")
    return html.Span(t(f"review.verdict.{v['verdict']}", lang_), className=f"aj-badge aj-verdict-{v['verdict']}",
                     **{"data-verdict": v["verdict"]})


def build(p, lang_: str, visit_id=None, **_):
    rec = visible_record(p, visit_id)
    if rec is None:
        return html.Div([header("review.title", lang_, p, PATH),
                         html.Div(html.H2(t("review.not_found", lang_), id="review-missing"),
                                  className="aj-forbidden")], id=ids.REVIEW_ROOT, className="aj-page")
    v = rec["visit"]
    source = pick_source(rec["streams"])
    texts = {k: t(f"review.player.{k}", lang_) for k in ("loading", "playing", "error")}
    player = html.Div([
        html.Video(id=ids.REVIEW_VIDEO, controls=True, muted=True, autoPlay=True, className="aj-review-video",
                   style=None if source else {"display": "none"}),
        html.Div(t("review.no_stream", lang_), id=ids.REVIEW_NO_STREAM, className="aj-review-empty",
                 style={"display": "none"} if source else None),
        html.Div(id=ids.REVIEW_PLAYER_STATUS, className="aj-muted", **{"aria-live": "polite"}),
    ], className="aj-review-player")
    facts = html.Dl([
        html.Dt(t("review.enterprise", lang_)),
        html.Dd(html.A(v["enterprise_name"] or v["enterprise_id"], href=f"/enterprise/{v['enterprise_id']}"),
                className="aj-data"),
        html.Dt(t("review.inspector", lang_)),
        html.Dd(f"{v['inspector_name'] or v['inspector_id']} · "
                f"{unit_name(city(), v['unit_id'], lang_, registered=v['unit_name'])}", className="aj-data"),
        html.Dt(t("review.when", lang_)),
        html.Dd(f"{fmt_time(v['start_ts'], with_date=True)} – {fmt_time(v['end_ts'])}"),
    ], className="aj-facts")
    return html.Div([
        header("review.title", lang_, p, PATH),
        html.Main([
            html.Section([
                html.Div([html.H2(t("review.visit", lang_, id=v["id"]), id="review-visit-title"), facts],
                         className="aj-panel"),
                html.Div([html.H2(t("review.streams", lang_)), player, streams_list(rec["streams"], lang_)],
                         className="aj-panel"),
            ], className="aj-col"),
            html.Section([
                html.Div([
                    html.H2(t("review.comment", lang_)),
                    dcc.Textarea(id=ids.REVIEW_COMMENT, placeholder=t("review.comment.placeholder", lang_),
                                 maxLength=2000, className="aj-input", style={"width": "100%", "height": "4em"}),
                    html.Button(t("review.comment.post", lang_), id=ids.REVIEW_COMMENT_POST, className="aj-btn",
                                disabled=source is None, n_clicks=0),
                ], className="aj-panel"),
                html.Div([
                    html.H2(t("review.verdict", lang_)),
                    dcc.RadioItems(id=ids.REVIEW_VERDICT, options=[
                        {"label": t(f"review.verdict.{x}", lang_), "value": x} for x in VERDICTS],
                        className="aj-radio"),
                    html.Div(t("review.reasons", lang_), className="aj-muted"),
                    dcc.Checklist(id=ids.REVIEW_REASONS, options=[
                        {"label": t(f"review.reason.{r}", lang_), "value": r} for r in REASONS], value=[],
                        className="aj-checklist"),
                    dcc.Input(id=ids.REVIEW_NOTE, type="text", maxLength=2000, placeholder=t("review.note", lang_),
                              className="aj-input"),
                    html.Button(t("review.verdict.post", lang_), id=ids.REVIEW_VERDICT_POST, className="aj-btn",
                                n_clicks=0),
                ], className="aj-panel"),
                html.Div(id=ids.REVIEW_STATUS, className="aj-review-status", **{"aria-live": "polite"}),
                html.Div([
                    html.H2([t("review.entries", lang_), " · ", t("review.current", lang_), " ",
                             html.Span(current_view(rec, lang_), id=ids.REVIEW_CURRENT)]),
                    html.Div(entries_view(rec, lang_), id=ids.REVIEW_ENTRIES),
                ], className="aj-panel"),
            ], className="aj-col"),
        ], className="aj-profile"),
        dcc.Store(id=ids.REVIEW_VISIT_ID, data=v["id"]),
        dcc.Store(id=ids.REVIEW_SOURCE, data={**source, "texts": texts} if source else None),
        dcc.Store(id=ids.REVIEW_STAMP),
        dcc.Interval(id=ids.REVIEW_TICK, interval=REFRESH_MS),
    ], id=ids.REVIEW_ROOT, className="aj-page", lang=lang_)


layout = guarded_layout(ROLES, build)


# The player: hls.js attached in the browser (assets/review.js), and the playback time
# read there when a comment is posted.
cb.clientside("attach", Output(ids.REVIEW_PLAYER_STATUS, "children"), Input(ids.REVIEW_SOURCE, "data"),
              State(ids.REVIEW_VIDEO, "id"), namespace="review")
cb.clientside("stamp", Output(ids.REVIEW_STAMP, "data"), Input(ids.REVIEW_COMMENT_POST, "n_clicks"),
              State(ids.REVIEW_VIDEO, "id"), State(ids.REVIEW_SOURCE, "data"), namespace="review",
              prevent_initial_call=True)


@cb.callback(output={"entries": Output(ids.REVIEW_ENTRIES, "children"),
                     "current": Output(ids.REVIEW_CURRENT, "children"),
                     "status": Output(ids.REVIEW_STATUS, "children"),
                     "comment": Output(ids.REVIEW_COMMENT, "value")},
             inputs={"n": Input(ids.REVIEW_TICK, "n_intervals"), "stamp": Input(ids.REVIEW_STAMP, "data"),
                     "verdict_clicks": Input(ids.REVIEW_VERDICT_POST, "n_clicks")},
             state={"visit_id": State(ids.REVIEW_VISIT_ID, "data"), "comment": State(ids.REVIEW_COMMENT, "value"),
                    "verdict": State(ids.REVIEW_VERDICT, "value"), "reasons": State(ids.REVIEW_REASONS, "value"),
                    "note": State(ids.REVIEW_NOTE, "value"), "source": State(ids.REVIEW_SOURCE, "data")},
             changes_state=True, prevent_initial_call=True)
def review_update(n, stamp, verdict_clicks, visit_id, comment, verdict, reasons, note, source):
    p = principal()
    lang_ = lang()
    if visible_record(p, visit_id) is None:
        raise PreventUpdate
    trigger = dash.ctx.triggered_id
    status, clear = dash.no_update, dash.no_update
    body = None
    if trigger == ids.REVIEW_STAMP and stamp:
        body = {"at_s": stamp.get("at_s"), "comment": comment, "stream_id": stamp.get("stream_id")}
    elif trigger == ids.REVIEW_VERDICT_POST and verdict_clicks:
        body = {"verdict": verdict, "reasons": reasons or [], "comment": note or None,
                "stream_id": (source or {}).get("id")}
    if body is not None:
        status, clear = post(p, int(visit_id), body, lang_)
    rec = store().record(int(visit_id))
    return {"entries": entries_view(rec, lang_), "current": current_view(rec, lang_), "status": status,
            "comment": clear}


def post(p, visit_id: int, body: dict, lang_: str):
    """Check and store one comment or verdict: (status line, the comment box's new value)."""
    kind, fields, errors = check_review({k: v for k, v in body.items() if v is not None})
    if not errors and fields.get("stream_id") is not None:
        if fields["stream_id"] not in {s["id"] for s in store().streams.for_visit(visit_id)}:
            errors = [{"field": "stream_id", "reason": "not_this_visits_stream"}]
    if errors:
        text = ", ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return html.Span(t("review.refused", lang_, reasons=text), className="aj-review-refused"), dash.no_update
    store().add(visit_id, kind, fields, p.username, p.role)
    return (html.Span(t("review.saved", lang_), className="aj-review-saved"),
            "" if kind == "comment" else dash.no_update)
