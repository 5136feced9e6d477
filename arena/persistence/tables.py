"""The whole schema of the write model and the transactional outbox, described once.

`db.metadata` holds every table the migrations (migrations/versions/) make, with its columns,
types, nullability, server defaults, indexes and constraints: tests/integration/test_schema.py
runs the migrations on a fresh database and fails on any difference alembic's autogenerate
comparison finds, so a migration and these classes change together (`flask db migrate` writes a
migration from a change made here first).

The command path and the relay run SQL text of their own (arena/persistence/, arena/outbox/),
not statements built from these classes; the read model's verifier reads `arenas`, `players`
and `arena_boards` through them. A class no code uses still describes its table for that
comparison.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from arena.extensions import Base, db

# Flask-SQLAlchemy builds `db.Model` at run time from `Base`; type checkers see `Base`.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

STATUSES = "('PENDING', 'RUNNING', 'PAUSED', 'FINISHED')"


class ArenaRow(Model):
    """An arena: the aggregate's state, and the tick scheduler's columns."""

    __tablename__ = "arenas"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status_known"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("tick >= 0", name="tick_not_negative"),
        Index(
            "ix_arenas_ticks_due",
            "next_tick_at",
            postgresql_where=text("status = 'RUNNING'"),
        ),
        # A look at the arenas set aside reads only them.
        Index(
            "ix_arenas_set_aside",
            "tick_failed_at",
            postgresql_where=text("tick_failure IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    tick: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_tick_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Not the aggregate's: the tick scheduler's lease, so one arena has one tick task in flight.
    tick_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The scheduler's too: why the arena's tick failed and since when; set, it is not ticked
    # until `flask ticks resume`.
    tick_failure: Mapped[str | None] = mapped_column(Text)
    tick_failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BoardRow(Model):
    """An arena's board after its latest tick (docs/simulation.md, "Encodings")."""

    __tablename__ = "arena_boards"

    arena_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("arenas.id", ondelete="CASCADE"), primary_key=True
    )
    tick: Mapped[int] = mapped_column(BigInteger)
    board: Mapped[bytes] = mapped_column(LargeBinary)  # canonical encoding in an LZ4 frame
    board_hash: Mapped[str] = mapped_column(String(64))


class PendingActionRow(Model):
    """A submitted action waiting for its tick; the tick that applies (or rejects) it deletes it.
    Written and read by SQL text (arena/persistence/boards_and_actions.py): this class describes
    the table for the schema comparison."""

    __tablename__ = "pending_actions"
    __table_args__ = (Index("ix_pending_actions_due", "arena_id", "apply_at_tick", "seq"),)

    action_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    arena_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("arenas.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(
        BigInteger, server_default=text("nextval('pending_actions_seq')")
    )
    player_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    action_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    apply_at_tick: Mapped[int] = mapped_column(BigInteger)


class PlayerRow(Model):
    """A player of one arena, found by the hash of its bearer token."""

    __tablename__ = "players"
    __table_args__ = (
        CheckConstraint("role IN ('ADMIN', 'PLAYER')", name="role_known"),
        Index(
            "uq_players_arena_display_name",
            "arena_id",
            func.lower(text("display_name")),
            unique=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    arena_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("arenas.id", ondelete="CASCADE"), index=True
    )
    display_name: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(8))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxRow(Model):
    """One event waiting for (or done with) publication to Kafka, written with its state change.
    Written and read by SQL text (arena/persistence/sql_unit_of_work.py, arena/outbox/): this
    class describes the table for the schema comparison."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("aggregate_id", "aggregate_version", name="uq_outbox_aggregate_version"),
        Index("ix_outbox_pending", "id", postgresql_where=text("published_at IS NULL")),
        # "Is an earlier event of this arena still pending?" — asked for every claimed row.
        Index(
            "ix_outbox_pending_by_arena",
            "aggregate_id",
            "aggregate_version",
            postgresql_where=text("published_at IS NULL"),
        ),
        Index("ix_outbox_published_at", "published_at"),
        # Finds the few backing-off rows the claim must not overtake, without scanning the
        # whole backlog on every batch (see docs/benchmarks.md).
        Index(
            "ix_outbox_pending_next_attempt",
            "next_attempt_at",
            postgresql_where=text("published_at IS NULL"),
        ),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    aggregate_version: Mapped[int] = mapped_column(Integer)
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str | None] = mapped_column(Text)


class HeldOutboxRow(Model):
    """An outbox row that failed too often, held back with its arena's later rows until an
    operator releases it (`flask outbox release`). Not the Kafka DLQ: that is the read side's.
    Written and read by SQL text (arena/outbox/): this class describes the table for the schema
    comparison."""

    __tablename__ = "outbox_held"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the original outbox id
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    aggregate_version: Mapped[int] = mapped_column(Integer)
    envelope: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxCounterRow(Model):
    """Running totals that survive the retention purge of published rows. Written and read by
    SQL text (arena/outbox/): this class describes the table for the schema comparison."""

    __tablename__ = "outbox_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class IdempotencyKeyRow(Model):
    """A command's reply, kept so a retried request with the same Idempotency-Key replays it.

    The key is stored only as a hash and the reply only sealed with the key (see
    arena/persistence/idempotency_keys.py): the table never holds a usable bearer token. Written
    and read by SQL text there: this class describes the table for the schema comparison.
    """

    __tablename__ = "idempotency_keys"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    salt: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
