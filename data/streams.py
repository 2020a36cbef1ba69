"""Body-camera streams in SQL (远程点评): what ingest's StoreStreams step writes and
the review page reads.

A device announces its live stream on ``PREFIX/v1/inspectors/{id}/stream``
(docs/mqtt.md) with ``state: live`` and its HLS (and WHEP) address, and again with
``state: ended`` and the recording's address.  One row per stream: ``live``
opens it, ``ended`` closes it (``ended_at``, ``recording_url``).  Each is linked
to the inspector's visit at that time (``visit_id``): the visit open at the
announcement, or, when the visit was confirmed only later (the geo engine
confirms a stay after its dwell time), the visit the stream overlaps when it
ends.  A reader also finds a stream not yet linked by its inspector and time
(``for_visit``).

Applying a notice twice (a QoS 1 redelivery, a retained ``live`` seen again at
a worker's resubscribe) changes nothing the second time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Engine, and_, or_, select, update

from data.models import StreamRow, Visit
from geo.types import StreamNotice

# An open visit's end_ts is its newest fix: a stream announced this long after it
# still belongs to it (a phone that stopped reporting for a few minutes).
OPEN_VISIT_SLACK_S = 900.0

_COLUMNS = (StreamRow.id, StreamRow.inspector_id, StreamRow.visit_id, StreamRow.state, StreamRow.hls_url,
            StreamRow.whep_url, StreamRow.recording_url, StreamRow.started_at, StreamRow.ended_at)


def _json(r) -> dict:
    return {"id": r.id, "inspector_id": r.inspector_id, "visit_id": r.visit_id, "state": r.state,
            "hls_url": r.hls_url, "whep_url": r.whep_url, "recording_url": r.recording_url,
            "started_ts": r.started_at, "ended_ts": r.ended_at}


class StreamStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # --- writes (ingest) ---------------------------------------------------------------

    def apply(self, notices: Sequence[StreamNotice], now: float | None = None) -> None:
        """Store ``notices`` in one transaction, in time order."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            for n in sorted(notices, key=lambda n: n.ts):
                if n.state == "live":
                    self._live(conn, n, now)
                else:
                    self._ended(conn, n, now)

    def _live(self, conn, n: StreamNotice, now: float) -> None:
        same = conn.execute(select(StreamRow.id, StreamRow.ended_at, StreamRow.started_at, StreamRow.visit_id)
                            .where(StreamRow.inspector_id == n.inspector_id, StreamRow.hls_url == n.hls_url)
                            .order_by(StreamRow.started_at.desc()).limit(1)).first()
        if same is not None and (same.ended_at is None or same.ended_at >= n.ts):
            # Announced again while live (or a late copy of a stream since ended).
            values = {"updated_at": now}
            if n.whep_url:
                values["whep_url"] = n.whep_url
            if same.visit_id is None and same.ended_at is None:
                values["visit_id"] = _visit_at(conn, n.inspector_id, n.ts)
            conn.execute(update(StreamRow).where(StreamRow.id == same.id).values(**values))
            return
        conn.execute(StreamRow.__table__.insert().values(
            inspector_id=n.inspector_id, visit_id=_visit_at(conn, n.inspector_id, n.ts), state="live",
            hls_url=n.hls_url, whep_url=n.whep_url, started_at=n.ts, updated_at=now, msg_id=n.msg_id))

    def _ended(self, conn, n: StreamNotice, now: float) -> None:
        q = select(StreamRow.id, StreamRow.started_at, StreamRow.visit_id, StreamRow.ended_at,
                   StreamRow.recording_url).where(StreamRow.inspector_id == n.inspector_id,
                                                  StreamRow.started_at <= n.ts)
        if n.hls_url:
            q = q.where(StreamRow.hls_url == n.hls_url)  # that stream, open or already ended
        else:
            q = q.where(or_(StreamRow.ended_at.is_(None), StreamRow.ended_at == n.ts))  # the open one
        row = conn.execute(q.order_by(StreamRow.started_at.desc()).limit(1)).first()
        if row is None:
            # Ended without a live announcement seen here: keep the recording all the same.
            conn.execute(StreamRow.__table__.insert().values(
                inspector_id=n.inspector_id, visit_id=_visit_overlapping(conn, n.inspector_id, n.ts, n.ts),
                state="ended", hls_url=n.hls_url, whep_url=n.whep_url, recording_url=n.recording_url,
                started_at=n.ts, ended_at=n.ts, updated_at=now, msg_id=n.msg_id))
            return
        if row.ended_at is not None:
            if n.recording_url and not row.recording_url:  # a second notice that adds the recording
                conn.execute(update(StreamRow).where(StreamRow.id == row.id)
                             .values(recording_url=n.recording_url, updated_at=now))
            return  # ended already: a redelivery changes nothing
        values = {"state": "ended", "ended_at": n.ts, "updated_at": now}
        if n.recording_url:
            values["recording_url"] = n.recording_url
        if row.visit_id is None:
            values["visit_id"] = _visit_overlapping(conn, n.inspector_id, row.started_at, n.ts)
        conn.execute(update(StreamRow).where(StreamRow.id == row.id).values(**values))
        if not n.hls_url:
            # "The camera stopped", naming no stream: every stream of it still open then
            # ends, not only the newest (a sweep found three older ones left "live" for
            # good after a phone announced new URLs without ending the old ones).
            older = conn.execute(select(StreamRow.id, StreamRow.started_at, StreamRow.visit_id).where(
                StreamRow.inspector_id == n.inspector_id, StreamRow.ended_at.is_(None),
                StreamRow.started_at <= n.ts)).all()
            for o in older:
                more = {"state": "ended", "ended_at": n.ts, "updated_at": now}
                if o.visit_id is None:
                    more["visit_id"] = _visit_overlapping(conn, n.inspector_id, o.started_at, n.ts)
                conn.execute(update(StreamRow).where(StreamRow.id == o.id).values(**more))

    # --- reads (web) ----------------------------------------------------------------------

    def for_visit(self, visit_id: int) -> list[dict]:
        """The visit's streams, oldest first: those linked to it, and those of its
        inspector not linked to any visit that overlap it."""
        with self.engine.connect() as conn:
            v = conn.execute(select(Visit.inspector_id, Visit.start_ts, Visit.end_ts, Visit.ended)
                             .where(Visit.id == visit_id)).first()
            if v is None:
                return []
            end = v.end_ts if v.ended else v.end_ts + OPEN_VISIT_SLACK_S
            rows = conn.execute(select(*_COLUMNS).where(or_(
                StreamRow.visit_id == visit_id,
                and_(StreamRow.visit_id.is_(None), StreamRow.inspector_id == v.inspector_id,
                     StreamRow.started_at <= end,
                     or_(StreamRow.ended_at.is_(None), StreamRow.ended_at >= v.start_ts)),
            )).order_by(StreamRow.started_at, StreamRow.id)).all()
        return [_json(r) for r in rows]

    def live(self, inspector_ids: Sequence[str] | None = None, now: float | None = None) -> dict[str, dict]:
        """inspector -> its newest live stream (for the dispatcher console's badge).  A stream
        announced before its visit was confirmed gets the visit it overlaps so far."""
        now = time.time() if now is None else now
        q = select(*_COLUMNS).where(StreamRow.state == "live").order_by(StreamRow.started_at)
        if inspector_ids is not None:
            q = q.where(StreamRow.inspector_id.in_(list(inspector_ids)))
        with self.engine.connect() as conn:
            out = {r.inspector_id: _json(r) for r in conn.execute(q)}
            for s in out.values():
                if s["visit_id"] is None:
                    s["visit_id"] = _visit_overlapping(conn, s["inspector_id"], s["started_ts"], now)
        return out

    def get(self, stream_id: int) -> dict | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(*_COLUMNS).where(StreamRow.id == stream_id)).first()
        return None if r is None else _json(r)


def _visit_at(conn, inspector_id: str, ts: float) -> int | None:
    """The inspector's visit open at ``ts``: started by then, and not over before it."""
    return conn.execute(
        select(Visit.id).where(
            Visit.inspector_id == inspector_id, Visit.start_ts <= ts,
            or_(Visit.end_ts >= ts, and_(Visit.ended.is_(False), Visit.end_ts >= ts - OPEN_VISIT_SLACK_S)))
        .order_by(Visit.start_ts.desc()).limit(1)).scalar()


def _visit_overlapping(conn, inspector_id: str, start: float, end: float) -> int | None:
    """The inspector's newest visit that overlaps [start, end]."""
    return conn.execute(
        select(Visit.id).where(Visit.inspector_id == inspector_id, Visit.start_ts <= end, Visit.end_ts >= start)
        .order_by(Visit.start_ts.desc()).limit(1)).scalar()
