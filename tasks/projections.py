"""Projection tasks: apply a batch of one arena's events to the Redis read model.

Transient failures (Redis away, an event ahead of its predecessor) are retried with exponential
backoff and jitter, a bounded number of times. Poison events, and events whose retries run out,
go to the DLQ topic and stall their arena: its later events are parked, never applied past the
gap, until `flask dlq replay`. Other arenas are unaffected.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from flask import current_app

from arena.messaging.consumer import ReceivedEvent
from arena.messaging.publishers import discard_publisher, publisher_for
from arena.readmodel.projection import POISON, RETRYABLE, apply_received, dead_letter
from tasks.celery_app import PROJECT_TASK

# Long enough (about 4 minutes) to outlast a task abandoned by a killed worker coming back
# after CELERY_VISIBILITY_TIMEOUT_SECONDS, so its arena's later events wait for it.
log = logging.getLogger(__name__)

MAX_RETRIES = 16
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 30.0


def _backoff(retries: int) -> float:
    """Exponential, capped, with jitter: 0.2 s, 0.4 s, 0.8 s … 30 s, each times [0.5, 1)."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2**retries) * random.uniform(0.5, 1.0)


@shared_task(bind=True, name=PROJECT_TASK, max_retries=MAX_RETRIES)
def project_events(
    self: Task, events: list[dict[str, Any]], first_failure_at: str | None = None
) -> dict[str, int]:
    """Apply the events in order; an applied or parked event is a no-op when redelivered."""
    views = current_app.extensions["arena_views"]
    outcomes: Counter[str] = Counter()
    for received in (ReceivedEvent(**event) for event in events):
        try:
            outcomes[apply_received(views, received)] += 1
            continue
        except POISON as error:
            failure = error
        except RETRYABLE as error:
            first_failure_at = first_failure_at or datetime.now(UTC).isoformat()
            if self.request.retries < self.max_retries:
                raise self.retry(
                    exc=error,
                    countdown=_backoff(self.request.retries),
                    kwargs={"events": events, "first_failure_at": first_failure_at},
                ) from error
            failure = error
        _dead_letter(self, received, failure, first_failure_at)
        outcomes["dead-lettered"] += 1
    log.info(
        "arena %s: %s",
        events[0].get("key") if events else "?",
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())),
    )
    return dict(outcomes)


def _dead_letter(
    task: Task, received: ReceivedEvent, error: Exception, first_failure_at: str | None
) -> None:
    settings = current_app.extensions["settings"]
    try:
        dead_letter(
            current_app.extensions["arena_views"],
            publisher_for(settings, settings.kafka_dlq_topic),
            received,
            error,
            attempts=task.request.retries + 1,
            first_failure_at=first_failure_at,
        )
    except Exception as unavailable:  # Kafka or Redis away: never drop the event
        discard_publisher(settings, settings.kafka_dlq_topic)
        raise task.retry(
            exc=unavailable, countdown=MAX_RETRY_SECONDS, max_retries=None
        ) from unavailable
