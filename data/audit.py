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
    and its entry commit or roll back together); it then cannot retry by itself.
    """
    at = time.time() if at is None else at
    detail_json = canonical_json(detail or {})
    if isinstance(engine_or_conn, Connection):
        with engine_or_conn.begin_nested():
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
