"""Projection tasks: apply a batch of one arena's events to the Redis read model.

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
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject, Retry

from arena import telemetry
from arena.bootstrap import components
from arena.messaging.celery import PROJECT_TASK
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
    except Retry:  # a dead letter could not be sent: this task runs again, as it is
        raise
    # The store is away, or a bug: everything again (applied ones are no-ops), and in the end
    # to the DLQ with the reason.
    except Exception as error:  # noqa: BLE001 - retried, then dead-lettered with its reason
        waiting, reason = [ReceivedRecord(**event) for event in events], error
    else:
        reason = EventOutOfOrder(f"{len(waiting)} event(s) wait for earlier versions")
    try:
        if waiting:
            _retry_or_give_up(self, waiting, reason, first_failure_at, outcomes)
    finally:
        _log_outcomes(events, outcomes)
        _count(outcomes, time.perf_counter() - started)
    try:
        components().finished_tasks.mark(self.request.id)
    except RETRYABLE as error:  # the consumer would wait for this lane forever: run again
        raise _retry_later(self, error, _backoff(self.request.retries)) from error
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
        except Exception as error:  # noqa: BLE001 - poison, the store away, or a bug: to the DLQ
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
        raise _retry_later(task, unavailable, MAX_RETRY_SECONDS) from unavailable


def _retry_later(task: Task, error: Exception, countdown: float, **options: Any) -> Exception:
    """The same task id again, as a new message: its lane stays busy until it finishes.

    If the new message cannot be sent, Celery rejects this one without requeueing, and RabbitMQ
    would drop it: requeue it instead, so it runs again (its applied events are no-ops).
    """
    try:
        retry: Exception = task.retry(exc=error, countdown=countdown, **options)
    except Reject as unsent:
        raise Reject(unsent.reason, requeue=True) from error
    return retry
