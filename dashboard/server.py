"""The Flask server behind the API and the Dash pages."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, g

from dashboard.api import api, metrics_route, web
from dashboard.api_geo import api_geo
from dashboard.context import WebContext

log = logging.getLogger(__name__)


def create_server(ctx: WebContext) -> Flask:
    server = Flask("anjian")
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
    )
    server.json.ensure_ascii = False
    server.extensions["anjian"] = ctx
    server.register_blueprint(api)
    server.register_blueprint(api_geo)
    server.add_url_rule("/metrics", "metrics", metrics_route)
    server.after_request(_callback_timing)
    return server


def _callback_timing(response):
    """A screen callback's own server time: a ``Server-Timing`` header (browsers and the
    screens bench read it) and the ``anjian_web_callback_seconds`` histogram of /metrics."""
    timing = g.pop("anjian_callback", None)
    if timing is None:
        return response
    name, seconds = timing
    response.headers["Server-Timing"] = f'cb;desc="{name}";dur={seconds * 1000:.1f}'
    try:
        web().live.observe("web_callback", name, seconds)
    except Exception:  # noqa: BLE001 - a metrics write must never fail the screen's answer
        log.warning("could not record the time of callback %s", name, exc_info=True)
    return response
