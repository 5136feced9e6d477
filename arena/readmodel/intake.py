"""Applying received events to the read model, and dead-lettering the ones that cannot be.

Kept apart from Celery so the same code serves the projection tasks and `flask consume`. Every
event goes into Redis through the one writer (arena/readmodel/writer.py).
"""

from __future__ import annotations

import json
import logging
import traceback as tracebacks
from collections import Counter
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent
from arena.logs import log_event
from arena.messaging.dead_letter import dead_letter_record
from arena.messaging.ports import Publisher
from arena.messaging.records import ReceivedRecord
from arena.readmodel.store import ArenaViews
from arena.readmodel.writer import EventOutOfOrder, Outcome, apply_event, apply_events, stall

log = logging.getLogger(__name__)

# Worth retrying: the store is away, or the event's predecessor has not landed yet.
RETRYABLE: tuple[type[Exception], ...] = (RedisError, EventOutOfOrder)
# Never worth retrying: not JSON, not an envelope, an unknown type or schema version, or a
# payload the projection rejects.
POISON: tuple[type[Exception], ...] = (PoisonEvent,)


def parse(received: ReceivedRecord) -> EventEnvelope:
    return EventEnvelope.from_json(received.value)


def apply_one(views: ArenaViews, received: ReceivedRecord) -> Outcome:
    """Apply one event; raises its `PoisonEvent`, or `EventOutOfOrder` when it must wait."""
    return apply_event(views, parse(received))


@dataclass(slots=True)
class BatchProgress:
    """What a batch did, and what is left: events to take one at a time (a rejected event and
    its arena's later ones, in order) and events that must wait for an earlier version."""

    outcomes: Counter[str] = field(default_factory=Counter)
    one_by_one: list[ReceivedRecord] = field(default_factory=list)
    waiting: list[ReceivedRecord] = field(default_factory=list)


def project_batch(views: ArenaViews, events: list[ReceivedRecord]) -> BatchProgress:
    """Apply each arena's events up to its first rejected one in one batch."""
    progress = BatchProgress()
    rejected_arenas: set[str | None] = set()
    batch: list[tuple[ReceivedRecord, EventEnvelope]] = []
    for received in events:
        if received.key not in rejected_arenas:
            try:
                batch.append((received, parse(received)))
                continue
            except POISON:
                rejected_arenas.add(received.key)
        progress.one_by_one.append(received)
    results = apply_events(views, [envelope for _, envelope in batch])
    for (received, envelope), result in zip(batch, results, strict=True):
        if isinstance(result, Outcome):
            progress.outcomes[result] += 1
            log_event(
                log,
                str(result),
                envelope.event_type,
                envelope.aggregate_id,
                envelope.aggregate_version,
                envelope.correlation_id,
            )
        elif isinstance(result, EventOutOfOrder):
            progress.waiting.append(received)
        else:  # rejected by the projection, or after a rejected one
            progress.one_by_one.append(received)
    progress.one_by_one.sort(key=lambda received: (received.partition, received.offset))
    return progress


def dead_letter(
    views: ArenaViews,
    dlq: Publisher,
    received: ReceivedRecord,
    error: Exception,
    *,
    attempts: int,
    first_failure_at: str | None,
) -> None:
    """Publish the event to the DLQ topic, then stall its arena behind it.

    Raises if Kafka or Redis is away; the caller retries, and a repeated DLQ record carries the
    same original topic, partition and offset.
    """
    trace = "".join(tracebacks.format_exception(error))
    record = dead_letter_record(
        received, error, trace, attempts=attempts, first_failure_at=first_failure_at
    )
    delivery = dlq.publish(
        received.key or "",
        json.dumps(record, separators=(",", ":")).encode(),
        {"errorClass": type(error).__name__},
    )
    dlq.flush()
    delivery.confirm()
    log.error(
        "dead-lettered the event at %s[%d]@%d after %d attempt(s): %r",
        received.topic,
        received.partition,
        received.offset,
        attempts,
        error,
    )
    if received.key:
        stall(
            views,
            received.key,
            version=_version_of(received),
            raw_event=received.value,
            reason=f"{type(error).__name__}: {error}",
        )


def _version_of(received: ReceivedRecord) -> int | None:
    try:
        return parse(received).aggregate_version
    except PoisonEvent:
        return None
