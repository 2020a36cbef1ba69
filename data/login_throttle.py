"""Failed logins per (username, address), counted in Redis, for the login form
(``dashboard/auth_views.py``: ``login_max_failures`` failures lock the pair out for
``login_lockout_s``)."""

from __future__ import annotations

import hashlib


class LoginThrottle:
    """Failed-login counter per (username, address) in Redis.

    The key holds a hash, not the username, so Redis holds no list of names
    people tried.  The counter expires ``lockout_s`` after the first failure
    of a run, so a locked pair is free again after at most that long.
    """

    def __init__(self, redis_client, namespace: str, max_failures: int, lockout_s: int):
        self.redis, self.ns = redis_client, namespace
        self.max_failures, self.lockout_s = max(1, int(max_failures)), max(1, int(lockout_s))

    def _key(self, username: str, address: str) -> str:
        h = hashlib.sha256(f"{username.strip().lower()}\x00{address}".encode()).hexdigest()[:32]
        return f"{self.ns}:login:fail:{h}"

    def retry_after_s(self, username: str, address: str) -> int:
        """Seconds until this pair may try again; 0 when it may try now."""
        key = self._key(username, address)
        n = self.redis.get(key)
        if n is None or int(n) < self.max_failures:
            return 0
        ttl = self.redis.ttl(key)
        return max(1, int(ttl)) if ttl and ttl > 0 else self.lockout_s

    def fail(self, username: str, address: str) -> int:
        key = self._key(username, address)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.lockout_s, nx=True)
        n = pipe.execute()[0]
        return int(n)

    def mark_refusal_audited(self, username: str, address: str) -> bool:
        """True the first time in a lockout (the refusal should be audited)."""
        key = self._key(username, address) + ":audited"
        return bool(self.redis.set(key, "1", nx=True, ex=self.lockout_s))

    def reset(self, username: str, address: str) -> None:
        key = self._key(username, address)
        self.redis.delete(key, key + ":audited")
