"""The errors of the services under ``data/`` that callers above it handle by name.

``INFRA_ERRORS``: an outside service (Redis, the database) is away, as opposed to
"this message is bad". The ingest pipeline and the alert engine keep a batch or an
entry to try again when they see one; they catch it from here, so that no module
outside ``data/`` imports redis or sqlalchemy (docs/architecture.md, "Packages").
"""

from __future__ import annotations

import redis
import sqlalchemy.exc

# A Redis Cluster mid failover answers CLUSTERDOWN, TRYAGAIN, MOVED (to a node the
# client cannot reach yet) or READONLY (a replica not yet promoted), or has no
# node for a slot for a moment: all of them pass once the replica has taken over.
_CLUSTER_ERRORS = (redis.exceptions.ClusterError, redis.exceptions.TryAgainError, redis.exceptions.MovedError,
                   redis.exceptions.ReadOnlyError, redis.exceptions.SlotNotCoveredError,
                   redis.exceptions.RedisClusterUnreachableError)
INFRA_ERRORS = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, *_CLUSTER_ERRORS,
                sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
