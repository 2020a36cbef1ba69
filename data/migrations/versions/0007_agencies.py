"""third-party safety-service agencies: service contracts and the bureau's complaints

Revision ID: 0007_agencies
Revises: 0006_reviews
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_agencies'
down_revision = '0006_reviews'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('service_contracts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agency_id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('start_date', sa.String(length=10), nullable=False),
    sa.Column('end_date', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['units.id'], ),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('service_contracts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_contracts_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_service_contracts_enterprise_id'), ['enterprise_id'], unique=False)

    op.create_table('agency_complaints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('agency_id', sa.String(length=32), nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['units.id'], ),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('agency_complaints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agency_complaints_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agency_complaints_recorded_at'), ['recorded_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('agency_complaints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agency_complaints_recorded_at'))
        batch_op.drop_index(batch_op.f('ix_agency_complaints_agency_id'))
    op.drop_table('agency_complaints')
    with op.batch_alter_table('service_contracts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_contracts_enterprise_id'))
        batch_op.drop_index(batch_op.f('ix_service_contracts_agency_id'))
    op.drop_table('service_contracts')
