"""Housekeeping: forget Idempotency-Key replies once their retention period is over."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task

from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.celery import PURGE_IDEMPOTENCY_TASK
from arena.persistence.connections import pooled_connection
from arena.persistence.idempotency import IdempotencyStore

log = logging.getLogger(__name__)

BATCH_SIZE = 1000


@shared_task(name=PURGE_IDEMPOTENCY_TASK)
def purge_expired_keys() -> int:
    """Delete expired records in small batches until none are left."""
    retention = components().settings.idempotency_retention_seconds
    purged = 0
    with pooled_connection(db.engine) as connection:
        store = IdempotencyStore(connection, timedelta(seconds=retention))
        while (deleted := store.purge_expired(BATCH_SIZE)) > 0:
            purged += deleted
    if purged:
        log.info("purged %d expired idempotency key(s)", purged)
    return purged
