"""Hazards, their photos, self-inspections, red light and the credit face in SQL.

The rules are pure logic in ``hazards/``; this module loads a hazard, lets
``hazards.lifecycle.transition`` decide, and writes the new row, its event
and its audit entry in one transaction (the audit entry joins it, so the
change and its trace commit or roll back together).  Concurrent changes of
one hazard are caught by its ``version`` column: the loser gets ``Conflict``
(HTTP 409).  Authorisation (role, area, own enterprise) is the caller's:
``dashboard/api_hazards.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, and_, case, func, insert, or_, select, update

import hazards
from data import audit
from data.models import (
    Alert,
    Enterprise,
    HazardEvent,
    HazardPhoto,
    HazardRow,
    Inspector,
    ScoreRowModel,
    SelfInspection,
    Sensor,
    Unit,
    Visit,
)
from data.photos import DirectoryStorage, PhotoRefused, PhotoStorage, check_image, make_thumbnail
from geo.coords import haversine_m
from hazards.catalogue import DEFAULT_FILE, Catalogue, parse_catalogue
from hazards.lifecycle import is_overdue, new_hazard, on_site_by_gps, overdue_level, transition
from hazards.model import DAY_S, OPEN_STATES, Hazard
from hazards.redlight import EnterpriseFacts, RedLightRules, red_light

PHOTO_STAGES = ("finding", "rectification")
# Columns of HazardRow that mirror fields of hazards.model.Hazard.
_FIELDS = tuple(f for f in Hazard.__slots__)


class Conflict(Exception):
    """The hazard changed under us (another writer won the race): HTTP 409."""


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """The bureau's catalogue file (setting ``hazard_catalogue_file``), or the default one."""
    p = Path(path) if path else Path(hazards.__file__).with_name(DEFAULT_FILE)
    with open(p, encoding="utf-8") as fh:
        return parse_catalogue(json.load(fh))


def _hazard(row) -> Hazard:
    return Hazard(**{f: getattr(row, f) for f in _FIELDS})


