"""registry_version: a counter SQL moves whenever a sensor or an inspector changes

Revision ID: 0011_registry_version
Revises: 0010_alert_note_typed

Every ingest worker and the alert engine keep the device registry (sensors and
inspectors) in memory and reloaded all of it every ``registry_refresh_s`` (30 s). At
ten times a city (50,000 detectors, 20,000 inspectors) a reload was a fifth of the
detectors' ingest's CPU and a sixth of the alert engine's, held their interpreter
lock while the alarms waited, and almost always found nothing changed
(docs/benchmarks.md section 25). Now they read this one row first and reload only
when it moved.

Triggers move it, so every writer is seen, the importer, the API and an operator's
own SQL alike: on PostgreSQL once per statement (TRUNCATE included), on SQLite,
which has no statement triggers, once per row.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_registry_version'
down_revision = '0010_alert_note_typed'
branch_labels = None
depends_on = None

TABLES = ('sensors', 'inspectors')
BUMP = "UPDATE registry_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    op.create_table(
        'registry_version',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO registry_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"""CREATE FUNCTION anjian_registry_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {BUMP};
    RETURN NULL;
END $$""")
        for t in TABLES:
            op.execute(f"CREATE TRIGGER {t}_registry_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                       f"ON {t} FOR EACH STATEMENT EXECUTE FUNCTION anjian_registry_bump()")
    else:
        for t in TABLES:
            for what in ('INSERT', 'UPDATE', 'DELETE'):
                op.execute(f"CREATE TRIGGER {t}_registry_version_{what.lower()} AFTER {what} ON {t} "
                           f"BEGIN {BUMP}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for t in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {t}_registry_version ON {t}")
        op.execute("DROP FUNCTION IF EXISTS anjian_registry_bump()")
    else:
        for t in TABLES:
            for what in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS {t}_registry_version_{what}")
    op.drop_table('registry_version')
