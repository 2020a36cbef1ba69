"""hazards, hazard events and photos, self-inspections, daily scores; users bound to an enterprise

Revision ID: 0003_hazards
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_hazards'
down_revision = '0004_stream_marks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('enterprise_id', sa.String(length=32), nullable=True))

    op.create_table('hazards',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('street_id', sa.String(length=32), nullable=True),
    sa.Column('grid_id', sa.String(length=32), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('found_by', sa.String(length=16), nullable=False),
    sa.Column('finder_id', sa.String(length=64), nullable=True),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('deadline', sa.Float(), nullable=True),
    sa.Column('reported_at', sa.Float(), nullable=False),
    sa.Column('assigned_at', sa.Float(), nullable=True),
    sa.Column('rectified_at', sa.Float(), nullable=True),
    sa.Column('accepted_at', sa.Float(), nullable=True),
    sa.Column('accept_method', sa.String(length=16), nullable=True),
    sa.Column('closed_at', sa.Float(), nullable=True),
    sa.Column('send_backs', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hazards', schema=None) as batch_op:
        for col in ('enterprise_id', 'street_id', 'grid_id', 'state', 'deadline', 'reported_at'):
            batch_op.create_index(batch_op.f(f'ix_hazards_{col}'), [col], unique=False)

    op.create_table('hazard_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hazard_id', sa.Integer(), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['hazard_id'], ['hazards.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hazard_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hazard_events_hazard_id'), ['hazard_id'], unique=False)

    op.create_table('hazard_photos',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hazard_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=16), nullable=False),
    sa.Column('storage_key', sa.String(length=200), nullable=False),
    sa.Column('thumb_key', sa.String(length=200), nullable=True),
    sa.Column('content_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=False),
    sa.Column('uploaded_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['hazard_id'], ['hazards.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hazard_photos', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hazard_photos_hazard_id'), ['hazard_id'], unique=False)

    op.create_table('self_inspections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('enterprise_id', sa.String(length=32), nullable=False),
    sa.Column('submitted_at', sa.Float(), nullable=False),
    sa.Column('submitted_by', sa.String(length=64), nullable=False),
    sa.Column('items', sa.JSON(), nullable=True),
    sa.Column('hazards_found', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['enterprise_id'], ['enterprises.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('self_inspections', schema=None) as batch_op:
        batch_op.create_index('ix_self_inspections_enterprise_at', ['enterprise_id', 'submitted_at'], unique=False)

    op.create_table('scores',
    sa.Column('date', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('subject_id', sa.String(length=32), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('parts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('date', 'kind', 'subject_id')
    )
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.create_index('ix_scores_kind_subject_date', ['kind', 'subject_id', 'date'], unique=False)

    op.create_table('score_runs',
    sa.Column('date', sa.String(length=10), nullable=False),
    sa.Column('ran_at', sa.Float(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('date')
    )


def downgrade() -> None:
    op.drop_table('score_runs')
    with op.batch_alter_table('scores', schema=None) as batch_op:
        batch_op.drop_index('ix_scores_kind_subject_date')
    op.drop_table('scores')
    with op.batch_alter_table('self_inspections', schema=None) as batch_op:
        batch_op.drop_index('ix_self_inspections_enterprise_at')
    op.drop_table('self_inspections')
    op.drop_table('hazard_photos')
    op.drop_table('hazard_events')
    op.drop_table('hazards')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('enterprise_id')
