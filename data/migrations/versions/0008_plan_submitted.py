"""weekly_plans.submitted_at: when a unit first submitted its week's plan

Revision ID: 0008_plan_submitted
Revises: 0007_agencies

The agencies' rating scores plans submitted before their week (docs/agencies.md).
Read from the audit chain until now; a column keeps it with the plan. Existing
plans take it from the audit chain (their first plan_submit entry).
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_plan_submitted'
down_revision = '0007_agencies'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('weekly_plans') as batch:
        batch.add_column(sa.Column('submitted_at', sa.Float(), nullable=True))
    op.execute("UPDATE weekly_plans SET submitted_at = (SELECT MIN(a.at) FROM audit_log a "
               "WHERE a.action = 'plan_submit' AND a.target = 'plan:' || CAST(weekly_plans.id AS VARCHAR))")


def downgrade() -> None:
    with op.batch_alter_table('weekly_plans') as batch:
        batch.drop_column('submitted_at')
