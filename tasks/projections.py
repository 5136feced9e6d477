"""Projection tasks: apply a batch of one arena's events to the Redis read model.

Transient failures (Redis away, an event ahead of its predecessor) are retried with exponential
backoff and jitter for a bounded time. Poison events, and events still failing when that time is
up, go to the DLQ topic and stall their arena: its later events are parked, never applied past the
gap, until `flask dlq replay`. Other arenas are unaffected.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task

from arena import telemetry
from arena.bootstrap import components
from arena.messaging.celery import PROJECT_TASK, RESEND_PROJECTIONS_TASK
from arena.messaging.records import ReceivedRecord
from arena.readmodel.intake import (
    POISON,
    RETRYABLE,
    apply_received,
    dead_letter,
    project_batch,
)
from arena.readmodel.store import EventOutOfOrder

log = logging.getLogger(__name__)

# Long enough to outlast a Redis restart, and a task abandoned by a killed worker coming back
# after CELERY_VISIBILITY_TIMEOUT_SECONDS, so its arena's later events wait for it.
RETRY_FOR_SECONDS = 240.0
FIRST_RETRY_SECONDS = 0.2
MAX_RETRY_SECONDS = 30.0


def longest_retry_wait(visibility_timeout_seconds: float) -> float:
    """The cap on one retry's countdown: at most half the broker's visibility timeout.

    A retry is a message with an ETA that the worker holds unacked until it is due; Redis hands a
    message unacked for longer than the visibility timeout out again, so a longer countdown would
    run the retry twice, and every copy that retries again multiplies.
    """
    return min(MAX_RETRY_SECONDS, visibility_timeout_seconds / 2)


def _backoff(retries: int, longest: float) -> float:
    """Exponential, capped, with jitter: 0.2 s, 0.4 s, 0.8 s … `longest`, each times [0.5, 1)."""
    return min(longest, FIRST_RETRY_SECONDS * 2.0**retries) * random.uniform(0.5, 1.0)


def _arenas_of(events: list[dict[str, Any]], shown: int = 3) -> str:
    """For log lines: the first few arenas (Kafka keys) of a batch, and how many there are."""
    arenas = sorted({event.get("key") or "?" for event in events})
    more = f" and {len(arenas) - shown} more" if len(arenas) > shown else ""
    return ", ".join(arenas[:shown]) + more


def _failing_for(first_failure_at: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(first_failure_at)).total_seconds()


@shared_task(bind=True, name=PROJECT_TASK, max_retries=None)
def project_events(
    self: Task, events: list[dict[str, Any]], first_failure_at: str | None = None
) -> dict[str, int]:
    """Apply the events (many arenas', in order per arena); redelivered ones are no-ops.

    The healthy prefix of every arena goes in one batch. A rejected event is dead-lettered and
    its arena's later events parked behind it, one at a time. Events that must wait for an
    earlier version are retried, alone, with backoff.
    """
    views = components().views
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        progress = project_batch(views, [ReceivedRecord(**event) for event in events])
        outcomes.update(progress.outcomes)
        for received in progress.one_by_one:
            try:
                outcomes[apply_received(views, received)] += 1
            except POISON as error:
                _dead_letter(self, received, error, first_failure_at)
                outcomes["dead-lettered"] += 1
        waiting = progress.waiting
    except RETRYABLE as error:  # the store is away: everything again (applied ones are no-ops)
        waiting, reason = [ReceivedRecord(**event) for event in events], error
    else:
        reason = EventOutOfOrder(f"{len(waiting)} event(s) wait for earlier versions")
    try:
        if waiting:
            _retry_or_give_up(self, waiting, reason, first_failure_at, outcomes)
    finally:
        _log_outcomes(events, outcomes)
        _count(outcomes, time.perf_counter() - started)
    components().projections_in_flight.done(self.request.id)
    return dict(outcomes)


def _retry_or_give_up(
    task: Task,
    waiting: list[ReceivedRecord],
    reason: Exception,
    first_failure_at: str | None,
    outcomes: Counter[str],
) -> None:
    """Retry the waiting events with backoff; once they have waited too long, dead-letter them
    (the first of each arena stalls it, so the rest park behind it)."""
    settings = components().settings
    first_failure_at = first_failure_at or datetime.now(UTC).isoformat()
    if _failing_for(first_failure_at) < RETRY_FOR_SECONDS:
        countdown = _backoff(
            task.request.retries, longest_retry_wait(settings.celery_visibility_timeout_seconds)
        )
        outcomes["retried"] += len(waiting)
        log.info(
            "%d event(s) of arena(s) %s: retry %d in %.1f s (%s: %s)",
            len(waiting),
            ", ".join(sorted({r.key or "?" for r in waiting})),
            task.request.retries + 1,
            countdown,
            type(reason).__name__,
            reason,
        )
        raise _retry_later(
            task,
            reason,
            countdown,
            kwargs={
                "events": [dataclasses.asdict(r) for r in waiting],
                "first_failure_at": first_failure_at,
            },
        ) from reason
    views = components().views
    for received in waiting:
        try:
            outcomes[apply_received(views, received)] += 1
        except (*POISON, *RETRYABLE) as error:
            _dead_letter(task, received, error, first_failure_at)
            outcomes["dead-lettered"] += 1


def _count(outcomes: Counter[str], seconds: float) -> None:
    metrics = telemetry.metrics()
    metrics.projection_batch_seconds.observe(seconds)
    for outcome, count in outcomes.items():
        metrics.projection_outcomes.labels(outcome).inc(count)


def _log_outcomes(events: list[dict[str, Any]], outcomes: Counter[str]) -> None:
    if not outcomes:
        return
    arenas = {event.get("key") or "?" for event in events}
    log.info(
        "%d event(s) of %d arena(s): %s",
        sum(outcomes.values()),
        len(arenas),
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())),
    )


@shared_task(name=RESEND_PROJECTIONS_TASK)
def resend_lost_projections() -> int:
    """Beat's safety net for projection tasks the broker lost (see tasks/in_flight.py)."""

    def send(task_id: str, events: list[dict[str, Any]]) -> None:
        log.warning(
            "projection task %s (arenas %s) went silent; sending it again",
            task_id,
            _arenas_of(events),
        )
        project_events.apply_async(args=[events], task_id=task_id)

    return components().projections_in_flight.resend_overdue(send)


def _dead_letter(
    task: Task, received: ReceivedRecord, error: Exception, first_failure_at: str | None
) -> None:
    settings = components().settings
    try:
        dead_letter(
            components().views,
            components().publishers.dead_letters(),
            received,
            error,
            attempts=task.request.retries + 1,
            first_failure_at=first_failure_at,
        )
    except Exception as unavailable:  # Kafka or Redis away: never drop the event
        components().publishers.discard(settings.kafka_dlq_topic)
        raise _retry_later(
            task, unavailable, longest_retry_wait(settings.celery_visibility_timeout_seconds)
        ) from unavailable


def _retry_later(task: Task, error: Exception, countdown: float, **options: Any) -> Exception:
    """A retry is a new message and a new wait: tell the in-flight ledger the task is alive, so
    it is sent again only if that message is lost too."""
    components().projections_in_flight.alive(task.request.id)
    retry: Exception = task.retry(exc=error, countdown=countdown, **options)
    return retry
