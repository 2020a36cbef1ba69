"""The Flask server behind the API and the Dash pages."""

from __future__ import annotations

import gzip
import logging
import os
import secrets

from dash.exceptions import DependencyException
from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound

from dashboard import astlock
from dashboard.api import api, metrics_route, web
from dashboard.api_geo import api_geo
from dashboard.api_plans import api_plans
from dashboard.api_reports import api_reports
from dashboard.api_hazards import api_hazards
from dashboard.api_reviews import api_reviews
from dashboard.api_agencies import api_agencies
from dashboard.context import WebContext
from dashboard.discussion_view import install_discussion_view
from dashboard.hazard_views import install_hazard_views

log = logging.getLogger(__name__)

# The largest request body: a plan file through the plans page's upload (10 MB,
# base64 in a Dash callback: about 14 MB) or a few photos in one multipart POST.
# Werkzeug answers 413 past it, before anything reads the body.
MAX_BODY_BYTES = 32 * 1024 * 1024
# The largest JSON body of an API route (a week's plan of a unit is tens of KB).
MAX_API_JSON_BYTES = 1024 * 1024
# The error codes of API answers that Werkzeug raises (docs/api.md, "Errors").
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type", 429: "too_many_requests"}


class _JSONProvider(DefaultJSONProvider):
    """Flask's JSON, with a body nested deeper than the parser's recursion limit
    refused as bad JSON (``request.get_json`` answers 400; ``get_json(silent=True)``
    gives None) instead of a RecursionError and a 500.  Every API route and Dash's
    callbacks read their bodies through it."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


def create_server(ctx: WebContext) -> Flask:
    astlock.install()  # werkzeug parses each URL rule while background threads may parse their tracebacks
    server = Flask("anjian")
    server.json = _JSONProvider(server)
    key = ctx.settings.secret_key
    if not key:
        log.warning("ANJIAN_SECRET_KEY is not set: using a random key, so logins end when this process restarts")
        key = secrets.token_hex(32)
    server.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="anjian_session",
        JSON_AS_ASCII=False,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
    )
    server.json.ensure_ascii = False
    server.extensions["anjian"] = ctx
    server.register_blueprint(api)
    server.register_blueprint(api_geo)
    server.register_blueprint(api_plans)
    server.register_blueprint(api_reports)
    server.register_blueprint(api_hazards)
    server.register_blueprint(api_reviews)
    server.register_blueprint(api_agencies)
    install_hazard_views(server)
    install_discussion_view(server)
    server.add_url_rule("/metrics", "metrics", metrics_route)
    server.before_request(_api_json_size)
    server.register_error_handler(HTTPException, _http_error)
    server.register_error_handler(InternalServerError, _internal_error)
    server.register_error_handler(DependencyException, _no_such_asset)
    server.after_request(_callback_timing)
    server.after_request(_worker_header)
    server.after_request(_compress)
    return server


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _api_json_size():
    """An API route's JSON body over MAX_API_JSON_BYTES is refused before it is parsed."""
    if _is_api() and request.mimetype == "application/json" and (request.content_length or 0) > MAX_API_JSON_BYTES:
        return jsonify({"error": "too_large", "message": f"a JSON body is at most {MAX_API_JSON_BYTES} bytes"}), 413
    return None


def _http_error(e: HTTPException):
    """Under /api/ every error is JSON, ``{"error": code, "message": ...}``, as the
    routes' own are (docs/api.md); elsewhere Werkzeug's page."""
    if not _is_api() or e.code is None:
        return e
    return jsonify({"error": _HTTP_CODES.get(e.code, "http_error"), "message": e.description}), e.code


def _internal_error(e: InternalServerError):
    """Flask has logged the traceback; an API caller gets JSON that names no internals."""
    if not _is_api():
        return e
    return jsonify({"error": "internal_error", "message": "the server failed on this request; it is logged"}), 500


def _no_such_asset(e: Exception):
    """A request for a script Dash does not serve (``/_dash-component-suites/...``): 404,
    one log line.  Dash raises it as an exception, which Flask answered with a 500 and a
    traceback naming every registered script, for anyone, on every request."""
    log.info("no such Dash asset: %s", request.path[:200])
    return NotFound().get_response()


# What is worth compressing: the screens' callback answers (JSON, mostly
# GeoJSON coordinates and repeated keys, about 5-8x smaller), the API's JSON,
# Dash's scripts and the pages.  Below this size the header costs more than it
# saves.
COMPRESS_MIN_BYTES = 1024
COMPRESS_TYPES = ("application/json", "application/javascript", "text/javascript", "text/css", "text/html",
                  "text/plain", "image/svg+xml")
# Level 5: most of level 9's gain on JSON at a fraction of its time.  Large
# bodies (Dash's bundled scripts, served once per page load) at level 1.
COMPRESS_LEVEL, COMPRESS_LEVEL_LARGE, COMPRESS_LARGE_BYTES = 5, 1, 512 * 1024


def _compress(response):
    """gzip an answer when the client accepts it (browsers do).  A wall polls
    every second for hours; its bytes on the wire are the compressed ones.
    Streams (the server-sent events of /api/v1/events) and files sent as
    they are read are left alone: gzip would hold their bytes back."""
    if (response.status_code != 200 or response.is_streamed or response.direct_passthrough
            or "Content-Encoding" in response.headers
            or response.mimetype not in COMPRESS_TYPES
            or "gzip" not in request.headers.get("Accept-Encoding", "")):
        return response
    body = response.get_data()
    if len(body) < COMPRESS_MIN_BYTES:
        return response
    level = COMPRESS_LEVEL if len(body) < COMPRESS_LARGE_BYTES else COMPRESS_LEVEL_LARGE
    response.set_data(gzip.compress(body, compresslevel=level, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    # The ETag is left as it is: Dash answers a revalidation of its scripts with
    # 304 only when If-None-Match equals the tag it computed itself.
    return response


def _worker_header(response):
    """Which web process answered (``app.py web`` runs several behind one address)."""
    response.headers["X-Anjian-Worker"] = str(os.getpid())
    return response


def _callback_timing(response):
    """A screen callback's own server time: a ``Server-Timing`` header (browsers and the
    screens bench read it) and the ``anjian_web_callback_seconds`` histogram of /metrics."""
    timing = g.pop("anjian_callback", None)
    if timing is None:
        return response
    name, seconds = timing
    response.headers["Server-Timing"] = f'cb;desc="{name}";dur={seconds * 1000:.1f}'
    try:
        web().metrics.observe_callback(name, seconds)
    except Exception:  # noqa: BLE001 - a metrics write must never fail the screen's answer
        log.warning("could not record the time of callback %s", name, exc_info=True)
    return response
