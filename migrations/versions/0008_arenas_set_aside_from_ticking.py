"""arenas whose tick failed are set aside from ticking, with the reason and since when

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 00:00:00.000000

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("arenas", sa.Column("tick_failure", sa.Text(), nullable=True))
    op.add_column("arenas", sa.Column("tick_failed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_arenas_set_aside",
        "arenas",
        ["tick_failed_at"],
        postgresql_where=sa.text("tick_failure IS NOT NULL"),
    )


def downgrade():
    op.drop_index("ix_arenas_set_aside", table_name="arenas")
    op.drop_column("arenas", "tick_failed_at")
    op.drop_column("arenas", "tick_failure")
