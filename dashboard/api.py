"""The HTTP API under /api/v1 (docs/api.md), a Flask blueprint.

Every route but ``health`` needs a credential: a bearer token
(``Authorization: Bearer ...``) or the dashboard's login session.  401 without
one, 403 for a role that may not use the route.  Routes answer JSON lists of
objects; the live-state version rides along in the ``X-Anjian-Version`` header.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from datetime import datetime

from flask import Blueprint, Response, current_app, g, jsonify, request, session, stream_with_context

from dashboard.metrics import CONTENT_TYPE
from data.screen_queries import dead_letters
from geo.china import CHINA_TZ as SHANGHAI  # the name _iso_second uses
from geo.timefmt import iso
from hazards.review import COMMENT_MAX, has_control_characters

api = Blueprint("api", __name__, url_prefix="/api/v1")

READ_ROLES = ("wall", "dispatcher", "officer", "admin")
OPS_ROLES = ("dispatcher", "admin")


def web():
    """The WebContext that app.py handed to create_server()."""
    return current_app.extensions["anjian"]


_PER_APP_LOCK = threading.RLock()  # re-entrant: one object's maker may ask for another


def per_app(key: str, make: Callable):
    """One object per Flask app under ``key`` in its extensions, made by ``make()`` on
    first use and only once (a store that reads its catalogue once, a publisher with
    one connection)."""
    ext = current_app.extensions
    obj = ext.get(key)
    if obj is None:
        with _PER_APP_LOCK:
            obj = ext.get(key)
            if obj is None:
                obj = ext[key] = make()
    return obj


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@api.errorhandler(ApiError)
def _api_error(e: ApiError):
    return jsonify({"error": e.code, "message": e.message}), e.status


def current_principal():
    ctx = web()
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return ctx.tokens.authenticate(header[7:].strip())
    uid = session.get("uid")
    if uid is not None:
        return ctx.session_principal(uid)
    return None


def require(*roles: str) -> Callable:
    """Route decorator: authenticate, then check the role on the server."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            p = current_principal()
            if p is None:
                resp = jsonify({"error": "unauthorized", "message": "a bearer token or a login session is required"})
                resp.headers["WWW-Authenticate"] = 'Bearer realm="anjian"'
                return resp, 401
            if p.role not in roles:
                web().audit_denied(p, request.method, request.path)
                return jsonify({"error": "forbidden", "message": f"role {p.role} may not use {request.path}"}), 403
            g.principal = p
            return fn(*args, **kwargs)

        return wrapper

    return deco


# Numbers in query parameters as people write them: ASCII digits.  Python's int() and
# float() also take "5_0", "+5", "１２" and "١٢", which no client means.
_INT = re.compile(r"-?[0-9]{1,18}")
_NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,9})?")


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw):
        raise ApiError(400, "bad_parameter", f"{name} must be an integer")
    v = int(raw)
    if not lo <= v <= hi:
        raise ApiError(400, "bad_parameter", f"{name} must be between {lo} and {hi}")
    return v


def time_arg(name: str) -> float | None:
    """Epoch seconds or ISO-8601 (no offset: Asia/Shanghai); a finite time ("nan" and
    "inf" are refused)."""
    raw = request.args.get(name)
    if not raw:
        return None
    if _NUMBER.fullmatch(raw):
        return float(raw)
    if raw.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ApiError(400, "bad_parameter", f"{name} must be a finite time")
    try:
        if not raw.isascii():
            raise ValueError(raw)
        dt = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be epoch seconds or ISO-8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=SHANGHAI)
    return dt.timestamp()


def versioned(payload, version: int | None = None):
    resp = jsonify(payload)
    if version is not None:
        resp.headers["X-Anjian-Version"] = str(version)
    return resp


# --- routes ------------------------------------------------------------------


# What health names of the deployment's insides: for a caller with a credential only.
# A load balancer's probe needs the status, not where the broker and the database are.
HEALTH_PRIVATE = ("mqtt_url", "database_url", "broker_nodes")


@api.get("/health")
def health():
    out = web().health()
    if current_principal() is None:
        out = {k: v for k, v in out.items() if k not in HEALTH_PRIVATE}
    return jsonify(out)


