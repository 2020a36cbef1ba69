"""The audit log in SQL: append-only, hash-chained (执法全过程记录).

The chain arithmetic (canonical JSON, hashes, verification) is pure logic in
``alerts/audit.py``; this module stores and reads it.  ``prev_hash`` is unique,
so two writers that race to append cannot fork the chain: the loser gets an
IntegrityError and appends again on top of the winner.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from alerts.audit import GENESIS, canonical_json, entry_hash, verify_chain
from data.models import AuditEntry

# Concurrent appenders retry this often before giving up (each retry is one
# round trip; more than a handful of simultaneous writers is not expected).
APPEND_RETRIES = 20


def _append_once(conn: Connection, actor: str, action: str, target: str | None, detail_json: str, at: float) -> str:
    last = conn.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).scalar()
    prev = last or GENESIS
    h = entry_hash(prev, at, actor, action, target, detail_json)
    conn.execute(insert(AuditEntry).values(at=at, actor=actor, action=action, target=target,
                                           detail=detail_json, prev_hash=prev, hash=h))
    return h


def append(engine_or_conn: Engine | Connection, actor: str, action: str, target: str | None = None,
           detail: dict[str, Any] | None = None, at: float | None = None) -> str:
    """Append one entry; returns its hash.

    Given a Connection, the entry joins that transaction (so the audited change
    and its entry commit or roll back together); it then cannot retry by itself:
    a lost race raises IntegrityError, and the caller's transaction retries as a
    whole (no savepoint: two round trips fewer on an alarm's way, which under a
    shortage of CPU each wait for the database's process, bench/bench_alarm_sql.py).
    """
    at = time.time() if at is None else at
    detail_json = canonical_json(detail or {})
    if isinstance(engine_or_conn, Connection):
        return _append_once(engine_or_conn, actor, action, target, detail_json, at)
    for attempt in range(APPEND_RETRIES):
        try:
            with engine_or_conn.begin() as conn:
                return _append_once(conn, actor, action, target, detail_json, at)
        except IntegrityError:
            if attempt == APPEND_RETRIES - 1:
                raise
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


def append_many(conn: Connection, items: list[tuple[str, str, str | None, dict[str, Any] | None, float]]) -> str | None:
    """Append several entries ``(actor, action, target, detail, at)`` in ``conn``'s
    transaction, in order, chained on the current head: one read of the head and
    one insert of all of them, where ``append`` costs two round trips each
    (thousands of escalations due at once: bench/bench_escalation.py).
    Returns the new head's hash (None when ``items`` is empty).  A concurrent
    appender that wins the race makes this insert fail on ``prev_hash``'s unique
    index, and the caller's transaction retries as a whole."""
    if not items:
        return None
    prev = conn.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).scalar() or GENESIS
    rows = []
    for actor, action, target, detail, at in items:
        detail_json = canonical_json(detail or {})
        h = entry_hash(prev, at, actor, action, target, detail_json)
        rows.append({"at": at, "actor": actor, "action": action, "target": target, "detail": detail_json,
                     "prev_hash": prev, "hash": h})
        prev = h
    conn.execute(insert(AuditEntry), rows)
    return prev


def entries(engine: Engine, limit: int | None = None, action: str | None = None):
    q = select(AuditEntry.__table__).order_by(AuditEntry.id)
    if action:
        q = q.where(AuditEntry.action == action)
    if limit:
        q = q.limit(limit)
    with engine.connect() as conn:
        return conn.execute(q).all()


def verify(engine: Engine) -> int | None:
    """Id of the first broken entry, or None when the whole chain holds."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.id, AuditEntry.at, AuditEntry.actor, AuditEntry.action, AuditEntry.target,
                   AuditEntry.detail, AuditEntry.prev_hash, AuditEntry.hash).order_by(AuditEntry.id)
        )
        return verify_chain(tuple(r) for r in rows)


def head(engine: Engine) -> tuple[str | None, int]:
    """(hash of the newest entry, number of entries) of the chain as it is now."""
    from sqlalchemy import func

    with engine.connect() as conn:
        h = conn.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)).scalar()
        n = conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    return h, int(n)


def find_anchor(engine: Engine, anchor_hash: str) -> int | None:
    """The position (1-based: how many entries up to and including it) of the entry whose
    hash is ``anchor_hash``, or None when the chain no longer holds it.

    A bulletin publishes its chain head (hash and count); as long as ``verify``
    holds, every entry up to a head still found here is unchanged, and a chain
    cut back below a published head (its newest entries deleted) no longer
    contains that head, which ``verify`` alone cannot see.
    """
    from sqlalchemy import func

    with engine.connect() as conn:
        entry_id = conn.execute(select(AuditEntry.id).where(AuditEntry.hash == anchor_hash)).scalar()
        if entry_id is None:
            return None
        return int(conn.execute(select(func.count()).select_from(AuditEntry)
                                .where(AuditEntry.id <= entry_id)).scalar_one())
