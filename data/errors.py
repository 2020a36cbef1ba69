"""The errors of the services under ``data/`` that callers above it handle by name.

``INFRA_ERRORS``: an outside service (Redis, the database) is away, as opposed to
"this message is bad". The ingest pipeline and the alert engine keep a batch or an
entry to try again when they see one; they catch it from here, so that no module
outside ``data/`` imports redis or sqlalchemy (docs/architecture.md, "Packages").
"""

from __future__ import annotations

import redis
import sqlalchemy.exc

INFRA_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError,
                sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
