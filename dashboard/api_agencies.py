"""The agencies routes of the HTTP API under /api/v1 (docs/api.md, "Agencies"): third-party
safety-service agencies (units of stored kind ``third_party``), their service contracts, the
bureau's complaints, and the monthly rating with every part (docs/agencies.md).

Reads for the wall, dispatchers and admins; writes for dispatchers and admins only, checked
on the server, each audited (``data.audit``) in the transaction that makes it.  A malformed
body answers 400 with every error as ``errors`` [{field, reason}].
"""

from __future__ import annotations

import time

from flask import Blueprint, g, jsonify, request

from dashboard.api import OPS_ROLES, ApiError, per_app, require, web
from dashboard.api_plans import store as plans_store
from data.agencies_store import AgenciesStore, FieldErrors
from geo.timefmt import iso
from plans.agencies import month_of, parse_month
from plans.model import local_date

api_agencies = Blueprint("api_agencies", __name__, url_prefix="/api/v1")

AGENCY_READ_ROLES = ("wall", "dispatcher", "admin")


@api_agencies.errorhandler(ApiError)
def _api_error(e: ApiError):
    return jsonify({"error": e.code, "message": e.message}), e.status


def store() -> AgenciesStore:
    return per_app("anjian_agencies", lambda: AgenciesStore(web().engine, plans_store()))


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def _bad(errors: list[dict]):
    return jsonify({"error": "bad_request", "message": "the body has errors", "errors": errors}), 400


def _not_found(agency_id: str):
    return jsonify({"error": "not_found", "message": f"no agency {agency_id}"}), 404


def _contract(c: dict) -> dict:
    return {**c, "created_at": iso(c["created_at"])}


@api_agencies.get("/agencies")
@require(*AGENCY_READ_ROLES)
def agencies_list():
    return jsonify({"agencies": store().agencies(local_date(time.time()))})


@api_agencies.get("/agencies/<agency_id>/contracts")
@require(*AGENCY_READ_ROLES)
def contracts_list(agency_id: str):
    try:
        return jsonify({"agency_id": agency_id, "contracts": [_contract(c) for c in store().contracts(agency_id)]})
    except LookupError:
        return _not_found(agency_id)


@api_agencies.post("/agencies/<agency_id>/contracts")
@require(*OPS_ROLES)
def contracts_create(agency_id: str):
    body = _body()
    try:
        c = store().add_contract(agency_id, body, g.principal.username, time.time())
    except LookupError:
        return _not_found(agency_id)
    except FieldErrors as e:
        return _bad(e.errors)
    return jsonify(_contract(c)), 201


@api_agencies.post("/agencies/<agency_id>/complaints")
@require(*OPS_ROLES)
def complaints_create(agency_id: str):
    body = _body()
    try:
        c = store().add_complaint(agency_id, body, g.principal.username, time.time())
    except LookupError:
        return _not_found(agency_id)
    except FieldErrors as e:
        return _bad(e.errors)
    return jsonify({**c, "recorded_at": iso(c["recorded_at"])}), 201


@api_agencies.get("/agencies/<agency_id>/complaints")
@require(*AGENCY_READ_ROLES)
def complaints_list(agency_id: str):
    try:
        rows = store().complaints(agency_id)
    except LookupError:
        return _not_found(agency_id)
    return jsonify({"agency_id": agency_id, "complaints": [{**c, "recorded_at": iso(c["recorded_at"])} for c in rows]})


@api_agencies.get("/agencies/ratings")
@require(*AGENCY_READ_ROLES)
def ratings():
    now = time.time()
    raw = request.args.get("month") or month_of(local_date(now))
    try:
        month = parse_month(raw)
    except ValueError as e:  # a query parameter, as int_arg and time_arg answer theirs
        raise ApiError(400, "bad_parameter", f"month must be a month YYYY-MM: {e}") from None
    return jsonify({"month": month.key, "agencies": store().ratings(month, now)})
