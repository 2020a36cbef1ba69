"""The geo routes of the HTTP API under /api/v1 (docs/api.md), a second Flask blueprint.

Heatmap, visits, coverage, overdue lists, the coverage-gap layer and the
wall's KPIs.  Every route needs a credential (``dashboard.api.require``) and
admits all four roles.  The reads themselves live in ``data.geo_queries``;
this module only parses parameters, scopes officers to their own area where
a route lists enterprises or visits, and shapes JSON.  Documented in
docs/api.md.

Registered by ``dashboard.server.create_server``::

    server.register_blueprint(api_geo)
"""

from __future__ import annotations

import math
import time

from flask import Blueprint, g, jsonify, request

from dashboard.api import READ_ROLES, ApiError, int_arg, iso, require, time_arg, web
from data import geo_queries
from geo.heat import counts_to_rows

api_geo = Blueprint("api_geo", __name__, url_prefix="/api/v1")

# Resolutions the heatmap serves: 5 (a whole city, ~250 km^2 cells) to 12
# (~300 m^2, the area around one enterprise); see geo/cells.py for 7-9.
HEAT_RES_MIN, HEAT_RES_MAX, HEAT_RES_DEFAULT = 5, 12, 8
# Visits and overdue lists are pages for a screen or an export, not dumps of the table.
VISITS_LIMIT_DEFAULT, VISITS_LIMIT_MAX = 500, 5000
OVERDUE_LIMIT_DEFAULT, OVERDUE_LIMIT_MAX = 200, 5000
# Due nearby: a walk's distance, a month ahead; a list for a phone, not a layer.
NEARBY_RADIUS_DEFAULT, NEARBY_RADIUS_MAX = 500, 5000
NEARBY_DAYS_DEFAULT = 30
NEARBY_LIMIT_DEFAULT, NEARBY_LIMIT_MAX = 20, 200
# Ids are short strings chosen by the importer (E000123, ST01); anything longer is a mistake.
ID_MAX_LEN = 64
# JSON object keys must be strings: the group of enterprises outside every street.
NO_STREET = ""


@api_geo.errorhandler(ApiError)
def _api_error(e: ApiError):
    return jsonify({"error": e.code, "message": e.message}), e.status


def _str_arg(name: str) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > ID_MAX_LEN:
        raise ApiError(400, "bad_parameter", f"{name} is longer than {ID_MAX_LEN} characters")
    return raw


