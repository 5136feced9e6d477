"""index pending rows by next attempt

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:34:22.960210

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending_next_attempt",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
        )


def downgrade():
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_pending_next_attempt", postgresql_where=sa.text("published_at IS NULL")
        )
