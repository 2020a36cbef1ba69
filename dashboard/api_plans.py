"""The plans routes of the HTTP API under /api/v1 (docs/api.md, "Plans"): weekly plans,
their CSV/XLSX import, the collision check and its resolutions, joint tasks, plan
against actual, the double-random draw and its verification, the targeting list.

Authorised on the server: a street office (role ``officer``) plans only for its
own units (``PlansStore.own_units``: the street offices of its streets and its
inspector's unit) and sees only their plans, conflicts and tasks; dispatchers and
admins approve, resolve and draw.  Every change is audited (``data.audit``) in
the transaction that makes it.  A refused transition answers 409; a malformed
body 400 with every error.  The rules are in plans/ (docs/plans.md).
"""

from __future__ import annotations

import time

from flask import Blueprint, g, jsonify, request

from dashboard.api import READ_ROLES, ApiError, int_arg, per_app, require, web
from data.plans_store import PlansStore, RowErrors, read_plan_file, week_now
from geo.china import check_year
from plans import draw as drawing
from plans.lifecycle import TransitionNotAllowed
from plans.model import RISK_COLOURS_ALL, local_date, parse_date, parse_week
from plans.tasks import task_payload, tasks_topic

api_plans = Blueprint("api_plans", __name__, url_prefix="/api/v1")

PLAN_ROLES = ("dispatcher", "officer", "admin")
MANAGE_ROLES = ("dispatcher", "admin")
MAX_IMPORT_BYTES = 10 * 1024 * 1024
MAX_DRAW_COUNT = 10000
ID_MAX_LEN = 64


@api_plans.errorhandler(ApiError)
def _api_error(e: ApiError):
    return jsonify({"error": e.code, "message": e.message}), e.status


def store() -> PlansStore:
    def make():
        st = web().settings
        return PlansStore(web().engine, duplicate_window_s=st.duplicate_window_s, intervals_d=st.interval_days(),
                          tolerance_d=st.plan_match_tolerance_d)

    return per_app("anjian_plans", make)


def publisher():
    def make():
        from dashboard.task_publisher import TaskPublisher

        st = web().settings
        return TaskPublisher(web().mqtt_url, st.mqtt_client_id + "-web", tls_ca=st.mqtt_tls_ca,
                             tls_insecure=st.mqtt_tls_insecure, keepalive_s=st.mqtt_keepalive_s)

    return per_app("anjian_task_publisher", make)


def _now() -> float:
    return time.time()


def _actor() -> str:
    return g.principal.username


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def _week(raw, required: bool = False) -> str:
    if raw in (None, ""):
        if required:
            raise ApiError(400, "bad_parameter", "week is required (ISO week, e.g. 2026-W49)")
        return week_now(_now())
    try:
        parse_week(raw)
    except ValueError as e:
        raise ApiError(400, "bad_parameter", str(e)) from None
    return raw


def _own_units() -> set[str] | None:
    """None: the caller sees every unit (dispatcher, admin, wall)."""
    p = g.principal
    if p.role != "officer":
        return None
    units = g.get("own_units")
    if units is None:
        units = g.own_units = store().own_units(p)
    return units


def _may_plan_for(unit_id: str) -> None:
    own = _own_units()
    if own is not None and unit_id not in own:
        web().audit_denied(g.principal, request.method, request.path)
        raise ApiError(403, "forbidden", f"{g.principal.username} plans only for its own unit, not {unit_id}")


def _row_errors(e: RowErrors):
    return jsonify({"error": "bad_rows", "message": f"{len(e.errors)} errors; nothing was stored",
                    "errors": e.errors}), 400


def _save(unit_id, week, rows, source: str):
    if not isinstance(unit_id, str) or not unit_id or len(unit_id) > ID_MAX_LEN:
        raise ApiError(400, "missing_field", "unit_id is required")
    week = _week(week, required=True)
    _may_plan_for(unit_id)
    try:
        plan = store().save_plan(unit_id, week, rows, _actor(), _now(), source=source)
    except RowErrors as e:
        return _row_errors(e)
    except LookupError as e:
        raise ApiError(404, "not_found", str(e)) from None
    except TransitionNotAllowed as e:
        raise ApiError(409, "conflict", f"the {week} plan of {unit_id} is no longer a draft ({e})") from None
    return jsonify(plan), 201


# --- plans ------------------------------------------------------------------------


@api_plans.get("/plans")
@require(*READ_ROLES)
def plans_list():
    return jsonify(store().list_plans(_week(request.args.get("week")), _units_asked()))


