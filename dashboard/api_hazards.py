"""The hazard routes of the HTTP API under /api/v1 (docs/api.md "Hazards"): the closed
loop (隐患闭环), photos, self-inspections, red light, daily scores, and the enterprises
with their credit face (信用脸谱).  A third Flask blueprint.

Authorised on the server: the role decides what a caller may do (403 otherwise),
the area what it may see (an officer: its own grids or streets; an enterprise
account: its own enterprise; 404 outside).  Every change is written to the audit
log by ``data.hazards_store`` in the same transaction; refusals of a change by role
are audited here (``access_denied``).
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from flask import Blueprint, Response, g, jsonify, request

from dashboard.api import ApiError, int_arg, iso, per_app, require, web
from data.hazards_store import Conflict, HazardStore
from data.photos import PhotoRefused
from geo.china import CHINA_TZ, YEAR_MAX, YEAR_MIN
from hazards.lifecycle import TransitionNotAllowed
from hazards.model import FINDERS, LEVELS, STATES
from hazards.review import COMMENT_MAX, has_control_characters

api_hazards = Blueprint("api_hazards", __name__, url_prefix="/api/v1")

SEE_ROLES = ("wall", "dispatcher", "officer", "admin", "enterprise")
REPORT_ROLES = ("dispatcher", "officer", "admin", "enterprise")
OFFICIAL_ROLES = ("dispatcher", "officer", "admin")  # assign, accept, reject, close
SCORE_KINDS = ("enterprise", "street", "unit", "agency")
RISKS = ("red", "orange", "yellow", "blue")
TEXT_MAX = COMMENT_MAX  # every free-text field alike
ID_MAX = 64


@api_hazards.errorhandler(ApiError)
def _api_error(e: ApiError):
    body = {"error": e.code, "message": e.message}
    if getattr(e, "errors", None):
        body["errors"] = e.errors
    return jsonify(body), e.status


def _bad(errors: list[dict]) -> ApiError:
    e = ApiError(400, "bad_request", "; ".join(f"{x['field']}: {x['reason']}" for x in errors))
    e.errors = errors
    return e


def store() -> HazardStore:
    """One HazardStore per app (its catalogue is read once)."""
    return per_app("anjian_hazards", lambda: HazardStore(web().engine, web().settings))


def _body() -> dict:
    if not request.data:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def _text(body: dict, name: str, errors: list, required: bool = False) -> str | None:
    v = body.get(name)
    if v is None or v == "":
        if required:
            errors.append({"field": name, "reason": "required"})
        return None
    if not isinstance(v, str) or len(v) > TEXT_MAX:
        errors.append({"field": name, "reason": f"a string of at most {TEXT_MAX} characters"})
        return None
    if has_control_characters(v):  # NUL cut a description short in SQLite
        errors.append({"field": name, "reason": "control_character"})
        return None
    return v


# The times a deadline may name: the years of geo.china (the API answers a later one
# as null, and such a hazard could never fall overdue).
_TIME_MIN = datetime(YEAR_MIN, 1, 1, tzinfo=CHINA_TZ).timestamp()
_TIME_MAX = datetime(YEAR_MAX + 1, 1, 1, tzinfo=CHINA_TZ).timestamp()


def _time(body: dict, name: str, errors: list) -> float | None:
    """Epoch seconds, or ISO-8601 (a date alone is the end of that day, China time),
    within the years YEAR_MIN..YEAR_MAX."""
    v = body.get(name)
    if v is None or v == "":
        return None
    ts = None
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        ts = float(v)
    elif isinstance(v, str) and v.isascii():
        try:
            if len(v) == 10:
                d = datetime.fromisoformat(v).replace(hour=23, minute=59, second=59, tzinfo=CHINA_TZ)
                ts = d.timestamp()
            else:
                d = datetime.fromisoformat(v)
                ts = (d if d.tzinfo else d.replace(tzinfo=CHINA_TZ)).timestamp()
        except ValueError:
            pass
    if ts is not None and _TIME_MIN <= ts < _TIME_MAX:
        return ts
    errors.append({"field": name, "reason": f"epoch seconds, YYYY-MM-DD or ISO-8601, in {YEAR_MIN}-{YEAR_MAX}"})
    return None


def _number(body: dict, name: str, lo: float, hi: float, errors: list) -> float | None:
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        errors.append({"field": name, "reason": f"a number between {lo} and {hi}"})
        return None
    return float(v)


def _present(h: dict) -> dict:
    """The contract's fields (ISO times) beside the epoch ones."""
    h["deadline"] = iso(h["deadline_ts"])
    h["reported_at"] = iso(h["reported_ts"])
    h["closed_at"] = iso(h["closed_ts"])
    for e in h.get("history", ()):
        e["at"] = iso(e["at_ts"])
    return h