def _choice_arg(name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ApiError(400, "bad_parameter", f"{name} must be one of {', '.join(allowed)}")
    return raw


def _bool_arg(name: str) -> bool:
    raw = (request.args.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ApiError(400, "bad_parameter", f"{name} must be true or false")


def _scope() -> dict:
    """An officer sees only their own grids (or streets), as in the alert routes."""
    p = g.principal
    if p.role != "officer":
        return {}
    return {"grids": list(p.grids)} if p.grids else {"streets": list(p.streets)}


def _street_key(street_id: str | None) -> str:
    return NO_STREET if street_id is None else street_id


def _ctx():
    ctx = web()
    return ctx, ctx.settings.interval_days()


@api_geo.get("/heatmap")
@require(*READ_ROLES)
def heatmap():
    res = int_arg("res", HEAT_RES_DEFAULT, HEAT_RES_MIN, HEAT_RES_MAX)
    kind = _choice_arg("kind", geo_queries.HEAT_KINDS, "pings")
    window = _choice_arg("window", geo_queries.WINDOWS, None)
    source = _choice_arg("source", geo_queries.HEAT_SOURCES, "auto")
    since, until = time_arg("since"), time_arg("until")
    ctx = web()
    try:
        result = geo_queries.heat_result(
            ctx.engine, ctx.redis, ctx.settings.redis_prefix, res=res, kind=kind, since=since, until=until,
            unit=_str_arg("unit"), street=_str_arg("street"), window=window, source=source)
    except geo_queries.HeatQueryError as e:
        raise ApiError(400, "bad_parameter", str(e)) from None
    resp = jsonify(counts_to_rows(result.counts))
    resp.headers["X-Anjian-Heat-Source"] = result.source
    resp.headers["X-Anjian-Heat-Since"] = iso(result.since)
    resp.headers["X-Anjian-Heat-Until"] = iso(result.until)
    return resp


@api_geo.get("/visits")
@require(*READ_ROLES)
def visits():
    since, until = time_arg("since"), time_arg("until")
    if since is not None and until is not None and since >= until:
        raise ApiError(400, "bad_parameter", "since must be before until")
    rows = geo_queries.visits(
        web().engine,
        enterprise_id=_str_arg("enterprise_id"),
        inspector_id=_str_arg("inspector_id"),
        unit_id=_str_arg("unit"),
        since=since,
        until=until,
        duplicates_only=_bool_arg("duplicates"),
        limit=int_arg("limit", VISITS_LIMIT_DEFAULT, 1, VISITS_LIMIT_MAX),
        **_scope(),
    )
    return jsonify(rows)


@api_geo.get("/coverage")
@require(*READ_ROLES)
def coverage():
    ctx, intervals = _ctx()
    now = time.time()
    cov = geo_queries.coverage(ctx.engine, intervals, now)
    return jsonify({
        "overall": round(cov["overall"], 2),
        "by_colour": {c: round(p, 2) for c, p in cov["by_colour"].items()},
        "by_street": {_street_key(s): round(p, 2) for s, p in cov["by_street"].items()},
        "total": cov["total"],
        "within": cov["within"],
        "intervals_d": intervals,
        "as_of": iso(now),
        "as_of_ts": now,
    })


@api_geo.get("/coverage/gaps")
@require(*READ_ROLES)
def coverage_gaps():
    res = int_arg("res", HEAT_RES_DEFAULT, HEAT_RES_MIN, HEAT_RES_MAX)
    ctx, intervals = _ctx()
    cells = geo_queries.gap_cells(ctx.engine, intervals, time.time(), res)
    rows = sorted(cells.items(), key=lambda kv: (-kv[1], kv[0]))
    return jsonify([{"cell": c, "weight": round(w, 3)} for c, w in rows])


@api_geo.get("/overdue")
@require(*READ_ROLES)
def overdue():
    ctx, intervals = _ctx()
    rows, total = geo_queries.overdue_page(
        ctx.engine, intervals, time.time(), street=_str_arg("street"), grid=_str_arg("grid"),
        limit=int_arg("limit", OVERDUE_LIMIT_DEFAULT, 1, OVERDUE_LIMIT_MAX), **_scope())
    resp = jsonify(rows)
    resp.headers["X-Total-Count"] = str(total)
    return resp


@api_geo.get("/overdue/nearby")
@require(*READ_ROLES)
def overdue_nearby():
    """The enterprises near a point that are overdue or soon due (the enterprise page's
    "due nearby", for a phone at its own position): most overdue first, then nearest."""
    lat, lon = _float_arg("lat", -90.0, 90.0), _float_arg("lon", -180.0, 180.0)
    ctx, intervals = _ctx()
    rows, total = geo_queries.due_nearby(
        ctx.engine, lat, lon, intervals, time.time(),
        radius_m=int_arg("radius_m", NEARBY_RADIUS_DEFAULT, 1, NEARBY_RADIUS_MAX),
        within_days=int_arg("days", NEARBY_DAYS_DEFAULT, 0, 366),
        limit=int_arg("limit", NEARBY_LIMIT_DEFAULT, 1, NEARBY_LIMIT_MAX), exclude=_str_arg("exclude"), **_scope())
    for r in rows:
        r["due_at"] = iso(r["due_ts"])
    resp = jsonify(rows)
    resp.headers["X-Total-Count"] = str(total)
    return resp


def _float_arg(name: str, lo: float, hi: float) -> float:
    """A required number in [lo, hi]."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        raise ApiError(400, "bad_parameter", f"{name} is required")
    try:
        v = float(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"{name} must be a number") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ApiError(400, "bad_parameter", f"{name} must be between {lo:g} and {hi:g}")
    return v


@api_geo.get("/overdue/counts")
@require(*READ_ROLES)
def overdue_counts():
    ctx, intervals = _ctx()
    counts = geo_queries.overdue_counts(ctx.engine, intervals, time.time())
    return jsonify({_street_key(s): c for s, c in counts.items()})


@api_geo.get("/kpis")
@require(*READ_ROLES)
def kpis():
    ctx, intervals = _ctx()
    k = geo_queries.kpis(ctx.engine, ctx.redis, ctx.settings.redis_prefix, intervals, time.time())
    k["coverage_pct"] = round(k["coverage_pct"], 2)
    return jsonify(k)
