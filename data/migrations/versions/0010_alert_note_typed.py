"""alert_events.note_typed: whether a history note is what a person typed

Revision ID: 0010_alert_note_typed
Revises: 0009_unit_name_en

The screens rewrite the system's own notes ("sent I0103", "takeover from I1 by I2",
"last will; last seen ...") through the catalogue, and showed a typed note worded like
one of them as if the system had written it: a dispatcher's note "sent I0103" on an
acknowledgement read as a dispatch. ``note_typed`` is true for what a person typed
(shown as typed), false for the system's notes; rows written before this revision
have none (not known: read as before).
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_alert_note_typed'
down_revision = '0009_unit_name_en'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alert_events') as batch:
        batch.add_column(sa.Column('note_typed', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alert_events') as batch:
        batch.drop_column('note_typed')
