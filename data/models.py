"""The city model and history, as SQLAlchemy 2 tables.

Portable between SQLite and PostgreSQL: geometries are GeoJSON text (no
PostGIS needed), times are epoch seconds (UTC) as floats, ids of registered
things are short strings chosen by the importer (``E000123``, ``I0042``).
Alembic migrations in ``data/migrations`` create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from geo.types import MSG_ID_MAX_LEN

RISK_COLOURS = ("red", "orange", "yellow", "blue")
UNIT_KINDS = ("district_section", "street_office", "third_party")
ROLES = ("wall", "dispatcher", "officer", "admin", "enterprise")


class Base(DeclarativeBase):
    pass


# --- the city ---------------------------------------------------------------


class Street(Base):
    __tablename__ = "streets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str | None] = mapped_column(String(64))
    geometry: Mapped[str] = mapped_column(Text)  # GeoJSON geometry, WGS-84


class Grid(Base):
    __tablename__ = "grids"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    street_id: Mapped[str] = mapped_column(ForeignKey("streets.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    staff_name: Mapped[str | None] = mapped_column(String(64))  # 网格员
    staff_phone: Mapped[str | None] = mapped_column(String(32))
    geometry: Mapped[str] = mapped_column(Text)


class Unit(Base):
    __tablename__ = "units"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str | None] = mapped_column(String(128))  # shown in the English UI
    kind: Mapped[str] = mapped_column(String(32))  # one of UNIT_KINDS
    street_id: Mapped[str | None] = mapped_column(ForeignKey("streets.id"))


class Inspector(Base):
    __tablename__ = "inspectors"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(32))
    owntracks_id: Mapped[str | None] = mapped_column(String(128), unique=True)  # "user/device"


class Enterprise(Base):
    __tablename__ = "enterprises"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), index=True)
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)  # 统一社会信用代码
    address: Mapped[str | None] = mapped_column(String(256))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    industry: Mapped[str | None] = mapped_column(String(64))
    risk: Mapped[str] = mapped_column(String(8), index=True)  # one of RISK_COLOURS
    street_id: Mapped[str | None] = mapped_column(ForeignKey("streets.id"), index=True)
    grid_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id"), index=True)
    last_inspected_at: Mapped[float | None] = mapped_column(Float)
    next_due_at: Mapped[float | None] = mapped_column(Float, index=True)


class Sensor(Base):
    __tablename__ = "sensors"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(ForeignKey("enterprises.id"), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    z2m_name: Mapped[str | None] = mapped_column(String(256), unique=True)
    model: Mapped[str | None] = mapped_column(String(64))
    low_lel: Mapped[float | None] = mapped_column(Float)  # None: the configured default
    high_lel: Mapped[float | None] = mapped_column(Float)
    heartbeat_s: Mapped[int | None] = mapped_column(Integer)
    street_id: Mapped[str | None] = mapped_column(ForeignKey("streets.id"), index=True)
    grid_id: Mapped[str | None] = mapped_column(ForeignKey("grids.id"), index=True)


class RegistryVersion(Base):
    """Counters SQL triggers move (migration 0011): id 1 (``DEVICES``) on every change
    to ``sensors`` or ``inspectors``, id 2 (``NAMES``) on every change to ``units`` and
    on an enterprise added, removed or renamed.  The registries kept in memory (the
    workers' ``data.registry``, the web's names) are read again only when theirs moved."""

    DEVICES = 1
    NAMES = 2

    __tablename__ = "registry_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


# --- history ------------------------------------------------------------------


class PingRow(Base):
    __tablename__ = "pings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspector_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    acc_m: Mapped[float | None] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[float] = mapped_column(Float)
    msg_id: Mapped[str | None] = mapped_column(String(MSG_ID_MAX_LEN))
    __table_args__ = (
        Index("ix_pings_inspector_ts", "inspector_id", "ts"),
        Index("ix_pings_ts", "ts"),
        # A redelivered message (same msg_id) is stored once (NULLs never collide).
        UniqueConstraint("inspector_id", "msg_id", name="uq_pings_msg"),
    )


class SensorReadingRow(Base):
    __tablename__ = "sensor_readings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sensor_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[float] = mapped_column(Float)
    lel_pct: Mapped[float | None] = mapped_column(Float)
    ppm: Mapped[float | None] = mapped_column(Float)
    alarm: Mapped[str | None] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))  # normal/low/high/fault/tamper/test
    batt_pct: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[float] = mapped_column(Float)
    msg_id: Mapped[str | None] = mapped_column(String(MSG_ID_MAX_LEN))
    __table_args__ = (
        Index("ix_readings_sensor_ts", "sensor_id", "ts"),
        UniqueConstraint("sensor_id", "msg_id", name="uq_readings_msg"),
    )


class Visit(Base):
    __tablename__ = "visits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"))
    inspector_id: Mapped[str] = mapped_column(ForeignKey("inspectors.id"))
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    start_ts: Mapped[float] = mapped_column(Float)
    end_ts: Mapped[float] = mapped_column(Float)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="SET NULL"))
    same_unit_repeat_of: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="SET NULL"))
    # The geo engine's key of the stay (inspector|enterprise|start at confirmation):
    # the row is upserted by it while the visit grows, even if its start moves.
    stay_key: Mapped[str] = mapped_column(String(160), unique=True)
    ended: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        Index("ix_visits_enterprise_start", "enterprise_id", "start_ts"),
        Index("ix_visits_start", "start_ts"),
        Index("ix_visits_inspector_start", "inspector_id", "start_ts"),
    )


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    subject: Mapped[str] = mapped_column(String(128))  # e.g. "sensor:S0001"
    severity: Mapped[str] = mapped_column(String(16))  # info/warning/critical
    state: Mapped[str] = mapped_column(String(16), index=True)
    enterprise_id: Mapped[str | None] = mapped_column(String(32), index=True)
    sensor_id: Mapped[str | None] = mapped_column(String(32))
    inspector_id: Mapped[str | None] = mapped_column(String(32))
    street_id: Mapped[str | None] = mapped_column(String(32), index=True)
    grid_id: Mapped[str | None] = mapped_column(String(32), index=True)
    assignee_id: Mapped[str | None] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=1)
    peak_lel: Mapped[float | None] = mapped_column(Float)
    last_value_lel: Mapped[float | None] = mapped_column(Float)
    returned_to_normal_at: Mapped[float | None] = mapped_column(Float)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    escalate_at: Mapped[float | None] = mapped_column(Float, index=True)
    outcome: Mapped[str | None] = mapped_column(String(32))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock
    details: Mapped[dict | None] = mapped_column(JSON)
    __table_args__ = (Index("ix_alerts_type_subject_state", "type", "subject", "state"),)
    __mapper_args__ = {"version_id_col": version}


class StreamMark(Base):
    """The newest entry of a Redis stream the alert engine has applied, per key
    (a sensor), written in the same transaction as what the entry changed: an
    entry read again (a crash between the commit and the XACK) is seen as
    applied and changes nothing twice (data.alert_store.AlertStore.first_time)."""

    __tablename__ = "stream_marks"
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)  # e.g. "gas:events"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # e.g. a sensor id
    last_id: Mapped[str] = mapped_column(String(32))  # Redis stream id "ms-seq"
    at: Mapped[float] = mapped_column(Float)


class AlertEvent(Base):
    __tablename__ = "alert_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    # True: the note is what a person typed, shown as typed (never read as a system note);
    # False: the system wrote it; None: written before migration 0010, not known.
    note_typed: Mapped[bool | None] = mapped_column(Boolean)


class DispatchTask(Base):
    __tablename__ = "dispatch_tasks"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # gas_alarm, reassign, inspection
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    inspector_id: Mapped[str] = mapped_column(ForeignKey("inspectors.id"), index=True)
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # issued, done, cancelled
    issued_at: Mapped[float] = mapped_column(Float)
    issued_by: Mapped[str] = mapped_column(String(64))


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(48), index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[float] = mapped_column(Float, index=True)
    payload_head: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(64))


# --- access and evidence -------------------------------------------------------


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(256))  # argon2
    role: Mapped[str] = mapped_column(String(16))  # one of ROLES
    streets: Mapped[list | None] = mapped_column(JSON)  # officer scope
    grids: Mapped[list | None] = mapped_column(JSON)
    inspector_id: Mapped[str | None] = mapped_column(String(32))
    enterprise_id: Mapped[str | None] = mapped_column(String(32))  # role enterprise: the one it is bound to
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of a 256-bit token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[float] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str | None] = mapped_column(Text)  # canonical JSON
    # Unique: an entry can have only one successor, so two writers racing to
    # append cannot fork the chain (the loser retries on top of the winner).
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# --- plans, joint tasks, draws (issue 15; logic in plans/) -----------------------------


class WeeklyPlan(Base):
    __tablename__ = "weekly_plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    week: Mapped[str] = mapped_column(String(8), index=True)  # ISO week, 2026-W49
    state: Mapped[str] = mapped_column(String(16))  # plans.model.PLAN_STATES
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float)
    # The first submission (a plan sent back and submitted again keeps it): what the
    # agencies' rating scores as on time or late (docs/agencies.md).
    submitted_at: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("unit_id", "week", name="uq_weekly_plans_unit_week"),)


class PlanItemRow(Base):
    __tablename__ = "plan_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("weekly_plans.id", ondelete="CASCADE"), index=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"))
    date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD, China time
    inspector_ids: Mapped[list] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(16))  # plans.model.PURPOSES
    check_items: Mapped[list] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="planned")  # plans.model.ITEM_STATES
    joint_task_id: Mapped[int | None] = mapped_column(ForeignKey("joint_tasks.id"))
    __table_args__ = (Index("ix_plan_items_enterprise_date", "enterprise_id", "date"),)


class JointTaskRow(Base):
    __tablename__ = "joint_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    week: Mapped[str] = mapped_column(String(8), index=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"))
    date: Mapped[str] = mapped_column(String(10))
    lead_unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    unit_ids: Mapped[list] = mapped_column(JSON)
    inspector_ids: Mapped[list] = mapped_column(JSON)
    item_ids: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))


class PlanConflictRow(Base):
    __tablename__ = "plan_conflicts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    week: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(255))  # plans.collisions.Conflict.key
    kind: Mapped[str] = mapped_column(String(32))  # plans.model.CONFLICT_KINDS
    enterprise_id: Mapped[str] = mapped_column(String(32))
    item_ids: Mapped[list] = mapped_column(JSON)
    suggestion: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict | None] = mapped_column(JSON)
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution: Mapped[str | None] = mapped_column(String(16))  # joint / shift / drop
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[float | None] = mapped_column(Float)
    joint_task_id: Mapped[int | None] = mapped_column(ForeignKey("joint_tasks.id"))
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("week", "key", name="uq_plan_conflicts_week_key"),)


class DrawRow(Base):
    __tablename__ = "draws"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    algorithm: Mapped[str] = mapped_column(String(32))  # plans.draw.ALGORITHM
    seed: Mapped[str] = mapped_column(String(256))
    params: Mapped[str] = mapped_column(Text)  # canonical JSON: count, weights, inspectors per enterprise
    pool_filter: Mapped[str] = mapped_column(Text)  # canonical JSON: how the pool was chosen (for the record)
    pool: Mapped[str] = mapped_column(Text)  # the canonical pool document (plans.draw.canonical_pool)
    pool_hash: Mapped[str] = mapped_column(String(64))
    picks: Mapped[str] = mapped_column(Text)  # canonical JSON list of {"enterprise_id", "inspector_ids"}
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64))
# --- bulletins -----------------------------------------------------------------


class ReportRow(Base):
    """An archived bulletin (定期通报); its files are under ``{data_dir}/reports/{id}/``."""

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # weekly | monthly
    period: Mapped[str] = mapped_column(String(16))  # 2026-W49 | 2026-12
    street_id: Mapped[str | None] = mapped_column(String(32))  # None: the district
    start_ts: Mapped[float] = mapped_column(Float)
    end_ts: Mapped[float] = mapped_column(Float)
    as_of: Mapped[float] = mapped_column(Float)
    generated_at: Mapped[float] = mapped_column(Float)
    generated_by: Mapped[str] = mapped_column(String(64))
    anchor_hash: Mapped[str | None] = mapped_column(String(64))
    anchor_entries: Mapped[int] = mapped_column(Integer, default=0)
    numbers: Mapped[dict | None] = mapped_column(JSON)
    files: Mapped[dict | None] = mapped_column(JSON)  # {"zh-CN": {"pdf": name, "html": name}, "en": {...}}
    __table_args__ = (Index("ix_reports_kind_period", "kind", "period"),)


# --- hazards, self-inspections, scores (hazards/, data/hazards_store.py) ----------


class HazardRow(Base):
    """One hazard (隐患); its state changes only through hazards.lifecycle.transition."""

    __tablename__ = "hazards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    street_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the enterprise's, at report
    grid_id: Mapped[str | None] = mapped_column(String(32), index=True)
    category: Mapped[str] = mapped_column(String(32))  # an item code of the catalogue
    level: Mapped[str] = mapped_column(String(8))  # general / major
    state: Mapped[str] = mapped_column(String(16), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    found_by: Mapped[str] = mapped_column(String(16))  # inspector / agency / enterprise
    finder_id: Mapped[str | None] = mapped_column(String(64))
    visit_id: Mapped[int | None] = mapped_column(Integer)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    deadline: Mapped[float | None] = mapped_column(Float, index=True)
    reported_at: Mapped[float] = mapped_column(Float, index=True)
    assigned_at: Mapped[float | None] = mapped_column(Float)
    rectified_at: Mapped[float | None] = mapped_column(Float)
    accepted_at: Mapped[float | None] = mapped_column(Float)
    accept_method: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[float | None] = mapped_column(Float)
    send_backs: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock
    # Rectification advice (整改建议) set by the decision on a disputed hazard (data/reviews_store.py).
    advice: Mapped[str | None] = mapped_column(Text)


class HazardEvent(Base):
    __tablename__ = "hazard_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id"), index=True)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict | None] = mapped_column(JSON)


class HazardPhoto(Base):
    __tablename__ = "hazard_photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))  # finding / rectification
    storage_key: Mapped[str] = mapped_column(String(200))
    thumb_key: Mapped[str | None] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[float] = mapped_column(Float)


class SelfInspection(Base):
    """An enterprise's periodic self-inspection (自查): its checklist of catalogue items."""

    __tablename__ = "self_inspections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"))
    submitted_at: Mapped[float] = mapped_column(Float)
    submitted_by: Mapped[str] = mapped_column(String(64))
    items: Mapped[list | None] = mapped_column(JSON)  # [{"code", "ok", "note"}]
    hazards_found: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (Index("ix_self_inspections_enterprise_at", "enterprise_id", "submitted_at"),)


