"""Blocking Redis reads (XREAD/XREADGROUP/BLPOP ``block=``) that never outlast the socket.

redis-py reads a blocking command's reply under the connection's socket
timeout.  Its default is 5 s (``redis._defaults.DEFAULT_SOCKET_TIMEOUT``, used
by ``Redis()`` and ``Redis.from_url()`` alike, and not written into the pool's
``connection_kwargs`` unless given), so an ``XREAD ... BLOCK 5000`` on an idle
stream ends with ``TimeoutError: Timeout reading from socket`` and a dropped
connection instead of an empty reply.  Every blocking reader asks
``block_ms`` for its block time: at most half the client's socket timeout.
"""

from __future__ import annotations

import redis

# redis-py's own default, for a connection class that cannot be inspected.
REDIS_PY_DEFAULT_SOCKET_TIMEOUT_S = 5.0


def socket_timeout_s(r: redis.Redis) -> float | None:
    """The socket timeout the client's connections really use (None: no timeout)."""
    if hasattr(r, "get_default_node"):  # a RedisCluster: every node's client is made alike
        r = r.get_default_node().redis_connection
    pool = r.connection_pool
    kwargs = pool.connection_kwargs
    if "socket_timeout" in kwargs:
        return kwargs["socket_timeout"]
    try:
        # A connection object only: it connects on first use, not here.
        return pool.connection_class(**kwargs).socket_timeout
    except Exception:  # noqa: BLE001 - an unusual pool: assume redis-py's default
        return REDIS_PY_DEFAULT_SOCKET_TIMEOUT_S


def block_ms(r: redis.Redis, wanted_ms: int) -> int:
    """``wanted_ms``, shortened to half the socket timeout (never 0: BLOCK 0 waits forever)."""
    timeout = socket_timeout_s(r)
    if not timeout:
        return int(wanted_ms)
    return max(1, min(int(wanted_ms), int(timeout * 500)))
