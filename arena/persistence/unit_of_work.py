"""The unit of work: one PostgreSQL transaction holding state changes AND their outbox rows."""

from __future__ import annotations

import uuid
from datetime import timedelta
from types import TracebackType

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from arena.domain.events import DomainEvent, EventEnvelope
from arena.outbox.wakeups import notify_relay
from arena.persistence.errors import ConcurrentUpdate
from arena.persistence.idempotency import IdempotencyStore
from arena.persistence.repository import ArenaRepository
from arena.persistence.tables import OutboxRow

OUTBOX = OutboxRow.__table__


class UnitOfWork:
    """Use as `with UnitOfWork(...) as uow: ...; uow.commit()`.

    Leaving the block without `commit()` rolls everything back, so a failed command writes nothing.
    """

    def __init__(
        self,
        session: Session,
        *,
        correlation_id: str,
        causation_id: str,
        idempotency_retention: timedelta,
        nudge_relay: bool = True,
    ) -> None:
        self._session = session
        self._nudge_relay = nudge_relay
        self._correlation_id = correlation_id
        self._causation_id = causation_id
        self.arenas = ArenaRepository(session)
        self.idempotency = IdempotencyStore(session, idempotency_retention)

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._session.rollback()

    def commit(self) -> None:
        """Write changed aggregates and their events; a lost race raises `ConcurrentUpdate`."""
        try:
            self.arenas.save_changes()
            rows = [
                self._outbox_row(arena_event)
                for arena in self.arenas.seen
                for arena_event in arena.collect_events()
            ]
            if rows:
                self._session.execute(insert(OUTBOX), rows)
                if self._nudge_relay:
                    notify_relay(self._session)
            self._session.commit()
        except IntegrityError as error:
            # A unique constraint caught a concurrent writer (arena version, display name, key).
            self._session.rollback()
            raise ConcurrentUpdate(str(error.orig)) from error

    def _outbox_row(self, event: DomainEvent) -> dict[str, object]:
        envelope = EventEnvelope.wrap(
            event, correlation_id=self._correlation_id, causation_id=self._causation_id
        )
        return {
            "event_id": uuid.UUID(envelope.event_id),
            "event_type": envelope.event_type,
            "aggregate_id": uuid.UUID(envelope.aggregate_id),
            "aggregate_version": envelope.aggregate_version,
            "envelope": envelope.to_dict(),
        }