@api.get("/inspectors")
@require(*READ_ROLES)
def inspectors():
    snap = web().snapshot()
    return versioned(snap.inspectors_json(), snap.version)


@api.get("/sensors")
@require(*READ_ROLES)
def sensors():
    snap = web().snapshot()
    p = g.principal
    return versioned([s for s in snap.sensors_json() if p.sees_area(s["street_id"], s["grid_id"])], snap.version)


@api.get("/events")
@require(*READ_ROLES)
def events():
    """Server-sent events: ``event: alert`` with ``{"v", "ids"}`` whenever alerts change, and
    with ``?view=wall|dispatch`` the ``rows`` of new alarms that screen shows (dashboard.push)."""
    from dashboard.push import preview_for

    preview = preview_for(request.args.get("view"))
    resp = Response(stream_with_context(web().feed.stream(preview=preview)), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
    return resp


@api.get("/deadletters")
@require(*OPS_ROLES)
def deadletters():
    limit = int_arg("limit", 100, 1, 1000)
    reason = request.args.get("reason")
    rows = dead_letters(web().engine, limit, reason)
    return jsonify([
        {
            "id": r.id,
            "topic": r.topic,
            "reason": r.reason,
            "detail": r.detail,
            "received_at": iso(r.received_at),
            "received_ts": r.received_at,
            "payload_head": bytes(r.payload_head).decode("utf-8", errors="replace"),
            "payload_size": r.payload_size,
            "worker": r.worker,
        }
        for r in rows
    ])


def metrics_response() -> Response:
    return Response(web().metrics.exposition(), content_type=CONTENT_TYPE)


# ``GET /metrics`` sits at the root (docs/api.md); create_server registers it.
metrics_route = require(*READ_ROLES)(metrics_response)


# --- alerts -------------------------------------------------------------------------

ACT_ROLES = ("dispatcher", "officer", "admin")


# What an officer may do to an alarm of their own area (data.alert_store.OFFICER_ACTIONS).
OFFICER_ALERT_ACTIONS = ("ack", "assign", "arrive", "resolve")


def actions_for(p, a: dict) -> list[str]:
    """The lifecycle's ``allowed_actions`` of ``a`` that ``p`` may actually use: all of
    them for dispatchers and admins; for an officer, those of OFFICER_ALERT_ACTIONS on an
    alert of their own area (``assign`` only with a linked inspector: "on my way";
    ``arrive`` only on an alarm sent to that inspector); none
    for the wall or anyone else."""
    acts = list(a.get("allowed_actions") or [])
    if p.role in OPS_ROLES:
        return acts
    if p.role == "officer" and p.sees_area(a.get("street_id"), a.get("grid_id")):
        # Arrival is the sent officer's to report (data/alert_store.py refuses anyone else).
        return [x for x in acts if x in OFFICER_ALERT_ACTIONS and (x != "assign" or p.inspector_id)
                and (x != "arrive" or (p.inspector_id and a.get("assignee_id") == p.inspector_id))]
    return []


def for_caller(a: dict) -> dict:
    return {**a, "allowed_actions": actions_for(g.principal, a)}


@api.get("/alerts")
@require(*READ_ROLES)
def alerts_list():
    state = request.args.get("state") or None
    rows = web().alerts.list(state=state, principal=g.principal, limit=int_arg("limit", 200, 1, 2000),
                             type=request.args.get("type") or None, since=time_arg("since"))
    return jsonify([for_caller(a) for a in rows])


@api.get("/alerts/<int:alert_id>")
@require(*READ_ROLES)
def alert_get(alert_id: int):
    a = web().alerts.get(alert_id)
    if a is None or not g.principal.sees_area(a["street_id"], a["grid_id"]):
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    return jsonify(for_caller(a))


@api.get("/alerts/<int:alert_id>/nearest")
@require("dispatcher", "admin")
def alert_nearest(alert_id: int):
    return jsonify(web().alerts.nearest(alert_id, k=int_arg("k", 5, 1, 50)))


def _body() -> dict:
    if not request.data:
        return {}
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


NOTE_MAX = COMMENT_MAX  # characters of an action's note, as of every free-text field
ID_MAX = 64


def text_field(body: dict, name: str, max_len: int = NOTE_MAX, required: bool = False) -> str | None:
    """A string field of a JSON body: None when absent, null or empty (400 ``missing_field``
    if ``required``); 400 ``bad_field`` for anything but a string, over ``max_len``
    characters, or holding control characters (NUL cuts text short in SQLite and
    PostgreSQL cannot store it)."""
    v = body.get(name)
    if v is None or v == "":
        if required:
            raise ApiError(400, "missing_field", f"{name} is required")
        return None
    if not isinstance(v, str):
        raise ApiError(400, "bad_field", f"{name} must be a string")
    if len(v) > max_len:
        raise ApiError(400, "bad_field", f"{name} must be at most {max_len} characters")
    if has_control_characters(v):
        raise ApiError(400, "bad_field", f"{name} must not hold control characters")
    return v


def _act(alert_id: int, action: str, **kw):
    from alerts.lifecycle import TransitionNotAllowed
    from data.alert_store import Conflict, UnknownReference

    p = g.principal
    try:
        return jsonify(for_caller(web().alerts.act(alert_id, action, p, **kw)))
    except LookupError:
        raise ApiError(404, "not_found", f"no alert {alert_id}") from None
    except PermissionError as e:
        web().audit_denied(p, request.method, request.path)
        raise ApiError(403, "forbidden", str(e)) from None
    except (TransitionNotAllowed, Conflict) as e:
        raise ApiError(409, "conflict", str(e)) from None
    except UnknownReference as e:
        raise ApiError(400, e.code, str(e)) from None
    except ValueError as e:
        raise ApiError(400, "bad_request", str(e)) from None


@api.post("/alerts/<int:alert_id>/ack")
@require(*ACT_ROLES)
def alert_ack(alert_id: int):
    return _act(alert_id, "ack", note=text_field(_body(), "note"))


@api.post("/alerts/<int:alert_id>/assign")
@require(*ACT_ROLES)
def alert_assign(alert_id: int):
    body = _body()
    inspector_id = text_field(body, "inspector_id", ID_MAX, required=g.principal.role != "officer")
    return _act(alert_id, "assign", assignee_id=inspector_id, note=text_field(body, "note"),
                take_over=body.get("take_over") is True)


@api.post("/alerts/<int:alert_id>/arrive")
@require(*ACT_ROLES)
def alert_arrive(alert_id: int):
    return _act(alert_id, "arrive", note=text_field(_body(), "note"))


@api.post("/alerts/<int:alert_id>/resolve")
@require(*ACT_ROLES)
def alert_resolve(alert_id: int):
    body = _body()
    if not body.get("outcome"):
        raise ApiError(400, "missing_field", "outcome is required (leak_handled, false_alarm, device_fault, ...)")
    return _act(alert_id, "resolve", outcome=text_field(body, "outcome", ID_MAX), note=text_field(body, "note"))


@api.get("/alerts/<int:alert_id>/reassignment")
@require("dispatcher", "admin")
def alert_reassignment(alert_id: int):
    """For duplicate_visit / overlap_now / approach_warning: where to send the second team instead."""
    s = web().alerts.reassignment(alert_id)
    if s is None:
        raise ApiError(404, "no_suggestion", "no overdue enterprise of the team's unit to send it to")
    return jsonify(s)


@api.post("/alerts/<int:alert_id>/reassign")
@require("dispatcher", "admin")
def alert_reassign(alert_id: int):
    """One action: move the second team to another enterprise (default: the suggestion),
    dispatch it over MQTT, and resolve the alert with outcome ``reassigned``."""
    body = _body()
    inspector_id, enterprise_id = text_field(body, "inspector_id", ID_MAX), text_field(body, "enterprise_id", ID_MAX)
    if not (inspector_id and enterprise_id):
        s = web().alerts.reassignment(alert_id)
        if s is None:
            raise ApiError(409, "no_suggestion", "no overdue enterprise to send the team to; give enterprise_id")
        inspector_id = inspector_id or s["inspector_id"]
        enterprise_id = enterprise_id or s["enterprise_id"]
    return _act(alert_id, "reassign", assignee_id=inspector_id, target_enterprise_id=enterprise_id,
                note=text_field(body, "note"))


@api.post("/alerts/<int:alert_id>/close")
@require("dispatcher", "admin")
def alert_close(alert_id: int):
    return _act(alert_id, "close", note=text_field(_body(), "note"))
