"""Migration 0003_plans creates exactly the plan tables of data/models.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from data.models import Base

PLAN_TABLES = {"weekly_plans", "plan_items", "joint_tasks", "plan_conflicts", "draws"}


def test_migration_matches_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)

    def table_of(d):
        obj = d[1] if isinstance(d, tuple) else d[0][1]
        t = getattr(obj, "table", None)
        return getattr(t, "name", None) or getattr(obj, "name", None) or (d[2] if isinstance(d, tuple) and len(d) > 2 else None)

    mine = [d for d in diff if table_of(d) in PLAN_TABLES]
    assert mine == []
    from alembic.script import ScriptDirectory

    from data.db import alembic_config

    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as conn:
        at = conn.exec_driver_sql("select version_num from alembic_version").scalar()
    assert at == script.get_current_head()
    assert "0003_plans" in {r.revision for r in script.iterate_revisions(at, "base")}, "0003_plans is on the way"
