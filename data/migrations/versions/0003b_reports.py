"""bulletins: the reports archive

Revision ID: 0003_reports
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_reports'
down_revision = '0003_plans'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('period', sa.String(length=16), nullable=False),
    sa.Column('street_id', sa.String(length=32), nullable=True),
    sa.Column('start_ts', sa.Float(), nullable=False),
    sa.Column('end_ts', sa.Float(), nullable=False),
    sa.Column('as_of', sa.Float(), nullable=False),
    sa.Column('generated_at', sa.Float(), nullable=False),
    sa.Column('generated_by', sa.String(length=64), nullable=False),
    sa.Column('anchor_hash', sa.String(length=64), nullable=True),
    sa.Column('anchor_entries', sa.Integer(), nullable=False),
    sa.Column('numbers', sa.JSON(), nullable=True),
    sa.Column('files', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_reports_kind_period', 'reports', ['kind', 'period'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_reports_kind_period', table_name='reports')
    op.drop_table('reports')