def _units_asked() -> list[str] | None:
    """The units a read covers: ``?unit=`` when the caller may see it (404 otherwise),
    else the caller's own units (None: every unit)."""
    unit = request.args.get("unit") or None
    own = _own_units()
    units = None if own is None else sorted(own)
    if unit:
        if units is not None and unit not in units:
            raise ApiError(404, "not_found", f"unit {unit} is not in your area")
        units = [unit]
    return units


@api_plans.post("/plans")
@require(*PLAN_ROLES)
def plans_create():
    body = _body()
    items = body.get("items")
    if not isinstance(items, list):
        raise ApiError(400, "missing_field", "items must be a list of {enterprise_id, date, inspector_ids, purpose}")
    return _save(body.get("unit_id"), body.get("week"), [(k + 1, it) for k, it in enumerate(items)], "json")


@api_plans.post("/plans/import")
@require(*PLAN_ROLES)
def plans_import():
    f = request.files.get("file")
    if f is None:
        raise ApiError(400, "missing_field", "a multipart file field `file` (CSV or XLSX) is required")
    data = f.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", f"a plan file is at most {MAX_IMPORT_BYTES} bytes")
    unit_id, week = request.form.get("unit_id"), request.form.get("week")
    if not isinstance(unit_id, str) or not unit_id:
        raise ApiError(400, "missing_field", "unit_id is required")
    _week(week, required=True)
    _may_plan_for(unit_id)
    try:
        rows = read_plan_file(f.filename or "", data)
    except RowErrors as e:
        return _row_errors(e)
    return _save(unit_id, week, rows, f"file:{(f.filename or '')[:100]}")


def _plan_action(plan_id: int, action: str):
    s = store()
    try:
        unit = s.plan_unit(plan_id)
        own = _own_units()
        if own is not None and unit not in own:
            raise ApiError(404, "not_found", f"no plan {plan_id} in your area")
        plan = s.act_on_plan(plan_id, action, _actor(), _now())
    except LookupError as e:
        raise ApiError(404, "not_found", str(e)) from None
    except TransitionNotAllowed as e:
        raise ApiError(409, "conflict", str(e)) from None
    return plan


@api_plans.get("/plans/<int:plan_id>")
@require(*READ_ROLES)
def plan_get(plan_id: int):
    try:
        plan = store().get_plan(plan_id)
    except LookupError as e:
        raise ApiError(404, "not_found", str(e)) from None
    own = _own_units()
    if own is not None and plan["unit_id"] not in own:
        raise ApiError(404, "not_found", f"no plan {plan_id} in your area")
    return jsonify(plan)


@api_plans.post("/plans/<int:plan_id>/submit")
@require(*PLAN_ROLES)
def plan_submit(plan_id: int):
    return jsonify(_plan_action(plan_id, "submit"))


@api_plans.post("/plans/<int:plan_id>/approve")
@require(*MANAGE_ROLES)
def plan_approve(plan_id: int):
    plan = _plan_action(plan_id, "approve")
    _publish_planned(plan)
    return jsonify(plan)


@api_plans.post("/plans/<int:plan_id>/return")
@require(*MANAGE_ROLES)
def plan_return(plan_id: int):
    return jsonify(_plan_action(plan_id, "return"))


# --- conflicts and joint tasks -------------------------------------------------------


@api_plans.get("/plans/conflicts")
@require(*READ_ROLES)
def conflicts_list():
    week = _week(request.args.get("week"))
    out = store().conflicts(week, _now())
    own = _own_units()
    if own is not None:
        plans = store().list_plans(week, sorted(own))
        mine = {i["id"] for p in plans for i in p["items"]}
        out = [c for c in out if mine & set(c["item_ids"])]
    return jsonify(out)


@api_plans.post("/plans/conflicts/<int:conflict_id>/resolve")
@require(*MANAGE_ROLES)
def conflict_resolve(conflict_id: int):
    body = _body()
    errors = []
    action = body.get("action")
    if action not in ("joint", "shift", "drop"):
        errors.append({"field": "action", "reason": "must be joint, shift or drop"})
    date = body.get("date")
    if date is not None and not isinstance(date, str):
        errors.append({"field": "date", "reason": "must be YYYY-MM-DD"})
    item_ids = body.get("item_ids")
    if item_ids is not None and not (isinstance(item_ids, list) and all(isinstance(i, int) for i in item_ids)):
        errors.append({"field": "item_ids", "reason": "must be a list of item ids"})
    if errors:
        return jsonify({"error": "bad_request", "message": "the body has errors", "errors": errors}), 400
    try:
        conflict = resolve_and_publish(conflict_id, action, _actor(), date=date, item_ids=item_ids)
    except LookupError as e:
        raise ApiError(404, "not_found", str(e)) from None
    except TransitionNotAllowed as e:
        raise ApiError(409, "conflict", str(e)) from None
    except ValueError as e:
        raise ApiError(400, "bad_request", str(e)) from None
    return jsonify(conflict)


