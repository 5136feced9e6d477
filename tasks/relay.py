"""The outbox relay task, run by Celery beat on a short period."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from arena.extensions import db
from arena.messaging.publishers import publisher_for
from arena.outbox.relay import relay_pending
from tasks.celery_app import RELAY_TASK


@shared_task(name=RELAY_TASK)
def publish_outbox() -> int:
    """Publish one batch of pending outbox rows; a failure leaves them pending for the next run."""
    settings = current_app.extensions["settings"]
    publisher = publisher_for(settings, settings.kafka_events_topic)
    return relay_pending(db.session, publisher, batch_size=settings.outbox_batch_size)
