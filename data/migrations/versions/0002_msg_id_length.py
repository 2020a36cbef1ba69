"""msg_id columns hold MSG_ID_MAX_LEN (128) characters, the limit decode accepts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 18:30:00

The columns were VARCHAR(64) while decode accepted 128 characters (and
OwnTracks ids reached 75): on PostgreSQL such a fix failed its batch's history
write.  Widening a VARCHAR is a catalogue change on PostgreSQL (no table
rewrite).  SQLite never enforces a VARCHAR length, so there the tables are left
as they are rather than rebuilt (batch mode would copy the whole history).
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLES = ('pings', 'sensor_readings')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    for table in TABLES:
        op.alter_column(table, 'msg_id', existing_type=sa.String(length=64), type_=sa.String(length=128),
                        existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        return
    for table in TABLES:
        op.alter_column(table, 'msg_id', existing_type=sa.String(length=128), type_=sa.String(length=64),
                        existing_nullable=True)