class ScoreRowModel(Base):
    """One day's score of one enterprise, street or unit; a rerun of the day replaces them identically."""

    __tablename__ = "scores"
    date: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, China time
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # enterprise / street / unit
    subject_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    parts: Mapped[dict] = mapped_column(JSON)
    __table_args__ = (Index("ix_scores_kind_subject_date", "kind", "subject_id", "date"),)


class ScoreRun(Base):
    """The days the scoring ran: the catch-up after downtime starts after the newest."""

    __tablename__ = "score_runs"
    date: Mapped[str] = mapped_column(String(10), primary_key=True)
    ran_at: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the day's rows


# --- remote review (远程点评): body-camera streams, time-coded comments, verdicts ----------


class StreamRow(Base):
    """A body camera's live stream (``PREFIX/v1/inspectors/{id}/stream``), linked to the
    inspector's visit; ended with its recording (data/streams.py)."""

    __tablename__ = "streams"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspector_id: Mapped[str] = mapped_column(ForeignKey("inspectors.id"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id", ondelete="SET NULL"), index=True)
    state: Mapped[str] = mapped_column(String(8), index=True)  # live / ended
    hls_url: Mapped[str | None] = mapped_column(Text)
    whep_url: Mapped[str | None] = mapped_column(Text)
    recording_url: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    msg_id: Mapped[str | None] = mapped_column(String(MSG_ID_MAX_LEN))
    __table_args__ = (Index("ix_streams_inspector_started", "inspector_id", "started_at"),)


class VisitReview(Base):
    """A reviewer's time-coded comment on a visit's stream, or its verdict (data/reviews_store.py)."""

    __tablename__ = "visit_reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # comment / verdict
    stream_id: Mapped[int | None] = mapped_column(Integer)  # the stream the comment's at_s is into
    at_s: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(16))  # compliant / non_compliant
    reasons: Mapped[list | None] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)


