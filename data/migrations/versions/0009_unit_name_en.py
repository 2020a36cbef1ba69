"""units.name_en: a unit's English name, as streets have one

Revision ID: 0009_unit_name_en
Revises: 0008_plan_submitted

The English UI showed the units (district sections, street offices, agencies) by their
Chinese names; streets carry ``name_en`` and units now may too (docs/import.md). Units
without one are shown by their registered name.
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_unit_name_en'
down_revision = '0008_plan_submitted'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('units') as batch:
        batch.add_column(sa.Column('name_en', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('units') as batch:
        batch.drop_column('name_en')
