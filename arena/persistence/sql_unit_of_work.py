"""The unit of work: one PostgreSQL transaction holding state changes AND their outbox rows
(and, for ticks, the board and the actions it settles)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import TracebackType

import psycopg
from sqlalchemy.engine import Engine

from arena.domain.envelope import EventEnvelope
from arena.domain.events import DomainEvent
from arena.logs import log_event
from arena.outbox.wakeups import OUTBOX_CHANNEL
from arena.persistence.boards_and_actions import SqlBoards, SqlPendingActions
from arena.persistence.connections import pooled_connection
from arena.persistence.idempotency_keys import IdempotencyStore, ReplySealer
from arena.persistence.repository import ArenaRepository
from arena.services.unit_of_work import ConcurrentUpdate, Provenance

log = logging.getLogger(__name__)

# Any number of events in one statement; the envelope is stored as the JSON text built here. The
# arrays go in binary (%b): as text, psycopg quotes and PostgreSQL unquotes every character of
# every envelope, four times the client's CPU for a tick's events.
_INSERT_EVENTS = """
INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, envelope)
SELECT event_id, event_type, aggregate_id, aggregate_version, envelope::jsonb
  FROM unnest(%b::uuid[], %b::text[], %b::uuid[], %b::int[], %b::text[])
    AS events(event_id, event_type, aggregate_id, aggregate_version, envelope)
"""
# The same, plus the relay's wake-up notice, in the same round trip. PostgreSQL delivers the
# notice only if the transaction commits (a data-modifying WITH always runs to completion).
_INSERT_EVENTS_AND_NOTIFY = f"""
WITH written AS ({_INSERT_EVENTS} RETURNING 1)
SELECT pg_notify('{OUTBOX_CHANNEL}', '') WHERE EXISTS (SELECT FROM written)
"""


class SqlUnitsOfWork:
    """Opens a `SqlUnitOfWork` on a pooled connection, handed back when the unit ends."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        *,
        idempotency_retention: timedelta,
        sealer: ReplySealer,
        nudge_relay: bool,
    ) -> None:
        self._engine = engine  # looked up late: Flask-SQLAlchemy builds it in an app context
        self._idempotency_retention = idempotency_retention
        self._sealer = sealer
        self._nudge_relay = nudge_relay

    @contextmanager
    def begin(self, provenance: Provenance) -> Iterator[SqlUnitOfWork]:
        with (
            pooled_connection(self._engine()) as connection,
            SqlUnitOfWork(
                connection,
                provenance,
                idempotency_retention=self._idempotency_retention,
                sealer=self._sealer,
                nudge_relay=self._nudge_relay,
            ) as unit,
        ):
            yield unit


class SqlUnitOfWork:
    """One PostgreSQL transaction: `with SqlUnitOfWork(...) as uow: ...; uow.commit()`.

    Leaving the block without `commit()` rolls everything back, so a failed command writes nothing.
    """

    def __init__(
        self,
        connection: psycopg.Connection,
        provenance: Provenance,
        *,
        idempotency_retention: timedelta,
        sealer: ReplySealer,
        nudge_relay: bool = True,
    ) -> None:
        self._connection = connection
        self._insert_events = _INSERT_EVENTS_AND_NOTIFY if nudge_relay else _INSERT_EVENTS
        self._provenance = provenance
        self.arenas = ArenaRepository(connection)
        self.idempotency = IdempotencyStore(connection, idempotency_retention, sealer)
        self.boards = SqlBoards(connection)
        self.pending_actions = SqlPendingActions(connection)

    def __enter__(self) -> SqlUnitOfWork:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._connection.rollback()

    def commit(self) -> None:
        """Write changed aggregates and their events; a lost race raises `ConcurrentUpdate`."""
        try:
            self.arenas.save_changes()
            envelopes = [
                self._envelope(arena_event)
                for arena in self.arenas.seen
                for arena_event in arena.collect_events()
            ]
            if envelopes:
                self._connection.execute(self._insert_events, _columns(envelopes))
            self._connection.commit()
        except psycopg.IntegrityError as error:
            # A unique constraint caught a concurrent writer (arena version, display name, key).
            self._connection.rollback()
            raise ConcurrentUpdate(str(error)) from error
        for envelope in envelopes:
            log_event(
                log,
                "recorded",
                envelope.event_type,
                envelope.aggregate_id,
                envelope.aggregate_version,
                envelope.correlation_id,
            )

    def _envelope(self, event: DomainEvent) -> EventEnvelope:
        return EventEnvelope.wrap(
            event,
            correlation_id=self._provenance.correlation_id,
            causation_id=self._provenance.causation_id,
        )


def _columns(envelopes: list[EventEnvelope]) -> tuple[list[object], ...]:
    """The envelopes as the column arrays `_INSERT_EVENTS` unnests."""
    return (
        [envelope.event_id for envelope in envelopes],
        [envelope.event_type for envelope in envelopes],
        [envelope.aggregate_id for envelope in envelopes],
        [envelope.aggregate_version for envelope in envelopes],
        [json.dumps(envelope.to_dict(), separators=(",", ":")) for envelope in envelopes],
    )
