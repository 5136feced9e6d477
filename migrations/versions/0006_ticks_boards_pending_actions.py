"""ticks: when each running arena's next tick is due, its board, and actions waiting for a tick

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:30:00.000000

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("arenas", sa.Column("next_tick_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "arenas", sa.Column("tick_lease_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_arenas_ticks_due",
        "arenas",
        ["next_tick_at"],
        postgresql_where=sa.text("status = 'RUNNING'"),
    )
    # Arenas already running when this lands tick from now on.
    op.execute("UPDATE arenas SET next_tick_at = now() WHERE status = 'RUNNING'")
    op.create_table(
        "arena_boards",
        sa.Column("arena_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("tick", sa.BigInteger(), nullable=False),
        sa.Column("board", sa.LargeBinary(), nullable=False),
        sa.Column("board_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["arena_id"], ["arenas.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("arena_id"),
    )
    op.execute("CREATE SEQUENCE pending_actions_seq")
    op.create_table(
        "pending_actions",
        sa.Column("action_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("arena_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger(),
            server_default=sa.text("nextval('pending_actions_seq')"),
            nullable=False,
        ),
        sa.Column("player_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("action_type", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("apply_at_tick", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["arena_id"], ["arenas.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("action_id"),
    )
    op.create_index(
        "ix_pending_actions_due", "pending_actions", ["arena_id", "apply_at_tick", "seq"]
    )


def downgrade():
    op.drop_index("ix_pending_actions_due", table_name="pending_actions")
    op.drop_table("pending_actions")
    op.execute("DROP SEQUENCE pending_actions_seq")
    op.drop_table("arena_boards")
    op.drop_index("ix_arenas_ticks_due", table_name="arenas")
    op.drop_column("arenas", "tick_lease_until")
    op.drop_column("arenas", "next_tick_at")