def _visible(h: dict | None, hazard_id: int) -> dict:
    if h is None or not g.principal.sees_enterprise(h["enterprise_id"], h["street_id"], h["grid_id"]):
        raise ApiError(404, "not_found", f"no hazard {hazard_id}")
    return h


def _enterprise_visible(enterprise_id: str):
    ent = store().enterprise(enterprise_id) if enterprise_id and len(enterprise_id) <= ID_MAX else None
    if ent is None or not g.principal.sees_enterprise(ent.id, ent.street_id, ent.grid_id):
        raise ApiError(404, "not_found", f"no enterprise {enterprise_id}")
    return ent


def _scope() -> dict:
    p = g.principal
    if p.role == "officer":
        return {"grids": list(p.grids)} if p.grids else {"streets": list(p.streets)}
    return {}


# --- hazards ----------------------------------------------------------------------------


@api_hazards.get("/hazards/catalogue")
@require(*SEE_ROLES)
def hazard_catalogue():
    return jsonify(store().catalogue.as_json())


@api_hazards.get("/hazards")
@require(*SEE_ROLES)
def hazards_list():
    p = g.principal
    state = request.args.get("state") or None
    level = request.args.get("level") or None
    if state and state not in STATES:
        raise ApiError(400, "bad_parameter", f"state must be one of {', '.join(STATES)}")
    if level and level not in LEVELS:
        raise ApiError(400, "bad_parameter", f"level must be one of {', '.join(LEVELS)}")
    enterprise_id = request.args.get("enterprise_id") or None
    if p.role == "enterprise":
        if enterprise_id not in (None, p.enterprise_id):
            raise ApiError(404, "not_found", f"no enterprise {enterprise_id}")
        enterprise_id = p.enterprise_id
    overdue = (request.args.get("overdue") or "").lower() in ("1", "true", "yes")
    now = time.time()
    rows = store().list(state=state, level=level, enterprise_id=enterprise_id,
                        overdue_at=now if overdue else None,
                        open_only=(request.args.get("open") or "").lower() in ("1", "true", "yes"),
                        limit=int_arg("limit", 500, 1, 5000), now=now, **_scope())
    return jsonify([_present(h) for h in rows])


@api_hazards.post("/hazards")
@require(*REPORT_ROLES)
def hazards_create():
    p = g.principal
    body = _body()
    errors: list[dict] = []
    enterprise_id = _text(body, "enterprise_id", errors, required=p.role != "enterprise")
    if p.role == "enterprise":
        enterprise_id = enterprise_id or p.enterprise_id
    category = _text(body, "category", errors, required=True)
    if category and category not in store().catalogue:
        errors.append({"field": "category", "reason": "not an item of the hazard catalogue"})
    level = body.get("level")
    if level not in LEVELS:
        errors.append({"field": "level", "reason": f"one of {', '.join(LEVELS)}"})
    description = _text(body, "description", errors)
    lat = _number(body, "lat", -90, 90, errors)
    lon = _number(body, "lon", -180, 180, errors)
    visit_id = body.get("visit_id")
    if visit_id is not None and (isinstance(visit_id, bool) or not isinstance(visit_id, int)):
        errors.append({"field": "visit_id", "reason": "an integer"})
    if p.role == "enterprise":
        found_by, finder_id = "enterprise", p.enterprise_id
    elif p.role == "officer":
        found_by, finder_id = "inspector", p.inspector_id or p.username
    else:
        found_by = body.get("found_by", "inspector")
        if found_by not in FINDERS:
            errors.append({"field": "found_by", "reason": f"one of {', '.join(FINDERS)}"})
        finder_id = _text(body, "finder_id", errors)
    if errors:
        raise _bad(errors)
    _enterprise_visible(enterprise_id)
    h = store().create(p.username, enterprise_id=enterprise_id, category=category, level=level,
                       found_by=found_by, finder_id=finder_id, visit_id=visit_id, lat=lat, lon=lon,
                       description=description)
    return jsonify(_present(h)), 201


@api_hazards.get("/hazards/<int:hazard_id>")
@require(*SEE_ROLES)
def hazard_get(hazard_id: int):
    return jsonify(_present(_visible(store().get(hazard_id), hazard_id)))


def _act(hazard_id: int, action: str, **kw):
    _visible(store().get(hazard_id), hazard_id)
    try:
        h = store().act(hazard_id, action, g.principal.username, **kw)
    except LookupError:
        raise ApiError(404, "not_found", f"no hazard {hazard_id}") from None
    except TransitionNotAllowed as e:
        raise ApiError(409, e.reason, str(e)) from None
    except Conflict as e:
        raise ApiError(409, "conflict", str(e)) from None
    except ValueError as e:
        raise ApiError(400, "bad_request", str(e)) from None
    return jsonify(_present(h))