class HazardStore:
    def __init__(self, engine: Engine, settings, photos: PhotoStorage | None = None,
                 catalogue: Catalogue | None = None):
        self.engine = engine
        self.settings = settings
        self.photos = photos if photos is not None else DirectoryStorage(Path(settings.data_dir) / "photos")
        self.catalogue = catalogue if catalogue is not None else load_catalogue(settings.hazard_catalogue_file)
        self.rules = RedLightRules(settings.self_inspection_period_d * DAY_S, settings.redlight_zero_hazard_periods,
                                   settings.redlight_overdue_min)

    # --- reads ------------------------------------------------------------------------
    def overdue(self, now: float) -> list[dict]:
        """Hazards past their deadline and not rectified (``hazards.lifecycle.is_overdue``):
        ``[{"id", "enterprise_id", "street_id", "grid_id", "level", "category", "deadline"}]``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(HazardRow.id, HazardRow.enterprise_id, HazardRow.street_id, HazardRow.grid_id, HazardRow.level,
                       HazardRow.category, HazardRow.deadline)
                .where(HazardRow.state == "rectifying", HazardRow.deadline.is_not(None), HazardRow.deadline < now)
                .order_by(HazardRow.id)).all()
        return [r._asdict() for r in rows]

    def enterprise(self, enterprise_id: str):
        with self.engine.connect() as conn:
            return conn.execute(select(Enterprise.__table__).where(Enterprise.id == enterprise_id)).first()

    def get(self, hazard_id: int, now: float | None = None) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(HazardRow.__table__).where(HazardRow.id == hazard_id)).first()
            if row is None:
                return None
            events = conn.execute(select(HazardEvent.__table__).where(HazardEvent.hazard_id == hazard_id)
                                  .order_by(HazardEvent.id)).all()
            photos = conn.execute(select(HazardPhoto.__table__).where(HazardPhoto.hazard_id == hazard_id)
                                  .order_by(HazardPhoto.id)).all()
        return self._json(row, events, photos, now)

    def _json(self, row, events=None, photos=None, now: float | None = None) -> dict:
        now = time.time() if now is None else now
        h = _hazard(row)
        out = {
            "id": row.id, "enterprise_id": row.enterprise_id, "street_id": row.street_id, "grid_id": row.grid_id,
            "visit_id": row.visit_id, "category": row.category, "level": row.level, "state": row.state,
            "description": row.description, "found_by": row.found_by, "finder_id": row.finder_id,
            "lat": row.lat, "lon": row.lon, "deadline_ts": row.deadline, "reported_ts": row.reported_at,
            "assigned_ts": row.assigned_at, "rectified_ts": row.rectified_at, "accepted_ts": row.accepted_at,
            "accept_method": row.accept_method, "closed_ts": row.closed_at, "send_backs": row.send_backs,
            "advice": getattr(row, "advice", None),  # set by the decision on a dispute (data/reviews_store.py)
            "overdue": is_overdue(h, now),
            "overdue_level": overdue_level(h, now, self.settings.hazard_escalate_after_d * DAY_S),
        }
        if events is not None:
            out["history"] = [{"from_state": e.from_state, "to_state": e.to_state, "action": e.action,
                               "actor": e.actor, "at_ts": e.at, "note": e.note, "detail": e.detail} for e in events]
        if photos is not None:
            out["photos"] = [{"id": p.id, "stage": p.stage, "content_type": p.content_type, "size": p.size,
                              "sha256": p.sha256, "uploaded_by": p.uploaded_by, "uploaded_ts": p.uploaded_at,
                              "thumbnail": p.thumb_key is not None} for p in photos]
        return out

    def list(self, *, state: str | None = None, enterprise_id: str | None = None, level: str | None = None,
             streets: Iterable[str] | None = None, grids: Iterable[str] | None = None,
             overdue_at: float | None = None, open_only: bool = False, limit: int = 500,
             now: float | None = None) -> list[dict]:
        q = select(HazardRow.__table__).order_by(HazardRow.id.desc()).limit(limit)
        if state:
            q = q.where(HazardRow.state == state)
        if open_only:
            q = q.where(HazardRow.state.in_(sorted(OPEN_STATES)))
        if enterprise_id:
            q = q.where(HazardRow.enterprise_id == enterprise_id)
        if level:
            q = q.where(HazardRow.level == level)
        if grids:
            q = q.where(HazardRow.grid_id.in_(list(grids)))
        elif streets is not None:
            q = q.where(HazardRow.street_id.in_(list(streets)))
        if overdue_at is not None:
            q = q.where(HazardRow.state == "rectifying", HazardRow.deadline < overdue_at)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            ids = [r.id for r in rows]
            events: dict[int, list] = {i: [] for i in ids}
            for chunk in (ids[i:i + 500] for i in range(0, len(ids), 500)):
                for e in conn.execute(select(HazardEvent.__table__).where(HazardEvent.hazard_id.in_(chunk))
                                      .order_by(HazardEvent.id)):
                    events[e.hazard_id].append(e)
        return [self._json(r, events[r.id], None, now) for r in rows]

    # --- changes ----------------------------------------------------------------------
    def create(self, actor: str, *, enterprise_id: str, category: str, level: str, found_by: str,
               finder_id: str | None = None, visit_id: int | None = None, lat: float | None = None,
               lon: float | None = None, description: str | None = None, now: float | None = None) -> dict:
        """Report a hazard. ``LookupError``: no such enterprise; ``ValueError``: a bad field."""
        now = time.time() if now is None else float(now)
        if category not in self.catalogue:
            raise ValueError(f"category {category!r} is not in the hazard catalogue")
        ent = self.enterprise(enterprise_id)
        if ent is None:
            raise LookupError(enterprise_id)
        if lat is None or lon is None:
            lat, lon = ent.lat, ent.lon
        h, rec = new_hazard(enterprise_id, category, level, found_by, actor=actor, at=now, finder_id=finder_id,
                            visit_id=visit_id, lat=lat, lon=lon, description=description)
        with self.engine.begin() as conn:
            values = {f: getattr(h, f) for f in _FIELDS if f != "id"}
            hid = conn.execute(insert(HazardRow).values(**values, street_id=ent.street_id, grid_id=ent.grid_id,
                                                        updated_at=now, version=1)).inserted_primary_key[0]
            self._event(conn, hid, rec)
            audit.append(conn, actor, "hazard_report", f"hazard:{hid}",
                         {"enterprise_id": enterprise_id, "category": category, "level": level,
                          "found_by": found_by, "visit_id": visit_id}, at=now)
        return self.get(hid, now)

    @staticmethod
    def _event(conn, hazard_id: int, rec) -> None:
        conn.execute(insert(HazardEvent).values(hazard_id=hazard_id, from_state=rec.from_state, to_state=rec.to_state,
                                                action=rec.action, actor=rec.actor, at=rec.at, note=rec.note,
                                                detail=rec.detail))

    def act(self, hazard_id: int, action: str, actor: str, *, now: float | None = None, deadline: float | None = None,
            note: str | None = None, method: str | None = None, fix=None) -> dict:
        """Apply one lifecycle action.  ``fix`` (an object with lat, lon, acc_m, ts, or None) is the
        accepting inspector's last GPS fix, the proof of an on-site acceptance.

        ``LookupError``: no such hazard; ``TransitionNotAllowed`` (``NotOnSite``) and ``Conflict``: 409;
        ``ValueError``: a bad argument."""
        now = time.time() if now is None else float(now)
        with self.engine.begin() as conn:
            row = conn.execute(select(HazardRow.__table__).where(HazardRow.id == hazard_id)).first()
            if row is None:
                raise LookupError(hazard_id)
            h = _hazard(row)
            evidence = 0
            if action == "rectify":
                since = conn.execute(select(func.max(HazardEvent.at)).where(
                    HazardEvent.hazard_id == hazard_id, HazardEvent.to_state == "rectifying")).scalar() or 0.0
                evidence = conn.execute(select(func.count()).select_from(HazardPhoto).where(
                    HazardPhoto.hazard_id == hazard_id, HazardPhoto.stage == "rectification",
                    HazardPhoto.uploaded_at >= since)).scalar_one()
            not_on_site = None
            gps: dict = {}
            if action == "accept" and method == "on_site":
                ent = conn.execute(select(Enterprise.lat, Enterprise.lon).where(Enterprise.id == h.enterprise_id)).one()
                if fix is None:
                    not_on_site = on_site_by_gps(None, self.settings.arrive_geofence_m)
                else:
                    dist = float(haversine_m(fix.lon, fix.lat, ent.lon, ent.lat))
                    not_on_site = on_site_by_gps(dist, self.settings.arrive_geofence_m, fix.acc_m, now - fix.ts,
                                                 self.settings.hazard_accept_fix_max_age_s)
                    gps = {"distance_m": round(dist, 1), "fix_ts": fix.ts, "acc_m": fix.acc_m}
            new, rec = transition(h, action, actor=actor, at=now, deadline_days=self.settings.hazard_deadline_days(),
                                  deadline=deadline, note=note, evidence_photos=evidence, method=method,
                                  not_on_site=not_on_site)
            if gps:
                rec = rec.__class__(rec.from_state, rec.to_state, rec.action, rec.actor, rec.at, rec.note,
                                    {**(rec.detail or {}), **gps})
            changes = {f: getattr(new, f) for f in _FIELDS if f != "id" and getattr(new, f) != getattr(h, f)}
            res = conn.execute(update(HazardRow).where(HazardRow.id == hazard_id, HazardRow.version == row.version)
                               .values(**changes, updated_at=now, version=row.version + 1))
            if res.rowcount != 1:
                raise Conflict(f"hazard {hazard_id} changed meanwhile; reload and try again")
            self._event(conn, hazard_id, rec)
            audit.append(conn, actor, f"hazard_{rec.action}", f"hazard:{hazard_id}",
                         {"from": rec.from_state, "to": rec.to_state, "note": note, **(rec.detail or {})}, at=now)
        return self.get(hazard_id, now)

    def add_photo(self, hazard_id: int, stage: str, data: bytes, actor: str, now: float | None = None) -> dict:
        """Check and store one photo.  ``PhotoRefused`` (too large, not an image) stores nothing."""
        now = time.time() if now is None else float(now)
        if stage not in PHOTO_STAGES:
            raise ValueError(f"stage must be one of {PHOTO_STAGES}, not {stage!r}")
        content_type = check_image(data, self.settings.photo_max_bytes)
        with self.engine.connect() as conn:
            row = conn.execute(select(HazardRow.state).where(HazardRow.id == hazard_id)).first()
        if row is None:
            raise LookupError(hazard_id)
        if stage == "rectification" and row.state != "rectifying":
            raise PhotoRefused("wrong_state", f"rectification evidence is uploaded while the hazard is rectifying, "
                                              f"not {row.state}")
        if row.state == "closed":
            raise PhotoRefused("wrong_state", "the hazard is closed")
        digest = hashlib.sha256(data).hexdigest()
        from data.photos import IMAGE_TYPES

        thumb = make_thumbnail(data)  # decodes the whole image: a corrupt one is refused here
        key = f"{hazard_id}/{stage}-{digest[:32]}.{IMAGE_TYPES[content_type]}"
        thumb_key = f"{hazard_id}/{stage}-{digest[:32]}.thumb.jpg"
        self.photos.put(key, data, content_type)
        self.photos.put(thumb_key, thumb, "image/jpeg")
        try:
            with self.engine.begin() as conn:
                pid = conn.execute(insert(HazardPhoto).values(
                    hazard_id=hazard_id, stage=stage, storage_key=key, thumb_key=thumb_key, content_type=content_type,
                    size=len(data), sha256=digest, uploaded_by=actor, uploaded_at=now)).inserted_primary_key[0]
                audit.append(conn, actor, "hazard_photo", f"hazard:{hazard_id}",
                             {"photo_id": pid, "stage": stage, "sha256": digest, "size": len(data)}, at=now)
        except BaseException:
            # The same bytes may already be stored for an earlier row of this hazard: keep the file then.
            with self.engine.connect() as conn:
                used = conn.execute(select(func.count()).select_from(HazardPhoto)
                                    .where(HazardPhoto.storage_key == key)).scalar_one()
            if not used:
                self.photos.delete(key)
                self.photos.delete(thumb_key)
            raise
        return {"id": pid, "hazard_id": hazard_id, "stage": stage, "content_type": content_type, "size": len(data),
                "sha256": digest}

    def photo(self, hazard_id: int, photo_id: int, thumb: bool = False) -> tuple[bytes, str] | None:
        """The photo's bytes and content type; ``thumb``: its thumbnail (a JPEG) when it has one."""
        with self.engine.connect() as conn:
            p = conn.execute(select(HazardPhoto.storage_key, HazardPhoto.thumb_key, HazardPhoto.content_type).where(
                HazardPhoto.id == photo_id, HazardPhoto.hazard_id == hazard_id)).first()
        if p is None:
            return None
        if thumb and p.thumb_key:
            return self.photos.get(p.thumb_key), "image/jpeg"
        return self.photos.get(p.storage_key), p.content_type

    # --- self-inspections -----------------------------------------------------------------
    def submit_self_inspection(self, enterprise_id: str, actor: str, items: list[dict],
                               now: float | None = None) -> dict:
        """``items``: the checklist, ``[{"code", "ok", "note"}]``, every code from the catalogue."""
        now = time.time() if now is None else float(now)
        errors = []
        clean = []
        for i, it in enumerate(items):
            if not isinstance(it, dict) or it.get("code") not in self.catalogue:
                errors.append(f"items[{i}].code: not an item of the catalogue")
                continue
            if not isinstance(it.get("ok"), bool):
                errors.append(f"items[{i}].ok: true or false")
                continue
            clean.append({"code": it["code"], "ok": it["ok"], "note": str(it.get("note") or "")[:500]})
        if errors:
            raise ValueError("; ".join(errors))
        if self.enterprise(enterprise_id) is None:
            raise LookupError(enterprise_id)
        found = sum(1 for it in clean if not it["ok"])
        with self.engine.begin() as conn:
            sid = conn.execute(insert(SelfInspection).values(enterprise_id=enterprise_id, submitted_at=now,
                                                             submitted_by=actor, items=clean, hazards_found=found)
                               ).inserted_primary_key[0]
            audit.append(conn, actor, "self_inspection", f"enterprise:{enterprise_id}",
                         {"id": sid, "items": len(clean), "hazards_found": found}, at=now)
        return {"id": sid, "enterprise_id": enterprise_id, "submitted_ts": now, "items": clean,
                "hazards_found": found}

    def self_inspections(self, enterprise_id: str, limit: int = 20) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(SelfInspection.__table__).where(SelfInspection.enterprise_id == enterprise_id)
                                .order_by(SelfInspection.submitted_at.desc()).limit(limit)).all()
        return [{"id": r.id, "submitted_ts": r.submitted_at, "submitted_by": r.submitted_by, "items": r.items,
                 "hazards_found": r.hazards_found} for r in rows]

    # --- red light ------------------------------------------------------------------------
    def red_light(self, now: float, *, enterprise_ids: list[str] | None = None, streets=None, grids=None,
                  limit: int | None = None) -> list[dict]:
        """Enterprises with red-light status now, each with its reasons (hazards.redlight)."""
        ents = select(Enterprise.id, Enterprise.name, Enterprise.street_id, Enterprise.grid_id, Enterprise.risk)
        if enterprise_ids is not None:
            ents = ents.where(Enterprise.id.in_(enterprise_ids))
        if grids:
            ents = ents.where(Enterprise.grid_id.in_(list(grids)))
        elif streets is not None:
            ents = ents.where(Enterprise.street_id.in_(list(streets)))
        window = now - max(1, self.rules.zero_hazard_periods) * self.rules.period_s
        # One enterprise (its profile) reads its own rows only; a list reads the city in three aggregates.
        si_only = [] if enterprise_ids is None else [SelfInspection.enterprise_id.in_(enterprise_ids)]
        hz_only = [] if enterprise_ids is None else [HazardRow.enterprise_id.in_(enterprise_ids)]
        with self.engine.connect() as conn:
            si = {r[0]: (r[1], r[2]) for r in conn.execute(
                select(SelfInspection.enterprise_id, func.max(SelfInspection.submitted_at),
                       func.min(SelfInspection.submitted_at))
                .where(SelfInspection.submitted_at <= now, *si_only).group_by(SelfInspection.enterprise_id))}
            own = dict(conn.execute(
                select(HazardRow.enterprise_id, func.max(HazardRow.reported_at))
                .where(HazardRow.found_by == "enterprise", HazardRow.reported_at > window,
                       HazardRow.reported_at <= now, *hz_only).group_by(HazardRow.enterprise_id)).all())
            for eid, at in conn.execute(
                    select(SelfInspection.enterprise_id, func.max(SelfInspection.submitted_at))
                    .where(SelfInspection.hazards_found > 0, SelfInspection.submitted_at > window,
                           SelfInspection.submitted_at <= now, *si_only).group_by(SelfInspection.enterprise_id)):
                own[eid] = max(at, own.get(eid, at))
            overdue = dict(conn.execute(
                select(HazardRow.enterprise_id, func.count())
                .where(HazardRow.state == "rectifying", HazardRow.deadline < now, *hz_only)
                .group_by(HazardRow.enterprise_id)).all())
            out = []
            for e in conn.execute(ents.order_by(Enterprise.id)):
                last, first = si.get(e.id, (None, None))
                facts = EnterpriseFacts(e.id, last, (own[e.id],) if e.id in own else (), overdue.get(e.id, 0),
                                        since=first)
                reasons = red_light(facts, now, self.rules)
                if reasons:
                    out.append({"enterprise_id": e.id, "name": e.name, "street_id": e.street_id,
                                "grid_id": e.grid_id, "risk": e.risk, "reasons": reasons})
                    if limit and len(out) >= limit:
                        break
        return out

    # --- the credit face (信用脸谱) -------------------------------------------------------------
    def credit_face(self, enterprise_id: str, now: float, trend_days: int = 90) -> dict:
        from geo.china import CHINA_TZ
        from datetime import datetime, timedelta

        today = datetime.fromtimestamp(now, CHINA_TZ).date()
        since = (today - timedelta(days=trend_days)).isoformat()
        with self.engine.connect() as conn:
            trend = conn.execute(select(ScoreRowModel.date, ScoreRowModel.score, ScoreRowModel.rank)
                                 .where(ScoreRowModel.kind == "enterprise", ScoreRowModel.subject_id == enterprise_id,
                                        ScoreRowModel.date >= since).order_by(ScoreRowModel.date)).all()
            hz = conn.execute(select(HazardRow.__table__).where(HazardRow.enterprise_id == enterprise_id)
                              .order_by(HazardRow.reported_at.desc()).limit(200)).all()
            visits = conn.execute(
                select(Visit.id, Visit.start_ts, Visit.end_ts, Visit.inspector_id, Inspector.name.label("inspector"),
                       Visit.unit_id, Unit.name.label("unit"), Visit.duplicate_of)
                .join(Inspector, Inspector.id == Visit.inspector_id, isouter=True)
                .join(Unit, Unit.id == Visit.unit_id, isouter=True)
                .where(Visit.enterprise_id == enterprise_id).order_by(Visit.start_ts.desc()).limit(50)).all()
            alerts = conn.execute(select(Alert.id, Alert.type, Alert.state, Alert.severity, Alert.first_seen,
                                         Alert.peak_lel, Alert.sensor_id, Alert.outcome)
                                  .where(Alert.enterprise_id == enterprise_id, Alert.type == "gas_alarm")
                                  .order_by(Alert.first_seen.desc()).limit(50)).all()
            sensors = conn.execute(select(Sensor.id, Sensor.model).where(Sensor.enterprise_id == enterprise_id)
                                   .order_by(Sensor.id)).all()
            last = trend[-1] if trend else None
            # The rank means something only beside how many were ranked and how many share it
            # (most enterprises of a quiet day score 100 and share rank 1).
            ranked = tied = None
            if last is not None:  # one read of the day's rows for both counts
                ranked, tied = conn.execute(
                    select(func.count(), func.sum(case((ScoreRowModel.rank == last.rank, 1), else_=0)))
                    .where(ScoreRowModel.kind == "enterprise", ScoreRowModel.date == last.date)).one()
                tied = int(tied or 0)
        closed = [r for r in hz if r.state == "closed"]
        reds = self.red_light(now, enterprise_ids=[enterprise_id])
        return {
            "score": None if last is None else last.score,
            "score_date": None if last is None else last.date,
            "rank": None if last is None else last.rank,
            "ranked": ranked,
            "tied": tied,
            "score_trend": [{"date": t.date, "score": t.score} for t in trend],
            "hazards": {
                "open": sum(1 for r in hz if r.state in OPEN_STATES),
                "closed": len(closed),
                "overdue": sum(1 for r in hz if is_overdue(_hazard(r), now)),
                "items": [{"id": r.id, "category": r.category, "level": r.level, "state": r.state,
                           "reported_ts": r.reported_at, "deadline_ts": r.deadline, "closed_ts": r.closed_at,
                           "time_to_close_s": None if r.closed_at is None else r.closed_at - r.reported_at}
                          for r in hz],
            },
            "visits": [{"id": v.id, "start_ts": v.start_ts, "end_ts": v.end_ts, "inspector_id": v.inspector_id,
                        "inspector": v.inspector, "unit_id": v.unit_id, "unit": v.unit,
                        "duplicate_of": v.duplicate_of} for v in visits],
            "alerts": {"gas_alarms": [{"id": a.id, "state": a.state, "severity": a.severity, "first_ts": a.first_seen,
                                       "peak_lel": a.peak_lel, "sensor_id": a.sensor_id, "outcome": a.outcome}
                                      for a in alerts],
                       "sensors": [{"id": s.id, "model": s.model} for s in sensors]},
            "red_light": reds[0]["reasons"] if reds else None,
        }

    def enterprises(self, *, street=None, grid=None, risk=None, q=None, limit=200, streets=None, grids=None,
                    only_id: str | None = None) -> list:
        s = select(Enterprise.id, Enterprise.name, Enterprise.credit_code, Enterprise.risk, Enterprise.street_id,
                   Enterprise.grid_id, Enterprise.lat, Enterprise.lon, Enterprise.last_inspected_at,
                   Enterprise.next_due_at, Enterprise.industry, Enterprise.address)
        conds = []
        if street:
            conds.append(Enterprise.street_id == street)
        if grid:
            conds.append(Enterprise.grid_id == grid)
        if risk:
            conds.append(Enterprise.risk == risk)
        if q:
            like = f"%{q}%"
            conds.append(or_(Enterprise.name.like(like), Enterprise.id == q, Enterprise.credit_code == q))
        if only_id is not None:
            conds.append(Enterprise.id == only_id)
        if grids:
            conds.append(Enterprise.grid_id.in_(list(grids)))
        elif streets is not None:
            conds.append(Enterprise.street_id.in_(list(streets)))
        if conds:
            s = s.where(and_(*conds))
        with self.engine.connect() as conn:
            return conn.execute(s.order_by(Enterprise.id).limit(limit)).all()
