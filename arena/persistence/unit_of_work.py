"""The unit of work: one PostgreSQL transaction holding state changes AND their outbox rows."""

from __future__ import annotations

import uuid
from types import TracebackType

from sqlalchemy.orm import Session

from arena.domain.events import EventEnvelope
from arena.persistence.repository import ArenaRepository
from arena.persistence.tables import OutboxRow


class UnitOfWork:
    """Use as `with UnitOfWork(session, correlation_id) as uow: ...; uow.commit()`.

    Leaving the block without `commit()` rolls everything back, so a failed command writes nothing.
    """

    def __init__(self, session: Session, *, correlation_id: str, causation_id: str) -> None:
        self._session = session
        self._correlation_id = correlation_id
        self._causation_id = causation_id
        self.arenas = ArenaRepository(session)

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
        for arena in self.arenas.seen:
            for event in arena.collect_events():
                envelope = EventEnvelope.wrap(
                    event, correlation_id=self._correlation_id, causation_id=self._causation_id
                )
                self._session.add(_outbox_row(envelope))
        self._session.commit()


def _outbox_row(envelope: EventEnvelope) -> OutboxRow:
    return OutboxRow(
        event_id=uuid.UUID(envelope.event_id),
        event_type=envelope.event_type,
        aggregate_id=uuid.UUID(envelope.aggregate_id),
        aggregate_version=envelope.aggregate_version,
        envelope=envelope.to_dict(),
    )
