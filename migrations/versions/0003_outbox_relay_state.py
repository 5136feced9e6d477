"""outbox relay: attempts, backoff, dead letters, counters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 08:29:44.740798

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "outbox_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "outbox_dead_letters",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.UUID(), nullable=False),
        sa.Column("aggregate_version", sa.Integer(), nullable=False),
        sa.Column("envelope", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "dead_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox_dead_letters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_dead_letters_aggregate_id"), ["aggregate_id"], unique=False
        )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "next_attempt_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("now()"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_outbox_pending_by_arena",
            ["aggregate_id", "aggregate_version"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
        )
        batch_op.create_index("ix_outbox_published_at", ["published_at"], unique=False)

    op.create_check_constraint("attempts_not_negative", "outbox", "attempts >= 0")
    op.execute(
        "INSERT INTO outbox_counters (name, value)"
        " SELECT 'published', count(*) FROM outbox WHERE published_at IS NOT NULL"
    )


def downgrade():
    op.drop_constraint("attempts_not_negative", "outbox", type_="check")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_published_at")
        batch_op.drop_index(
            "ix_outbox_pending_by_arena", postgresql_where=sa.text("published_at IS NULL")
        )
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")

    with op.batch_alter_table("outbox_dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_dead_letters_aggregate_id"))

    op.drop_table("outbox_dead_letters")
    op.drop_table("outbox_counters")
