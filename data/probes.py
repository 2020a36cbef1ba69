"""Health probes of the stores, for ``GET /api/v1/health`` (dashboard/context.py).

Each answers ``"ok"`` or ``"unreachable: ..."`` and never raises: a probe that
fails is the answer, not an error.
"""

from __future__ import annotations

import redis
from sqlalchemy import text


def redis_status(client) -> str:
    """``"ok"`` when Redis answers PING, else ``"unreachable: <reason>"``."""
    try:
        client.ping()
        return "ok"
    except redis.RedisError as e:
        return f"unreachable: {e}"


def database_status(engine) -> str:
    """``"ok"`` when the database answers ``SELECT 1``, else ``"unreachable: <driver error type>"``."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return "ok"
    except Exception as e:  # noqa: BLE001 - any driver error means "not ok"
        return f"unreachable: {type(e).__name__}"


def database_url(engine) -> str:
    """The engine's URL with the password hidden."""
    return engine.url.render_as_string(hide_password=True)