def resolve_and_publish(conflict_id: int, action: str, actor: str, **kw) -> dict:
    """Resolve a conflict (``PlansStore.resolve``); a joint task goes to its inspectors' phones.
    The API route and the plans page both resolve through here."""
    conflict, joint = store().resolve(conflict_id, action, actor, _now(), **kw)
    if joint is not None:
        conflict["joint_task_id"] = joint["id"]
        _publish_joint(joint)
    return conflict


@api_plans.get("/joint-tasks")
@require(*READ_ROLES)
def joint_tasks():
    out = store().joint_tasks(_week(request.args.get("week")))
    own = _own_units()
    if own is not None:
        me = g.principal.inspector_id
        out = [t for t in out if own & set(t["unit_ids"]) or (me and me in t["inspector_ids"])]
    return jsonify(out)


def _publish_joint(t: dict) -> None:
    place = store().enterprise_places([t["enterprise_id"]]).get(t["enterprise_id"])
    if place is None:
        return
    name, lat, lon = place
    payload = task_payload(f"joint-{t['id']}", "joint", t["enterprise_id"], name, lat, lon, t["date"],
                           t["lead_unit_id"], t["unit_ids"], _now())
    prefix = web().settings.mqtt_prefix
    for iid in t["inspector_ids"]:
        publisher().publish(tasks_topic(prefix, iid), payload, qos=1)


def _publish_planned(plan: dict) -> None:
    """An approved plan's items reach their inspectors' phones (kind ``planned``)."""
    items = [i for i in plan["items"] if i["state"] == "planned" and i["inspector_ids"]]
    if not items:
        return
    places = store().enterprise_places(i["enterprise_id"] for i in items)
    prefix, now = web().settings.mqtt_prefix, _now()
    for i in items:
        place = places.get(i["enterprise_id"])
        if place is None:
            continue
        payload = task_payload(f"item-{i['id']}", "planned", i["enterprise_id"], place[0], place[1], place[2],
                               i["date"], plan["unit_id"], [plan["unit_id"]], now)
        for iid in i["inspector_ids"]:
            publisher().publish(tasks_topic(prefix, iid), payload, qos=1)


# --- plan against actual ------------------------------------------------------------------


@api_plans.get("/plans/actual")
@require(*READ_ROLES)
def plans_actual():
    return jsonify(store().actual(_week(request.args.get("week")), _units_asked(), _now()))


@api_plans.get("/tasks")
@require(*PLAN_ROLES)
def tasks_of_day():
    """An inspector's tasks of a day, as their phone shows them: an officer's own (the
    inspector linked to the account; none linked: an empty list), or ``?inspector=`` for a
    dispatcher or admin."""
    raw = request.args.get("date") or local_date(_now())
    try:
        check_year(parse_date(raw).year, raw)  # the day's span would overflow at the calendar's edges
    except ValueError as e:
        raise ApiError(400, "bad_parameter", f"date: {e}") from None
    p = g.principal
    asked = request.args.get("inspector") or None
    if p.role == "officer":
        if asked and asked != p.inspector_id:
            raise ApiError(404, "not_found", f"inspector {asked} is not you")
        inspector = p.inspector_id
        if not inspector:
            return jsonify([])
    else:
        if not asked:
            raise ApiError(400, "missing_field", "inspector is required (the inspector whose tasks to show)")
        inspector = asked
    return jsonify(store().day_tasks(inspector, raw, _now()))


# --- draws -------------------------------------------------------------------------------


def _str_list(v, name: str, errors: list) -> list[str] | None:
    if v in (None, "", []):
        return None
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and 0 < len(x) <= ID_MAX_LEN for x in v):
        errors.append({"field": f"pool.{name}", "reason": "must be a string or a list of strings"})
        return None
    return sorted(set(v))


