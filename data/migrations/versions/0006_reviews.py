"""remote review: body-camera streams linked to visits, reviewers' comments and verdicts;
online adjudication: a disputed hazard's discussion thread and decision, the hazard's advice

Revision ID: 0006_reviews
Revises: 0003_hazards
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_reviews'
down_revision = '0003_hazards'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('streams',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('inspector_id', sa.String(length=32), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('hls_url', sa.Text(), nullable=True),
    sa.Column('whep_url', sa.Text(), nullable=True),
    sa.Column('recording_url', sa.Text(), nullable=True),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('ended_at', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('msg_id', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['inspector_id'], ['inspectors.id'], ),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('streams', schema=None) as batch_op:
        batch_op.create_index('ix_streams_inspector_started', ['inspector_id', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_streams_visit_id'), ['visit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_streams_state'), ['state'], unique=False)

    op.create_table('visit_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('stream_id', sa.Integer(), nullable=True),
    sa.Column('at_s', sa.Float(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('verdict', sa.String(length=16), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('visit_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_reviews_visit_id'), ['visit_id'], unique=False)


    op.create_table('hazard_discussions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hazard_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('decision', sa.JSON(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.String(length=32), nullable=True),
    sa.Column('at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['hazard_id'], ['hazards.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('hazard_discussions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_hazard_discussions_hazard_id'), ['hazard_id'], unique=False)
    with op.batch_alter_table('hazards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('advice', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('hazards', schema=None) as batch_op:
        batch_op.drop_column('advice')
    op.drop_table('hazard_discussions')
    op.drop_table('visit_reviews')
    op.drop_table('streams')
