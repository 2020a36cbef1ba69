"""The remote-review routes of the HTTP API under /api/v1 (docs/api.md "Remote review",
docs/review.md): a visit's body-camera streams, the reviewers' time-coded comments and
their verdict; and the online adjudication of a disputed hazard (its discussion thread
and the final decision).

Only the reviewer roles (``hazards.review.REVIEW_ROLES``: dispatcher, admin) may
post; a refusal is audited (``access_denied``, by ``dashboard.api.require``).  An
officer may read the record of a visit in its area.  Every accepted post is written
to the audit log by ``data.reviews_store`` in the same transaction as the entry.
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from dashboard.api import ApiError, iso, per_app, require, web
from data.reviews_store import AlreadyDecided, HazardDiscussionStore, ReviewStore
from hazards.adjudication import DECIDE_ROLES, DISCUSS_ROLES, check_comment, check_decision
from hazards.review import REASONS, REVIEW_ROLES, VERDICTS, check_review

api_reviews = Blueprint("api_reviews", __name__, url_prefix="/api/v1")

READ_ROLES = ("dispatcher", "admin", "officer")


@api_reviews.errorhandler(ApiError)
def _api_error(e: ApiError):
    body = {"error": e.code, "message": e.message}
    if getattr(e, "errors", None):
        body["errors"] = e.errors
    return jsonify(body), e.status


def store() -> ReviewStore:
    return per_app("anjian_reviews", lambda: ReviewStore(web().engine))


def _bad(errors: list[dict]) -> ApiError:
    """400 with the first reason code in ``error`` and all of them in ``errors``."""
    e = ApiError(400, errors[0]["reason"], "; ".join(f"{x['field']}: {x['reason']}" for x in errors))
    e.errors = errors
    return e


def _visible_visit(visit_id: int) -> dict:
    v = store().visit(visit_id)
    if v is None or not g.principal.sees_enterprise(v["enterprise_id"], v["street_id"], v["grid_id"]):
        raise ApiError(404, "not_found", f"no visit {visit_id}")
    return v


def _present_entry(e: dict) -> dict:
    e["created_at"] = iso(e["created_ts"])
    return e


def _present_stream(s: dict) -> dict:
    s["started_at"] = iso(s["started_ts"])
    s["ended_at"] = iso(s["ended_ts"])
    return s


def present_record(rec: dict) -> dict:
    v = rec["visit"]
    v["start"] = iso(v["start_ts"])
    v["end"] = iso(v["end_ts"])
    for e in rec["comments"] + rec["verdicts"]:
        _present_entry(e)
    for s in rec["streams"]:
        _present_stream(s)
    return rec


@api_reviews.get("/reviews/reasons")
@require(*READ_ROLES)
def review_reasons():
    return jsonify({"verdicts": list(VERDICTS), "reasons": list(REASONS), "review_roles": list(REVIEW_ROLES)})


@api_reviews.get("/visits/<int:visit_id>/reviews")
@require(*READ_ROLES)
def visit_reviews(visit_id: int):
    _visible_visit(visit_id)
    return jsonify(present_record(store().record(visit_id)))


@api_reviews.get("/visits/<int:visit_id>/streams")
@require(*READ_ROLES)
def visit_streams(visit_id: int):
    _visible_visit(visit_id)
    return jsonify([_present_stream(s) for s in store().streams.for_visit(visit_id)])


@api_reviews.post("/visits/<int:visit_id>/reviews")
@require(*REVIEW_ROLES)
def visit_review_post(visit_id: int):
    _visible_visit(visit_id)
    body = request.get_json(silent=True) if request.data else None
    kind, fields, errors = check_review(body)
    if not errors and fields.get("stream_id") is not None:
        if fields["stream_id"] not in {s["id"] for s in store().streams.for_visit(visit_id)}:
            errors = [{"field": "stream_id", "reason": "not_this_visits_stream"}]
    if errors:
        raise _bad(errors)
    p = g.principal
    try:
        entry = store().add(visit_id, kind, fields, p.username, p.role)
    except LookupError:
        raise ApiError(404, "not_found", f"no visit {visit_id}") from None
    return jsonify(_present_entry(entry)), 201


# --- online adjudication of a disputed hazard (线上研判) ------------------------------------


def discussions() -> HazardDiscussionStore:
    return per_app("anjian_discussions", lambda: HazardDiscussionStore(web().engine))


def _visible_hazard(hazard_id: int) -> None:
    from dashboard.api_hazards import store as hazards

    h = hazards().get(hazard_id)
    if h is None or not g.principal.sees_enterprise(h["enterprise_id"], h["street_id"], h["grid_id"]):
        raise ApiError(404, "not_found", f"no hazard {hazard_id}")


def _present_thread(th: dict) -> dict:
    """The thread as the API answers it: ISO times, and (added later) the enterprise's
    name and each author's display name, so a page need not show ids and logins."""
    from data.auth import display_names

    names = display_names(web().engine)
    for post in th["posts"]:
        post["at"] = iso(post["at_ts"])
        post["actor_name"] = names.get(post.get("actor")) or post.get("actor")
    h = th.get("hazard") or {}
    if h.get("enterprise_id"):
        h["enterprise_name"] = web().registry().enterprise_names.get(h["enterprise_id"])
    return th


def _body() -> object:
    return request.get_json(silent=True) if request.data else None


@api_reviews.get("/hazards/<int:hazard_id>/discussion")
@require("wall", "dispatcher", "officer", "admin", "enterprise")
def hazard_discussion(hazard_id: int):
    _visible_hazard(hazard_id)
    return jsonify(_present_thread(discussions().thread(hazard_id)))


@api_reviews.post("/hazards/<int:hazard_id>/discussion")
@require(*DISCUSS_ROLES)
def hazard_discussion_post(hazard_id: int):
    _visible_hazard(hazard_id)
    fields, errors = check_comment(_body())
    if errors:
        raise _bad(errors)
    p = g.principal
    try:
        th = discussions().comment(hazard_id, fields["comment"], p.username, p.role,
                                   discussions().unit_of(p.inspector_id))
    except LookupError:
        raise ApiError(404, "not_found", f"no hazard {hazard_id}") from None
    except AlreadyDecided as e:
        raise ApiError(409, "already_decided", str(e)) from None
    return jsonify(_present_thread(th)), 201


@api_reviews.post("/hazards/<int:hazard_id>/decision")
@require(*DECIDE_ROLES)
def hazard_decision(hazard_id: int):
    from dashboard.api_hazards import store as hazards

    _visible_hazard(hazard_id)
    fields, errors = check_decision(_body(), hazards().catalogue)
    if errors:
        raise _bad(errors)
    p = g.principal
    try:
        th = discussions().decide(hazard_id, fields, p.username, p.role, discussions().unit_of(p.inspector_id))
    except LookupError:
        raise ApiError(404, "not_found", f"no hazard {hazard_id}") from None
    except AlreadyDecided as e:
        raise ApiError(409, "already_decided", str(e)) from None
    return jsonify(_present_thread(th))
