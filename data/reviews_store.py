"""Remote review in SQL (远程点评): a visit's record as a reviewer sees it (the visit,
its body-camera streams, the reviewers' time-coded comments and verdicts), and
the writes of a review, each with its audit entry in the same transaction.

Also the online adjudication of a disputed hazard (线上研判, ``HazardDiscussionStore``):
its discussion thread and the one decision that sets its category, level and advice.

What may be posted is decided by ``hazards.review`` and ``hazards.adjudication``
(pure); who may, by the API (dashboard/api_reviews.py).  docs/review.md.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, insert, select, update

from data import audit
from data.models import Enterprise, HazardDiscussion, HazardEvent, HazardRow, Inspector, Unit, Visit, VisitReview
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


class AlreadyDecided(Exception):
    """The hazard's dispute has its decision: the thread is closed."""


def _post(r, unit_names: dict) -> dict:
    name, name_en = unit_names.get(r.unit_id, (None, None))
    return {"id": r.id, "hazard_id": r.hazard_id, "kind": r.kind, "comment": r.body, "decision": r.decision,
            "actor": r.actor, "role": r.role, "unit_id": r.unit_id, "unit_name": name,
            "unit_name_en": name_en or name, "at_ts": r.at}


class HazardDiscussionStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    def thread(self, hazard_id: int) -> dict | None:
        """``{"hazard": {id, category, level, advice, state}, "posts": [...], "decision": post | None,
        "units": [unit ids that took part]}``, or None when there is no such hazard."""
        with self.engine.connect() as conn:
            h = conn.execute(select(HazardRow.id, HazardRow.category, HazardRow.level, HazardRow.advice,
                                    HazardRow.state, HazardRow.enterprise_id)
                             .where(HazardRow.id == hazard_id)).first()
            if h is None:
                return None
            rows = conn.execute(select(HazardDiscussion).where(HazardDiscussion.hazard_id == hazard_id)
                                .order_by(HazardDiscussion.at, HazardDiscussion.id)).all()
            unit_ids = {r.unit_id for r in rows if r.unit_id}
            names = ({uid: (name, name_en) for uid, name, name_en in conn.execute(
                select(Unit.id, Unit.name, Unit.name_en).where(Unit.id.in_(unit_ids)))} if unit_ids else {})
        posts = [_post(r, names) for r in rows]
        decisions = [p for p in posts if p["kind"] == "decision"]
        return {"hazard": {"id": h.id, "category": h.category, "level": h.level, "advice": h.advice,
                           "state": h.state, "enterprise_id": h.enterprise_id},
                "posts": posts, "decision": decisions[-1] if decisions else None,
                "units": sorted({p["unit_id"] for p in posts if p["unit_id"]})}

    def unit_of(self, inspector_id: str | None) -> str | None:
        if not inspector_id:
            return None
        with self.engine.connect() as conn:
            return conn.execute(select(Inspector.unit_id).where(Inspector.id == inspector_id)).scalar()

    def comment(self, hazard_id: int, text: str, actor: str, role: str, unit_id: str | None,
                now: float | None = None) -> dict:
        """A comment in the thread (and an audit entry ``hazard_discuss``), in one transaction.
        LookupError: no such hazard; AlreadyDecided: the thread is closed."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            self._open(conn, hazard_id)
            pid = conn.execute(insert(HazardDiscussion).values(
                hazard_id=hazard_id, kind="comment", body=text, actor=actor, role=role, unit_id=unit_id, at=now)
                .returning(HazardDiscussion.id)).scalar_one()
            audit.append(conn, actor, "hazard_discuss", f"hazard:{hazard_id}",
                         {"post_id": pid, "comment": text, "unit_id": unit_id}, at=now)
        return self.thread(hazard_id)

    def decide(self, hazard_id: int, fields: dict, actor: str, role: str, unit_id: str | None = None,
               now: float | None = None) -> dict:
        """The final decision: sets the hazard's category, level and advice, closes the
        thread, and records it in the thread, the hazard's history (action ``adjudicate``)
        and the audit chain (``hazard_adjudicate``), in one transaction."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            h = self._open(conn, hazard_id)
            before = {"category": h.category, "level": h.level, "advice": h.advice}
            after = {"category": fields["category"], "level": fields["level"], "advice": fields["advice"]}
            res = conn.execute(update(HazardRow).where(HazardRow.id == hazard_id, HazardRow.version == h.version)
                               .values(**after, updated_at=now, version=h.version + 1))
            if res.rowcount != 1:
                raise AlreadyDecided(f"hazard {hazard_id} changed while deciding; read it again")
            decision = {**after, "before": before}
            pid = conn.execute(insert(HazardDiscussion).values(
                hazard_id=hazard_id, kind="decision", body=fields.get("comment"), decision=decision, actor=actor,
                role=role, unit_id=unit_id, at=now).returning(HazardDiscussion.id)).scalar_one()
            conn.execute(insert(HazardEvent).values(
                hazard_id=hazard_id, from_state=h.state, to_state=h.state, action="adjudicate", actor=actor, at=now,
                note=fields.get("comment"), detail=decision))
            audit.append(conn, actor, "hazard_adjudicate", f"hazard:{hazard_id}",
                         {"post_id": pid, **decision, "comment": fields.get("comment")}, at=now)
        return self.thread(hazard_id)

    @staticmethod
    def _open(conn, hazard_id: int):
        h = conn.execute(select(HazardRow.id, HazardRow.category, HazardRow.level, HazardRow.advice,
                                HazardRow.state, HazardRow.version).where(HazardRow.id == hazard_id)).first()
        if h is None:
            raise LookupError(f"no hazard {hazard_id}")
        decided = conn.execute(select(HazardDiscussion.id).where(HazardDiscussion.hazard_id == hazard_id,
                                                                 HazardDiscussion.kind == "decision")).first()
        if decided is not None:
            raise AlreadyDecided(f"hazard {hazard_id} has its decision; the thread is closed")
        return h
