"""Housekeeping: forget Idempotency-Key replies once their retention period is over."""

from __future__ import annotations

import logging

from celery import shared_task

from arena.extensions import db
from arena.messaging.celery_setup import PURGE_IDEMPOTENCY_TASK
from arena.persistence.connections import pooled_connection
from arena.persistence.idempotency_keys import purge_expired

log = logging.getLogger(__name__)

BATCH_SIZE = 1000


@shared_task(name=PURGE_IDEMPOTENCY_TASK)
def purge_expired_keys() -> int:
    """Delete expired records in small batches until none are left."""
    purged = 0
    with pooled_connection(db.engine) as connection:
        while (deleted := purge_expired(connection, BATCH_SIZE)) > 0:
            purged += deleted
    if purged:
        log.info("purged %d expired idempotency key(s)", purged)
    return purged
