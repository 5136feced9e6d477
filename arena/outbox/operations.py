"""What operators do with the outbox: look at it, requeue dead letters, prune published rows."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_METRICS = text("""
SELECT
    (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS backlog,
    (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)
       FROM outbox WHERE published_at IS NULL) AS oldest_pending_age_seconds,
    (SELECT count(*) FROM outbox_dead_letters) AS dead_letters,
    (SELECT count(DISTINCT aggregate_id) FROM outbox_dead_letters) AS held_arenas,
    (SELECT count(*) FROM outbox WHERE published_at > now() - interval '1 minute')
        AS published_last_minute,
    (SELECT value FROM outbox_counters WHERE name = 'published') AS published_total
""")

_REQUEUE = text("""
WITH revived AS (
    DELETE FROM outbox_dead_letters
    WHERE (CAST(:arena_id AS uuid) IS NULL OR aggregate_id = CAST(:arena_id AS uuid))
    RETURNING id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at,
              last_error
)
INSERT INTO outbox
    (id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at, attempts,
     next_attempt_at, last_error)
SELECT id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at, 0,
       now(), last_error
FROM revived
RETURNING id
""")

_DEAD_LETTERS = text("""
SELECT id, aggregate_id, aggregate_version, event_type, attempts, last_error, dead_at
FROM outbox_dead_letters
WHERE CAST(:arena_id AS uuid) IS NULL OR aggregate_id = CAST(:arena_id AS uuid)
ORDER BY aggregate_id, aggregate_version
""")

_PRUNE = text("""
DELETE FROM outbox
WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at < now() - make_interval(secs => :older_than_seconds)
    ORDER BY published_at
    LIMIT :batch_size
    FOR UPDATE SKIP LOCKED)
""")


@dataclass(frozen=True, slots=True)
class OutboxMetrics:
    backlog: int
    oldest_pending_age_seconds: float
    dead_letters: int
    held_arenas: int
    published_last_minute: int
    published_total: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outbox_metrics(session: Session) -> OutboxMetrics:
    row = session.execute(_METRICS).one()
    session.rollback()
    return OutboxMetrics(
        backlog=row.backlog,
        oldest_pending_age_seconds=round(float(row.oldest_pending_age_seconds), 3),
        dead_letters=row.dead_letters,
        held_arenas=row.held_arenas,
        published_last_minute=row.published_last_minute,
        published_total=row.published_total or 0,
    )


def dead_letters(session: Session, arena_id: uuid.UUID | None = None) -> list[Any]:
    rows = session.execute(_DEAD_LETTERS, {"arena_id": arena_id}).all()
    session.rollback()
    return rows


def requeue(session: Session, arena_id: uuid.UUID | None = None) -> int:
    """Put dead letters (of one arena, or all) back in the outbox, at their original place."""
    revived = session.execute(_REQUEUE, {"arena_id": arena_id}).all()
    session.commit()
    return len(revived)


def prune_published(session: Session, *, older_than_seconds: float, batch_size: int) -> int:
    """Delete published rows older than the retention period, in short transactions."""
    pruned = 0
    while True:
        deleted = session.execute(
            _PRUNE, {"older_than_seconds": older_than_seconds, "batch_size": batch_size}
        ).rowcount
        session.commit()
        pruned += deleted
        if deleted < batch_size:
            return pruned
