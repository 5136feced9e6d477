"""outbox rows that failed too often are "held", not "dead letters" (the Kafka DLQ's name)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 06:10:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.rename_table("outbox_dead_letters", "outbox_held")
    op.alter_column("outbox_held", "dead_at", new_column_name="held_at")
    op.execute(
        "ALTER INDEX ix_outbox_dead_letters_aggregate_id RENAME TO ix_outbox_held_aggregate_id"
    )
    op.execute(
        "ALTER TABLE outbox_held RENAME CONSTRAINT outbox_dead_letters_pkey TO outbox_held_pkey"
    )
    op.execute(
        "ALTER TABLE outbox_held RENAME CONSTRAINT outbox_dead_letters_event_id_key"
        " TO outbox_held_event_id_key"
    )
    op.execute("ALTER SEQUENCE outbox_dead_letters_id_seq RENAME TO outbox_held_id_seq")


def downgrade():
    op.execute("ALTER SEQUENCE outbox_held_id_seq RENAME TO outbox_dead_letters_id_seq")
    op.execute(
        "ALTER TABLE outbox_held RENAME CONSTRAINT outbox_held_event_id_key"
        " TO outbox_dead_letters_event_id_key"
    )
    op.execute(
        "ALTER TABLE outbox_held RENAME CONSTRAINT outbox_held_pkey TO outbox_dead_letters_pkey"
    )
    op.execute(
        "ALTER INDEX ix_outbox_held_aggregate_id RENAME TO ix_outbox_dead_letters_aggregate_id"
    )
    op.alter_column("outbox_held", "held_at", new_column_name="dead_at")
    op.rename_table("outbox_held", "outbox_dead_letters")