@api_hazards.post("/hazards/<int:hazard_id>/assign")
@require(*OFFICIAL_ROLES)
def hazard_assign(hazard_id: int):
    body, errors = _body(), []
    deadline = _time(body, "deadline", errors)
    note = _text(body, "note", errors)
    if errors:
        raise _bad(errors)
    return _act(hazard_id, "assign", deadline=deadline, note=note)


@api_hazards.post("/hazards/<int:hazard_id>/rectify")
@require(*REPORT_ROLES)
def hazard_rectify(hazard_id: int):
    body, errors = _body(), []
    note = _text(body, "note", errors, required=True)
    if errors:
        raise _bad(errors)
    return _act(hazard_id, "rectify", note=note)


@api_hazards.post("/hazards/<int:hazard_id>/accept")
@require(*OFFICIAL_ROLES)
def hazard_accept(hazard_id: int):
    body, errors = _body(), []
    method = body.get("method", "on_site")
    if method not in ("on_site", "review"):
        errors.append({"field": "method", "reason": "on_site or review"})
    note = _text(body, "note", errors)
    if errors:
        raise _bad(errors)
    fix = None
    if method == "on_site":
        me = g.principal.inspector_id
        fix = web().live.inspector_fixes([me]).get(me) if me else None
    return _act(hazard_id, "accept", method=method, note=note, fix=fix)


@api_hazards.post("/hazards/<int:hazard_id>/reject")
@require(*OFFICIAL_ROLES)
def hazard_reject(hazard_id: int):
    body, errors = _body(), []
    reason = _text(body, "reason", errors) or _text(body, "note", errors)
    if not reason:
        errors.append({"field": "reason", "reason": "required: why the rectification is sent back"})
    deadline = _time(body, "deadline", errors)
    if errors:
        raise _bad(errors)
    return _act(hazard_id, "reject", note=reason, deadline=deadline)


@api_hazards.post("/hazards/<int:hazard_id>/close")
@require(*OFFICIAL_ROLES)
def hazard_close(hazard_id: int):
    body, errors = _body(), []
    note = _text(body, "note", errors)
    if errors:
        raise _bad(errors)
    return _act(hazard_id, "close", note=note)


@api_hazards.post("/hazards/<int:hazard_id>/photos")
@require(*REPORT_ROLES)
def hazard_photos(hazard_id: int):
    h = _visible(store().get(hazard_id), hazard_id)
    files = request.files.getlist("file")
    if not files:
        raise _bad([{"field": "file", "reason": "a multipart file field 'file' is required"}])
    stage = request.form.get("stage") or ("rectification" if h["state"] == "rectifying" else "finding")
    limit = web().settings.photo_max_bytes
    stored = []
    for f in files:
        data = f.stream.read(limit + 1)  # never more than one byte past the limit into memory
        try:
            stored.append(store().add_photo(hazard_id, stage, data, g.principal.username))
        except PhotoRefused as e:
            status = {"too_large": 413, "not_an_image": 415, "empty": 400}.get(e.code, 409)
            body = {"error": e.code, "message": f"{f.filename or 'file'}: {e}", "stored": stored}
            return jsonify(body), status
        except ValueError as e:
            raise ApiError(400, "bad_request", str(e)) from None
        except LookupError:
            raise ApiError(404, "not_found", f"no hazard {hazard_id}") from None
    return jsonify(_present(store().get(hazard_id))), 201


@api_hazards.get("/hazards/<int:hazard_id>/photos/<int:photo_id>")
@require(*SEE_ROLES)
def hazard_photo(hazard_id: int, photo_id: int):
    return _photo_response(hazard_id, photo_id, thumb=False)


@api_hazards.get("/hazards/<int:hazard_id>/photos/<int:photo_id>/thumb")
@require(*SEE_ROLES)
def hazard_photo_thumb(hazard_id: int, photo_id: int):
    return _photo_response(hazard_id, photo_id, thumb=True)


def _photo_response(hazard_id: int, photo_id: int, thumb: bool):
    _visible(store().get(hazard_id), hazard_id)
    got = store().photo(hazard_id, photo_id, thumb=thumb)
    if got is None:
        raise ApiError(404, "not_found", f"no photo {photo_id} of hazard {hazard_id}")
    data, content_type = got
    resp = Response(data, mimetype=content_type)
    resp.headers["Cache-Control"] = "private, max-age=86400"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# --- self-inspections ----------------------------------------------------------------------


