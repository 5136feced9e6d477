"""What operators do with the outbox: look at it, release held rows, prune published rows."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text

from arena.extensions import AnySession

# Counts stop at COUNT_CAP (a figure at the cap means "at least this many"), so that a look
# costs the same however large the backlog: each reads at most that many index entries.
COUNT_CAP = 100_000

_STATUS = text("""
SELECT
    (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT :cap) AS pending)
        AS backlog,
    -- ids follow creation (released rows keep theirs): the first pending id is the oldest row
    (SELECT EXTRACT(EPOCH FROM now() - created_at) FROM outbox
       WHERE published_at IS NULL ORDER BY id LIMIT 1) AS oldest_pending_age_seconds,
    (SELECT count(*) FROM (SELECT 1 FROM outbox_held LIMIT :cap) AS held) AS held,
    (SELECT count(DISTINCT aggregate_id) FROM (SELECT aggregate_id FROM outbox_held LIMIT :cap)
       AS held) AS held_arenas,
    (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at > now() - interval '1 minute'
       LIMIT :cap) AS recent) AS published_last_minute,
    (SELECT value FROM outbox_counters WHERE name = 'published') AS published_total
""")

_RELEASE = text("""
WITH released AS (
    DELETE FROM outbox_held
    WHERE (CAST(:arena_id AS uuid) IS NULL OR aggregate_id = CAST(:arena_id AS uuid))
    RETURNING id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at,
              last_error
)
INSERT INTO outbox
    (id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at, attempts,
     next_attempt_at, last_error)
SELECT id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at, 0,
       now(), last_error
FROM released
RETURNING id
""")

_HELD = text("""
SELECT id, aggregate_id, aggregate_version, event_type, attempts, last_error, held_at
FROM outbox_held
WHERE CAST(:arena_id AS uuid) IS NULL OR aggregate_id = CAST(:arena_id AS uuid)
ORDER BY aggregate_id, aggregate_version
""")

_WHEREABOUTS = text("""
SELECT wanted.arena_id, wanted.version,
       o.event_type, o.published_at, o.attempts, o.last_error,
       EXTRACT(EPOCH FROM now() - o.published_at) AS published_seconds_ago,
       EXTRACT(EPOCH FROM o.next_attempt_at - now()) AS next_attempt_in_seconds,
       h.event_type AS held_event_type, h.attempts AS held_attempts, h.last_error AS held_error
FROM unnest(CAST(:arena_ids AS uuid[]), CAST(:versions AS integer[])) AS wanted(arena_id, version)
LEFT JOIN outbox o ON o.aggregate_id = wanted.arena_id AND o.aggregate_version = wanted.version
LEFT JOIN outbox_held h
       ON h.aggregate_id = wanted.arena_id AND h.aggregate_version = wanted.version
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
class OutboxStatus:
    backlog: int
    oldest_pending_age_seconds: float
    held: int
    held_arenas: int
    published_last_minute: int
    published_total: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outbox_status(session: AnySession) -> OutboxStatus:
    """One statement, one row; every count capped at COUNT_CAP."""
    row = session.execute(_STATUS, {"cap": COUNT_CAP}).one()
    session.rollback()
    return OutboxStatus(
        backlog=row.backlog,
        oldest_pending_age_seconds=round(float(row.oldest_pending_age_seconds or 0), 3),
        held=row.held,
        held_arenas=row.held_arenas,
        published_last_minute=row.published_last_minute,
        published_total=row.published_total or 0,
    )


def held_rows(session: AnySession, arena_id: uuid.UUID | None = None) -> list[Any]:
    rows = list(session.execute(_HELD, {"arena_id": arena_id}).all())
    session.rollback()
    return rows


def whereabouts(session: AnySession, wanted: dict[str, int]) -> dict[str, str]:
    """Where each arena's event of the given version is on the write side, in words.

    `flask verify` asks this for the first event a lagging view lacks, so an operator sees at
    once whether it is still in the outbox (and why), held, or already in Kafka.
    """
    if not wanted:
        return {}
    rows = session.execute(
        _WHEREABOUTS, {"arena_ids": list(wanted), "versions": list(wanted.values())}
    ).all()
    session.rollback()
    return {str(row.arena_id): _describe_whereabouts(row) for row in rows}


def _describe_whereabouts(row: Any) -> str:
    event = f"event v{row.version}"
    if row.held_event_type is not None:
        return (
            f"{event} ({row.held_event_type}) is held in the outbox after "
            f"{row.held_attempts} attempt(s): {row.held_error}; `flask outbox release` sends it"
        )
    if row.event_type is None:
        return f"{event} is no longer in the outbox (published, then pruned)"
    if row.published_at is not None:
        return (
            f"{event} ({row.event_type}) was published to Kafka "
            f"{float(row.published_seconds_ago):.1f} s ago"
        )
    wait = max(0.0, float(row.next_attempt_in_seconds))
    failed = f"; {row.attempts} failed attempt(s), last: {row.last_error}" if row.attempts else ""
    return f"{event} ({row.event_type}) is pending in the outbox, due in {wait:.1f} s{failed}"


def release(session: AnySession, arena_id: uuid.UUID | None = None) -> int:
    """Put held rows (of one arena, or all) back in the outbox, at their original place."""
    released = session.execute(_RELEASE, {"arena_id": arena_id}).all()
    session.commit()
    return len(released)


def prune_published(session: AnySession, *, older_than_seconds: float, batch_size: int) -> int:
    """Delete published rows older than the retention period, in short transactions."""
    pruned = 0
    while True:
        result = session.execute(
            _PRUNE, {"older_than_seconds": older_than_seconds, "batch_size": batch_size}
        )
        deleted: int = result.rowcount  # type: ignore[attr-defined]  # a DELETE's CursorResult
        session.commit()
        pruned += deleted
        if deleted < batch_size:
            return pruned
