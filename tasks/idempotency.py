"""Housekeeping: forget Idempotency-Key replies once their retention period is over."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app

from arena.extensions import db
from arena.persistence.idempotency import IdempotencyStore
from tasks.celery_app import PURGE_IDEMPOTENCY_TASK

log = logging.getLogger(__name__)

BATCH_SIZE = 1000


@shared_task(name=PURGE_IDEMPOTENCY_TASK)
def purge_expired_keys() -> int:
    """Delete expired records in small batches until none are left."""
    retention = current_app.extensions["settings"].idempotency_retention_seconds
    store = IdempotencyStore(db.session, timedelta(seconds=retention))
    purged = 0
    while (deleted := store.purge_expired(BATCH_SIZE)) > 0:
        purged += deleted
    if purged:
        log.info("purged %d expired idempotency key(s)", purged)
    return purged
