"""The audit log's hash chain (执法全过程记录): append-only, tamper-evident.

Each entry carries the hash of the one before it (``prev_hash``; the first
carries ``GENESIS``) and its own hash over its content and that link::

    hash = sha256( canonical_json([prev_hash, at_text, actor, action, target, detail_text]) )

* ``at_text``: ``at`` (epoch seconds) as fixed-point text with 6 decimals,
  ``format(at, ".6f")``: microseconds, no exponent, the same for 1718000000
  and 1718000000.0.  A float64 round-trips exactly through SQLite REAL and
  PostgreSQL double precision, so the text is the same after a read; a column
  of lower precision would break the chain (keep ``at`` a 64-bit float).
* ``detail_text``: the detail as stored, i.e. ``canonical_json(detail)``
  (None for no detail).  Hashing the stored text, not a re-serialisation of it,
  means verification needs no JSON parser to agree with the writer's.
* ``canonical_json``: sorted keys, no whitespace, UTF-8 (``ensure_ascii=False``,
  so 张三 is hashed as the UTF-8 bytes of 张三), no NaN/Infinity.
* The JSON array keeps fields apart: no separator inside a name can make two
  different entries hash alike.

An edit of any field breaks that entry's hash; recomputing the hash breaks
the next entry's ``prev_hash``; deleting an entry breaks its successor's
``prev_hash``; swapping two breaks the first of them.  Deleting the newest
entries leaves a shorter valid chain: only a copy of the head hash kept
elsewhere (a report, a log line) shows that.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from alerts.model import TransitionRecord

GENESIS = "0" * 64


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, non-ASCII kept as is; NaN and Infinity refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def at_text(at: float) -> str:
    """How ``at`` enters the hash: fixed-point, 6 decimals."""
    at = float(at)
    if not math.isfinite(at):
        raise ValueError(f"at must be finite, not {at!r}")
    return format(at, ".6f")


def entry_hash(
    prev_hash: str, at: float, actor: str, action: str, target: str | None, detail: str | Mapping | None
) -> str:
    """sha256 hex of one entry.  ``detail`` is the stored canonical JSON text,
    or a mapping (canonicalised here), or None."""
    if detail is not None and not isinstance(detail, str):
        detail = canonical_json(detail)
    payload = canonical_json([prev_hash, at_text(at), actor, action, target, detail])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def chain_entry(
    prev_hash: str, at: float, actor: str, action: str, target: str | None, detail: Mapping | None
) -> dict[str, Any]:
    """The column values of the next entry: detail as canonical JSON, prev_hash, hash."""
    detail_json = None if detail is None else canonical_json(detail)
    return {
        "at": float(at),
        "actor": actor,
        "action": action,
        "target": target,
        "detail": detail_json,
        "prev_hash": prev_hash,
        "hash": entry_hash(prev_hash, at, actor, action, target, detail_json),
    }


def verify_chain(entries: Iterable[tuple], *, prev_hash: str = GENESIS) -> int | None:
    """Id of the first broken entry, or None when the chain holds.

    ``entries``: ``(id, at, actor, action, target, detail_json, prev_hash, hash)``
    in id order (``ORDER BY id``), streamed.  An entry is broken when its
    ``prev_hash`` is not the previous entry's hash (``prev_hash`` argument for
    the first: GENESIS, or a checkpoint's hash to verify a tail), when its
    stored hash is not the hash of its content, or when its id does not
    increase.  Gaps in the ids are not by themselves breaks (a PostgreSQL
    sequence skips numbers on a rolled-back insert); a deleted entry shows as
    the broken link of the entry after it.
    """
    expected_prev = prev_hash
    last_id = None
    for entry_id, at, actor, action, target, detail_json, stored_prev, stored_hash in entries:
        if last_id is not None and not entry_id > last_id:
            return entry_id
        if stored_prev != expected_prev:
            return entry_id
        try:
            computed = entry_hash(stored_prev, at, actor, action, target, detail_json)
        except (TypeError, ValueError):
            return entry_id
        if computed != stored_hash:
            return entry_id
        expected_prev, last_id = stored_hash, entry_id
    return None


def alert_audit(alert_id: int | str | None, record: TransitionRecord) -> tuple[str, str, dict[str, Any]]:
    """``(action, target, detail)`` of the audit entry for an alert transition:
    ``("alert.ack", "alert:42", {"from": "open", "to": "acknowledged", ...})``.
    """
    return f"alert.{record.action}", f"alert:{alert_id}", record.detail()
