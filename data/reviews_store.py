"""Remote review in SQL (远程点评): a visit's record as a reviewer sees it (the visit,
its body-camera streams, the reviewers' time-coded comments and verdicts), and
the writes of a review, each with its audit entry in the same transaction.

What may be posted is decided by ``hazards.review`` (pure); who may, by the API
(dashboard/api_reviews.py).  docs/review.md.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, insert, select

from data import audit
from data.models import Enterprise, Inspector, Unit, Visit, VisitReview
from data.streams import StreamStore
from hazards.review import current_verdict


def _entry(r) -> dict:
    return {"id": r.id, "visit_id": r.visit_id, "kind": r.kind, "stream_id": r.stream_id, "at_s": r.at_s,
            "comment": r.comment, "verdict": r.verdict, "reasons": r.reasons, "actor": r.actor, "role": r.role,
            "created_ts": r.created_at}


class ReviewStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.streams = StreamStore(engine)

    def visit(self, visit_id: int) -> dict | None:
        """The visit with its enterprise's area and names, or None."""
        with self.engine.connect() as conn:
            r = conn.execute(
                select(Visit.id, Visit.enterprise_id, Visit.inspector_id, Visit.unit_id, Visit.start_ts,
                       Visit.end_ts, Visit.ended, Enterprise.name.label("enterprise_name"), Enterprise.street_id,
                       Enterprise.grid_id, Inspector.name.label("inspector_name"), Unit.name.label("unit_name"))
                .join(Enterprise, Enterprise.id == Visit.enterprise_id)
                .outerjoin(Inspector, Inspector.id == Visit.inspector_id)
                .outerjoin(Unit, Unit.id == Visit.unit_id)
                .where(Visit.id == visit_id)).first()
        if r is None:
            return None
        return {"id": r.id, "enterprise_id": r.enterprise_id, "enterprise_name": r.enterprise_name,
                "street_id": r.street_id, "grid_id": r.grid_id, "inspector_id": r.inspector_id,
                "inspector_name": r.inspector_name, "unit_id": r.unit_id, "unit_name": r.unit_name,
                "start_ts": r.start_ts, "end_ts": r.end_ts, "ended": bool(r.ended)}

    def entries(self, visit_id: int) -> list[dict]:
        """The visit's comments and verdicts, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(VisitReview).where(VisitReview.visit_id == visit_id)
                                .order_by(VisitReview.created_at, VisitReview.id)).all()
        return [_entry(r) for r in rows]

    def record(self, visit_id: int) -> dict | None:
        """The visit's review record: the visit, its streams, comments, verdicts and current verdict."""
        v = self.visit(visit_id)
        if v is None:
            return None
        entries = self.entries(visit_id)
        return {"visit": v, "streams": self.streams.for_visit(visit_id),
                "comments": [e for e in entries if e["kind"] == "comment"],
                "verdicts": [e for e in entries if e["kind"] == "verdict"],
                "verdict": current_verdict(entries)}

    def add(self, visit_id: int, kind: str, fields: dict, actor: str, role: str, now: float | None = None) -> dict:
        """Store one comment or verdict (``hazards.review.check_review``'s fields) and its
        audit entry (``review_comment`` / ``review_verdict``, target ``visit:{id}``) in one
        transaction.  LookupError when the visit does not exist."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            if conn.execute(select(Visit.id).where(Visit.id == visit_id)).scalar() is None:
                raise LookupError(f"no visit {visit_id}")
            values = {"visit_id": visit_id, "kind": kind, "stream_id": fields.get("stream_id"),
                      "at_s": fields.get("at_s"), "comment": fields.get("comment"), "verdict": fields.get("verdict"),
                      "reasons": fields.get("reasons"), "actor": actor, "role": role, "created_at": now}
            rid = conn.execute(insert(VisitReview).values(**values).returning(VisitReview.id)).scalar_one()
            detail = {"review_id": rid, **{k: values[k] for k in ("stream_id", "at_s", "comment", "verdict",
                                                                  "reasons") if values[k] is not None}}
            audit.append(conn, actor, f"review_{kind}", f"visit:{visit_id}", detail, at=now)
        return _entry(VisitReview(id=rid, **values))