@api_plans.post("/draws")
@require(*MANAGE_ROLES)
def draws_create():
    body = _body()
    errors: list[dict] = []
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_DRAW_COUNT:
        errors.append({"field": "count", "reason": f"must be an integer from 1 to {MAX_DRAW_COUNT}"})
    seed = body.get("seed")
    if not isinstance(seed, str) or not seed.strip() or len(seed) > drawing.MAX_SEED_LEN:
        errors.append({"field": "seed", "reason": f"must be the announced seed, 1 to {drawing.MAX_SEED_LEN} characters"})
    per = body.get("inspectors_per_enterprise", 2)
    if not isinstance(per, int) or isinstance(per, bool) or not 0 <= per <= 10:
        errors.append({"field": "inspectors_per_enterprise", "reason": "must be an integer from 0 to 10"})
    pool = body.get("pool") or {}
    if not isinstance(pool, dict):
        errors.append({"field": "pool", "reason": "must be an object"})
        pool = {}
    flt: dict = {}
    for name in ("street", "risk", "industry"):
        v = _str_list(pool.get(name), name, errors)
        if v is not None:
            flt[name] = v
    for r in flt.get("risk", []):
        if r not in RISK_COLOURS_ALL:
            errors.append({"field": "pool.risk", "reason": f"unknown risk colour {r!r}"})
    days = pool.get("exclude_inspected_days")
    if days is not None:
        if not isinstance(days, (int, float)) or isinstance(days, bool) or not 0 <= days <= 3650:
            errors.append({"field": "pool.exclude_inspected_days", "reason": "must be a number of days, 0 to 3650"})
        else:
            flt["exclude_inspected_days"] = days
    excl_planned = pool.get("exclude_planned", True)
    if not isinstance(excl_planned, bool):
        errors.append({"field": "pool.exclude_planned", "reason": "must be true or false"})
    flt["exclude_planned"] = bool(excl_planned)
    weights = body.get("weights") or drawing.DEFAULT_WEIGHTS
    if not (isinstance(weights, dict) and set(weights) <= set(drawing.RISK_ORDER)
            and all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w <= 1000 for w in weights.values())):
        errors.append({"field": "weights", "reason": "must map risk colours to integers from 0 to 1000"})
        weights = drawing.DEFAULT_WEIGHTS
    if errors:
        return jsonify({"error": "bad_request", "message": "the body has errors", "errors": errors}), 400
    params = drawing.DrawParams(count, per, bool(body.get("distinct_units", True)),
                                tuple((c, int(weights[c])) for c in drawing.RISK_ORDER if c in weights))
    draw = store().create_draw(seed, flt, params, _actor(), _now())
    draw["tasks_sent"] = _publish_draw(draw)
    return jsonify(draw), 201


def _publish_draw(draw: dict) -> int:
    """Each drawn inspector gets the drawn enterprise as a task (kind ``draw``, dated the
    day of the draw, China time; the first drawn inspector's unit leads).  Returns the
    number of task messages handed to the broker's client."""
    picks = [p for p in draw["picks"] if p["inspector_ids"]]
    if not picks:
        return 0
    places = store().enterprise_places(p["enterprise_id"] for p in picks)
    units = store().inspector_units(i for p in picks for i in p["inspector_ids"])
    prefix, now = web().settings.mqtt_prefix, _now()
    sent = 0
    for p in picks:
        place = places.get(p["enterprise_id"])
        if place is None:
            continue
        unit_ids = list(dict.fromkeys(units[i] for i in p["inspector_ids"] if units.get(i)))
        payload = task_payload(f"draw-{draw['id']}-{p['enterprise_id']}", "draw", p["enterprise_id"], place[0],
                               place[1], place[2], local_date(draw["created_at"]), unit_ids[0] if unit_ids else None,
                               unit_ids, now)
        for iid in p["inspector_ids"]:
            publisher().publish(tasks_topic(prefix, iid), payload, qos=1)
            sent += 1
    return sent


@api_plans.get("/draws/<int:draw_id>")
@require(*READ_ROLES)
def draw_get(draw_id: int):
    try:
        return jsonify(store().get_draw(draw_id))
    except LookupError as e:
        raise ApiError(404, "not_found", str(e)) from None


@api_plans.get("/draws/<int:draw_id>/verify")
@require(*READ_ROLES)
def draw_verify(draw_id: int):
    try:
        return jsonify(store().verify_draw(draw_id))
    except LookupError as e:
        raise ApiError(404, "not_found", str(e)) from None


# --- targeting list -------------------------------------------------------------------------


@api_plans.get("/targets")
@require(*READ_ROLES)
def targets():
    from dashboard.api_hazards import store as hazard_store

    limit = int_arg("limit", 100, 1, 5000)
    p = g.principal
    now = _now()
    red = {r["enterprise_id"]: [x["rule"] for x in r["reasons"]] for r in hazard_store().red_light(now)}
    if p.role == "officer":
        out = [t for t in store().targets(now, red_light=red) if p.sees_area(t["street_id"], t["grid_id"])][:limit]
        for i, t in enumerate(out, 1):
            t["rank"] = i
        return jsonify(out)
    return jsonify(store().targets(now, limit, red_light=red))
