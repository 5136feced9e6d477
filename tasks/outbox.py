"""Outbox tasks: the relay (started by beat every second, draining for a while, woken by each
commit's notice) and the retention purge."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from celery import shared_task

from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.celery_setup import PRUNE_OUTBOX_TASK, RELAY_TASK
from arena.outbox.operations import prune_published
from arena.outbox.relay import RelayPolicy, relay_pending, relay_until
from arena.outbox.wakeups import OutboxListener
from arena.pacing import Pace
from arena.persistence.connections import pooled_connection

log = logging.getLogger(__name__)

PRUNE_BATCH_SIZE = 1000


@shared_task(name=RELAY_TASK)
def publish_outbox() -> int:
    """Publish what is due, and what commits, for OUTBOX_RELAY_DRAIN_SECONDS (if fewer than
    OUTBOX_RELAY_DRAINERS runs drain already); a failed batch stays pending, backed off, for a
    later run."""
    settings = components().settings
    publishers = components().publishers
    policy = RelayPolicy.from_settings(settings)
    with (
        OutboxListener(settings.database_url) as listener,
        _stop_on_sigterm() as stopping,
        pooled_connection(db.engine) as connection,
    ):
        if listener.take_drain_slot(settings.outbox_relay_drainers):
            run = relay_until(
                connection,
                publishers.events,
                policy,
                wait_for_commits=listener.wait,
                seconds=settings.outbox_relay_drain_seconds,
                should_stop=stopping.is_set,
                pace=Pace.per_second(settings.outbox_relay_claims_per_second),
            )
        else:  # enough relays drain already: one pass, then free the worker process
            run = relay_pending(connection, publishers.events, policy)
    if run.error is not None:
        publishers.discard(settings.kafka_events_topic)
    return run.published


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[threading.Event]:
    """A worker shutting down sends its pool processes SIGTERM: end the drain at its next pause
    (within a second) instead of dying mid-batch, which would only make the batch run again."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():  # e.g. a threads pool
        yield stopping
        return
    previous = signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGTERM, previous)


@shared_task(name=PRUNE_OUTBOX_TASK)
def prune_outbox() -> int:
    """Keep the outbox small: published rows past the retention period go, a batch at a time."""
    settings = components().settings
    pruned = prune_published(
        db.session,
        older_than_seconds=settings.outbox_retention_seconds,
        batch_size=PRUNE_BATCH_SIZE,
    )
    if pruned:
        log.info("pruned %d published outbox row(s)", pruned)
    return pruned
