"""Projection tasks: apply one Kafka event to the Redis read model, or dead-letter it."""

from __future__ import annotations

import json
import logging
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import shared_task
from flask import current_app
from redis.exceptions import RedisError

from arena.domain.events import EventEnvelope
from arena.messaging.consumer import ReceivedEvent
from arena.messaging.dead_letter import dead_letter_record
from arena.messaging.publishers import publisher_for
from arena.readmodel.store import EventOutOfOrder
from tasks.celery_app import FlaskTask

log = logging.getLogger(__name__)

PROJECT_TASK = "tasks.projections.project_event"


class DeadLetteringTask(FlaskTask):
    """Publishes the event to the DLQ topic when the task finally fails (not on each retry)."""

    def on_failure(
        self,
        exc: BaseException,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        event = ReceivedEvent(**args[0])
        with self.app.flask_app.app_context():
            settings = current_app.extensions["settings"]
            record = dead_letter_record(event, exc, str(einfo), attempts=self.request.retries + 1)
            publisher = publisher_for(settings, settings.kafka_dlq_topic)
            publisher.publish(event.key or "", record, {"errorClass": type(exc).__name__})
            publisher.flush()
        log.error(
            "event at %s[%d]@%d dead-lettered: %r", event.topic, event.partition, event.offset, exc
        )


@shared_task(
    name=PROJECT_TASK,
    base=DeadLetteringTask,
    autoretry_for=(RedisError, EventOutOfOrder),
    retry_backoff=True,  # 1 s, 2 s, 4 s… each with full jitter (Celery wants whole seconds)
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=10,
)
def project_event(received: dict[str, Any]) -> bool:
    """Apply the event to its arena's view; False when it was a duplicate already applied."""
    event = ReceivedEvent(**received)
    envelope = EventEnvelope.from_dict(json.loads(event.value))
    applied = current_app.extensions["arena_views"].apply(envelope)
    log.info(
        "%s %s v%d of arena %s",
        "applied" if applied else "skipped already applied",
        envelope.event_type,
        envelope.aggregate_version,
        envelope.aggregate_id,
    )
    return applied
