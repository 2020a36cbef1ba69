"""registry_version: counters SQL moves whenever the device registry or the names change

Revision ID: 0011_registry_version
Revises: 0010_alert_note_typed

Every ingest worker and the alert engine keep the device registry (sensors and
inspectors) in memory and reloaded all of it every ``registry_refresh_s`` (30 s). At
ten times a city (50,000 detectors, 20,000 inspectors) a reload was a fifth of the
detectors' ingest's CPU and a sixth of the alert engine's, held their interpreter
lock while the alarms waited, and almost always found nothing changed
(docs/benchmarks.md section 25). Now they read this one row first and reload only
when it moved.

Two rows: id 1 (``DEVICES``) moves with every change to ``sensors`` and
``inspectors``; id 2 (``NAMES``) with every change to ``units`` and with an
enterprise added, removed or renamed (not with the visit times the geo engine
writes on ``enterprises`` all day). The web's registry of names reads both.

Triggers move them, so every writer is seen, the importer, the API and an operator's
own SQL alike: on PostgreSQL once per statement (TRUNCATE included), on SQLite,
which has no statement triggers, once per row.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011_registry_version'
down_revision = '0010_alert_note_typed'
branch_labels = None
depends_on = None

DEVICES, NAMES = 1, 2
# table -> (the row it moves, the columns whose update moves it; None: any)
WATCHED = {
    'sensors': (DEVICES, None),
    'inspectors': (DEVICES, None),
    'units': (NAMES, None),
    'enterprises': (NAMES, 'name'),
}


def bump(row: int) -> str:
    return f"UPDATE registry_version SET version = version + 1 WHERE id = {row}"


def upgrade() -> None:
    op.create_table(
        'registry_version',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
    )
    op.execute(f"INSERT INTO registry_version (id, version) VALUES ({DEVICES}, 0), ({NAMES}, 0)")
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""CREATE FUNCTION anjian_registry_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_version SET version = version + 1 WHERE id = TG_ARGV[0]::integer;
    RETURN NULL;
END $$""")
        for t, (row, column) in WATCHED.items():
            update = f"UPDATE OF {column}" if column else "UPDATE"
            op.execute(f"CREATE TRIGGER {t}_registry_version AFTER INSERT OR {update} OR DELETE OR TRUNCATE "
                       f"ON {t} FOR EACH STATEMENT EXECUTE FUNCTION anjian_registry_bump({row})")
    else:
        for t, (row, column) in WATCHED.items():
            for what in ('INSERT', f'UPDATE OF {column}' if column else 'UPDATE', 'DELETE'):
                op.execute(f"CREATE TRIGGER {t}_registry_version_{what.split()[0].lower()} AFTER {what} ON {t} "
                           f"BEGIN {bump(row)}; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for t in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {t}_registry_version ON {t}")
        op.execute("DROP FUNCTION IF EXISTS anjian_registry_bump()")
    else:
        for t in WATCHED:
            for what in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER IF EXISTS {t}_registry_version_{what}")
    op.drop_table('registry_version')
