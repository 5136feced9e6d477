"""Publish pending outbox rows to Kafka, then mark them published.

A row is marked only after Kafka acknowledged it, so a crash between the two re-publishes the
batch (same event ids: consumers deduplicate), and nothing is ever lost.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from arena.persistence.tables import OutboxRow

log = logging.getLogger(__name__)

# One relay at a time keeps per-arena order trivially; the lock is released with the transaction.
RELAY_LOCK_KEY = 0x0A7E_0B0C


class Publisher(Protocol):
    def publish(self, key: str, value: dict[str, Any], headers: dict[str, str]) -> None: ...

    def flush(self) -> None:
        """Block until every published message is acknowledged; raise if any failed."""


def relay_pending(session: Session, publisher: Publisher, *, batch_size: int) -> int:
    """Publish up to `batch_size` pending rows in id order; return how many were published."""
    if not session.scalar(select(func.pg_try_advisory_xact_lock(RELAY_LOCK_KEY))):
        session.rollback()
        return 0
    rows = session.scalars(
        select(OutboxRow)
        .where(OutboxRow.published_at.is_(None))
        .order_by(OutboxRow.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    try:
        for row in rows:
            publisher.publish(str(row.aggregate_id), row.envelope, envelope_headers(row.envelope))
        publisher.flush()
    except Exception:
        session.rollback()
        raise
    published_at = datetime.now(UTC)
    for row in rows:
        row.published_at = published_at
    session.commit()
    if rows:
        log.info("published %d outbox event(s), last outbox id %d", len(rows), rows[-1].id)
    return len(rows)


def envelope_headers(envelope: dict[str, Any]) -> dict[str, str]:
    """Kafka headers let consumers route and trace without parsing the value."""
    return {
        "eventType": str(envelope["eventType"]),
        "eventId": str(envelope["eventId"]),
        "schemaVersion": str(envelope["schemaVersion"]),
        "correlationId": str(envelope["correlationId"]),
    }
