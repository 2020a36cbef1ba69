"""The bulletin archive: one ``reports`` row per generated bulletin, its files under
``{data_dir}/reports/{id}/`` (``bulletin.zh-CN.pdf``, ``bulletin.en.html``, ...)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from data.models import ReportRow
from geo.timefmt import iso

FORMATS = ("pdf", "html")


def report_dir(data_dir: Path, report_id: int) -> Path:
    return Path(data_dir) / "reports" / str(int(report_id))


def file_name(lang: str, fmt: str) -> str:
    return f"bulletin.{lang}.{fmt}"


def create(engine: Engine, **values) -> int:
    with engine.begin() as conn:
        return int(conn.execute(insert(ReportRow).values(**values).returning(ReportRow.id)).scalar_one())


def set_files(engine: Engine, report_id: int, files: dict) -> None:
    with engine.begin() as conn:
        conn.execute(update(ReportRow).where(ReportRow.id == report_id).values(files=files))


def delete(engine: Engine, report_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(ReportRow.__table__.delete().where(ReportRow.id == report_id))


def _json(r) -> dict:
    return {
        "id": r.id, "kind": r.kind, "period": r.period, "street_id": r.street_id,
        "start": iso(r.start_ts), "end": iso(r.end_ts), "start_ts": r.start_ts, "end_ts": r.end_ts,
        "as_of": iso(r.as_of), "generated_at": iso(r.generated_at), "generated_at_ts": r.generated_at,
        "generated_by": r.generated_by,
        "anchor": {"hash": r.anchor_hash, "entries": r.anchor_entries},
        "numbers": r.numbers or {},
        "downloads": {lang: {fmt: f"/api/v1/reports/{r.id}.{fmt}" + ("" if lang == "zh-CN" else f"?lang={lang}")
                             for fmt in sorted(fmts)}
                      for lang, fmts in (r.files or {}).items()},
    }


def listing(engine: Engine, kind: str | None = None, street: str | None = None, period: str | None = None,
            limit: int = 200) -> list[dict]:
    """Archived bulletins, newest first (only those whose files were written)."""
    q = select(ReportRow.__table__).where(ReportRow.files.is_not(None))
    if kind:
        q = q.where(ReportRow.kind == kind)
    if street:
        q = q.where(ReportRow.street_id == street)
    if period:
        q = q.where(ReportRow.period == period)
    with engine.connect() as conn:
        rows = conn.execute(q.order_by(ReportRow.id.desc()).limit(limit)).all()
    return [_json(r) for r in rows if r.files]


def get(engine: Engine, report_id: int) -> dict | None:
    with engine.connect() as conn:
        r = conn.execute(select(ReportRow.__table__).where(ReportRow.id == report_id)).first()
    return None if r is None or not r.files else _json(r)


def exists(engine: Engine, kind: str, period: str, street: str | None, generated_by: str) -> bool:
    q = select(ReportRow.id).where(ReportRow.kind == kind, ReportRow.period == period,
                                   ReportRow.generated_by == generated_by, ReportRow.files.is_not(None))
    q = q.where(ReportRow.street_id.is_(None) if street is None else ReportRow.street_id == street)
    with engine.connect() as conn:
        return conn.execute(q.limit(1)).first() is not None


# --- the scheduler's lease ------------------------------------------------------------------


def lease_key(namespace: str, kind: str, period_key: str, street: str | None) -> str:
    """``{ns}:report:lease:{kind}:{period}:{street or -}``: one writer of a bulletin at a time."""
    return f"{namespace}:report:lease:{kind}:{period_key}:{street or '-'}"


def take_lease(redis_client, key: str, now: float, ttl_s: int) -> bool:
    """Take the lease ``key`` for ``ttl_s`` seconds (``SET NX EX``); False when another process holds it."""
    return bool(redis_client.set(key, str(now), nx=True, ex=ttl_s))


def release_lease(redis_client, key: str) -> None:
    redis_client.delete(key)