@api_hazards.post("/self-inspections")
@require("enterprise", "admin")
def self_inspection_submit():
    p = g.principal
    body = _body()
    enterprise_id = p.enterprise_id if p.role == "enterprise" else body.get("enterprise_id")
    if p.role == "enterprise" and body.get("enterprise_id") not in (None, p.enterprise_id):
        raise ApiError(404, "not_found", f"no enterprise {body.get('enterprise_id')}")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise _bad([{"field": "items", "reason": "the checklist: a non-empty list of {code, ok, note}"}])
    if not isinstance(enterprise_id, str) or not enterprise_id:
        raise ApiError(400, "missing_field", "enterprise_id is required (a string)")
    _enterprise_visible(enterprise_id)
    try:
        return jsonify(store().submit_self_inspection(enterprise_id, p.username, items)), 201
    except ValueError as e:
        raise _bad([{"field": "items", "reason": r} for r in str(e).split("; ")]) from None


@api_hazards.get("/self-inspections")
@require(*SEE_ROLES)
def self_inspection_list():
    p = g.principal
    enterprise_id = p.enterprise_id if p.role == "enterprise" else request.args.get("enterprise_id", "")
    if not enterprise_id:
        raise ApiError(400, "missing_field", "enterprise_id is required (the enterprise whose self-inspections)")
    _enterprise_visible(enterprise_id)
    rows = store().self_inspections(enterprise_id, int_arg("limit", 20, 1, 500))
    for r in rows:
        r["submitted_at"] = iso(r["submitted_ts"])
    return jsonify(rows)


# --- red light, scores --------------------------------------------------------------------------


@api_hazards.get("/red-light")
@require("wall", "dispatcher", "officer", "admin")
def red_light_list():
    scope = _scope()
    street, grid = request.args.get("street") or None, request.args.get("grid") or None
    rows = store().red_light(time.time(), **scope)
    if street:
        rows = [r for r in rows if r["street_id"] == street]
    if grid:
        rows = [r for r in rows if r["grid_id"] == grid]
    return jsonify(rows[:int_arg("limit", 1000, 1, 200000)])


@api_hazards.get("/scores")
@require("wall", "dispatcher", "officer", "admin")
def scores():
    from data.scores_store import latest_date, scores_of

    kind = request.args.get("kind") or "enterprise"
    if kind not in SCORE_KINDS:
        raise ApiError(400, "bad_parameter", f"kind must be one of {', '.join(SCORE_KINDS)}")
    day = request.args.get("date") or latest_date(web().engine)
    if day is not None:
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            raise ApiError(400, "bad_parameter", "date must be YYYY-MM-DD (China time)") from None
    rows = [] if day is None else scores_of(web().engine, day, kind, limit=int_arg("limit", 1000, 1, 200000))
    p = g.principal
    if p.role == "officer" and kind == "enterprise":
        visible = {e.id for e in store().enterprises(limit=1_000_000, **_scope())}
        rows = [r for r in rows if r["id"] in visible]
    resp = jsonify(rows)
    if day:
        resp.headers["X-Anjian-Score-Date"] = day
    return resp


# --- enterprises and the credit face ---------------------------------------------------------


def _enterprise_json(e) -> dict:
    return {"id": e.id, "name": e.name, "credit_code": e.credit_code, "risk": e.risk, "street_id": e.street_id,
            "grid_id": e.grid_id, "lat": e.lat, "lon": e.lon, "industry": e.industry, "address": e.address,
            "last_inspected_at": iso(e.last_inspected_at), "next_due_at": iso(e.next_due_at)}


@api_hazards.get("/enterprises")
@require(*SEE_ROLES)
def enterprises():
    p = g.principal
    risk = request.args.get("risk") or None
    if risk and risk not in RISKS:
        raise ApiError(400, "bad_parameter", f"risk must be one of {', '.join(RISKS)}")
    q = request.args.get("q") or None
    if q and len(q) > 128:
        raise ApiError(400, "bad_parameter", "q is longer than 128 characters")
    rows = store().enterprises(street=request.args.get("street") or None, grid=request.args.get("grid") or None,
                               risk=risk, q=q, limit=int_arg("limit", 200, 1, 5000),
                               only_id=p.enterprise_id if p.role == "enterprise" else None, **_scope())
    return jsonify([_enterprise_json(e) for e in rows])


@api_hazards.get("/enterprises/<enterprise_id>")
@require(*SEE_ROLES)
def enterprise_get(enterprise_id: str):
    ent = _enterprise_visible(enterprise_id)
    out = _enterprise_json(store().enterprises(only_id=ent.id, limit=1)[0])
    face = store().credit_face(ent.id, time.time())
    for item in face["hazards"]["items"]:
        item["deadline"] = iso(item["deadline_ts"])
    for v in face["visits"]:
        v["start"] = iso(v["start_ts"])
    out.update(face)
    return jsonify(out)
