"""Applying received events to the read model, and dead-lettering the ones that cannot be.

Kept apart from Celery so the same code serves the projection tasks, `flask dlq replay` and
`flask projections rebuild`.
"""

from __future__ import annotations

import json
import logging
import traceback as tracebacks

from redis.exceptions import RedisError

from arena.domain.events import EventEnvelope
from arena.messaging.consumer import ReceivedEvent
from arena.messaging.dead_letter import dead_letter_record
from arena.messaging.ports import Publisher
from arena.readmodel.store import ArenaViews, EventOutOfOrder, Outcome

log = logging.getLogger(__name__)

# Worth retrying: the store is away, or the event's predecessor has not landed yet.
RETRYABLE: tuple[type[Exception], ...] = (RedisError, EventOutOfOrder)
# Never worth retrying: not JSON, not an envelope, an unknown type or schema version, or a
# payload the projection rejects (all ValueErrors).
POISON: tuple[type[Exception], ...] = (ValueError,)


def parse(received: ReceivedEvent) -> EventEnvelope:
    return EventEnvelope.from_dict(json.loads(received.value))


def apply_received(
    views: ArenaViews, received: ReceivedEvent, *, generation: str | None = None
) -> Outcome:
    """Apply to `generation`, or to the live one and any generation a rebuild is filling."""
    envelope = parse(received)
    outcome = views.apply(envelope, generation=generation)
    if generation is None and outcome is not Outcome.PARKED:
        views.also_apply_to_building(envelope)
    return outcome


def dead_letter(
    views: ArenaViews,
    dlq: Publisher,
    received: ReceivedEvent,
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
    delivery = dlq.publish(received.key or "", record, {"errorClass": type(error).__name__})
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
        views.stall(
            received.key,
            version=_version_of(received),
            raw_event=received.value,
            reason=f"{type(error).__name__}: {error}",
        )


def _version_of(received: ReceivedEvent) -> int | None:
    try:
        return parse(received).aggregate_version
    except ValueError:
        return None
