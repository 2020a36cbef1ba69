"""stream_marks: the newest Redis stream entry the alert engine applied, per key

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-03 18:45:00

Written in the same transaction as the alert change an entry causes, so that
an entry delivered again after a crash between the SQL commit and the stream
XACK is recognised and applied once (docs/alerts.md).
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_stream_marks'
down_revision = '0003_reports'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stream_marks',
    sa.Column('stream', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('last_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('stream', 'key')
    )


def downgrade() -> None:
    op.drop_table('stream_marks')
