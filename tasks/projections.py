"""Projection tasks: apply a batch of many arenas' events to the Redis read model.

Transient failures (Redis away, an event ahead of its predecessor) are retried with exponential
backoff and jitter for a bounded time; so is an unexpected error, which then reaches the DLQ with
its reason instead of vanishing. Poison events, and events still failing when that time is
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
from typing import Any, NoReturn

from celery import Task, shared_task
from celery.exceptions import Reject, Retry

from arena import telemetry
from arena.bootstrap import components
from arena.messaging.celery_setup import PROJECT_TASK
from arena.messaging.records import ReceivedRecord
from arena.readmodel.intake import POISON, RETRYABLE, apply_one, dead_letter, project_batch
from arena.readmodel.writer import EventOutOfOrder

log = logging.getLogger(__name__)

# Long enough to outlast a read-model Redis restart, and a worker killed while it held an
# arena's earlier events (the broker hands them to another worker at once), so the later events
# wait for them.
RETRY_FOR_SECONDS = 240.0
FIRST_RETRY_SECONDS = 0.2
# A retry is a message the worker holds unacked until its ETA; RabbitMQ's consumer_timeout
# (30 min by default) is far away.
MAX_RETRY_SECONDS = 30.0


def _backoff(retries: int) -> float:
    """Exponential, capped, with jitter: 0.2 s, 0.4 s, 0.8 s … 30 s, each times [0.5, 1)."""
    return min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0**retries) * random.uniform(0.5, 1.0)


def _failing_for(first_failure_at: str) -> float:
    return (datetime.now(UTC) - datetime.fromisoformat(first_failure_at)).total_seconds()


@shared_task(bind=True, name=PROJECT_TASK, max_retries=None)
def project_events(
    self: Task, events: list[dict[str, Any]], first_failure_at: str | None = None
) -> dict[str, int]:
    """Apply the events (many arenas', in order per arena); redelivered ones are no-ops.

    The healthy prefix of every arena goes in one batch; a rejected event is dead-lettered and
    its arena's later events parked behind it. Events that must wait for an earlier version,
    or all of them after an unexpected error, are retried with backoff, then dead-lettered.
    """
    received = [ReceivedRecord(**event) for event in events]
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    try:
        waiting, reason = _apply(self, received, first_failure_at, outcomes)
        if waiting:
            _retry_or_give_up(self, waiting, reason, first_failure_at, outcomes)
    finally:
        _log_outcomes(received, outcomes)
        _count(outcomes, time.perf_counter() - started)
    _mark_finished(self)
    return dict(outcomes)


def _apply(
    task: Task,
    received: list[ReceivedRecord],
    first_failure_at: str | None,
    outcomes: Counter[str],
) -> tuple[list[ReceivedRecord], Exception]:
    """Apply what can be; return the events to try again, and why."""
    views = components().views
    try:
        progress = project_batch(views, received)
        outcomes.update(progress.outcomes)
        _one_by_one(task, progress.one_by_one, POISON, first_failure_at, outcomes)
    except Retry:  # a dead letter could not be sent: this task runs again, as it is
        raise
    except Exception as error:  # noqa: BLE001 - the store away, or a bug: all again, then the DLQ
        return received, error
    return progress.waiting, EventOutOfOrder(
        f"{len(progress.waiting)} event(s) wait for earlier versions"
    )


def _retry_or_give_up(
    task: Task,
    waiting: list[ReceivedRecord],
    reason: Exception,
    first_failure_at: str | None,
    outcomes: Counter[str],
) -> None:
    """Retry the waiting events with backoff; once they have waited too long, dead-letter them
    (the first of each arena stalls it, so the rest park behind it)."""
    first_failure_at = first_failure_at or datetime.now(UTC).isoformat()
    if _failing_for(first_failure_at) < RETRY_FOR_SECONDS:
        countdown = _backoff(task.request.retries)
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
        _retry_later(
            task,
            reason,
            countdown,
            events=[dataclasses.asdict(r) for r in waiting],
            first_failure_at=first_failure_at,
        )
    # Poison, the store away, or a bug: to the DLQ.
    _one_by_one(task, waiting, (Exception,), first_failure_at, outcomes)


def _one_by_one(
    task: Task,
    received: list[ReceivedRecord],
    dead_letter_on: tuple[type[Exception], ...],
    first_failure_at: str | None,
    outcomes: Counter[str],
) -> None:
    """Apply the events one at a time, in order; one failing with `dead_letter_on` goes to the
    DLQ and stalls its arena, so its arena's later ones park behind it."""
    views = components().views
    for one in received:
        try:
            outcomes[apply_one(views, one)] += 1
        except dead_letter_on as error:
            _dead_letter(task, one, error, first_failure_at)
            outcomes["dead-lettered"] += 1


def _mark_finished(task: Task) -> None:
    """Tell the consumer this task's lane is free; if Redis is away, run again, or the
    consumer would wait for the lane forever."""
    try:
        components().finished_tasks.mark(task.request.id)
    except RETRYABLE as error:
        _retry_later(task, error, _backoff(task.request.retries))


def _count(outcomes: Counter[str], seconds: float) -> None:
    metrics = telemetry.metrics()
    metrics.projection_batch_seconds.observe(seconds)
    for outcome, count in outcomes.items():
        metrics.projection_outcomes.labels(outcome).inc(count)


def _log_outcomes(received: list[ReceivedRecord], outcomes: Counter[str]) -> None:
    if not outcomes:
        return
    arenas = {one.key or "?" for one in received}
    log.info(
        "%d event(s) of %d arena(s): %s",
        sum(outcomes.values()),
        len(arenas),
        ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())),
    )


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
    except Exception as unavailable:  # noqa: BLE001 - Kafka or Redis away: retried, never dropped
        components().publishers.discard(settings.kafka_dlq_topic)
        _retry_later(task, unavailable, MAX_RETRY_SECONDS)


def _retry_later(task: Task, error: Exception, countdown: float, **kwargs: Any) -> NoReturn:
    """The same task id again, as a new message (with `kwargs`, if given): its lane stays busy
    until it finishes.

    If the new message cannot be sent, Celery rejects this one without requeueing, and RabbitMQ
    would drop it: requeue it instead, so it runs again (its applied events are no-ops).
    """
    try:
        retry: Exception = task.retry(exc=error, countdown=countdown, kwargs=kwargs or None)
    except Reject as unsent:
        raise Reject(unsent.reason, requeue=True) from error
    raise retry from error