class HazardDiscussion(Base):
    """The discussion thread of a disputed hazard (线上研判): comments from several units, and
    the one final decision that sets the hazard's category, level and advice."""

    __tablename__ = "hazard_discussions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hazard_id: Mapped[int] = mapped_column(ForeignKey("hazards.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # comment / decision
    body: Mapped[str | None] = mapped_column(Text)
    decision: Mapped[dict | None] = mapped_column(JSON)  # {category, level, advice, before: {...}}
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float)
# --- third-party safety-service agencies (issue 17 §2; docs/agencies.md) -----------
# An agency is a unit of kind ``third_party``; its staff are that unit's inspectors.


class ServiceContract(Base):
    """An agency serves an enterprise from ``start_date`` to ``end_date`` (China dates, both inclusive)."""

    __tablename__ = "service_contracts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    enterprise_id: Mapped[str] = mapped_column(ForeignKey("enterprises.id"), index=True)
    start_date: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD
    end_date: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class AgencyComplaint(Base):
    """A complaint about an agency recorded by the bureau."""

    __tablename__ = "agency_complaints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("units.id"), index=True)
    enterprise_id: Mapped[str | None] = mapped_column(ForeignKey("enterprises.id"))
    note: Mapped[str] = mapped_column(Text)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[float] = mapped_column(Float, index=True)
