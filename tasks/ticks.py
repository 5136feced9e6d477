"""The tick engine: beat's scheduling pass, and the task that makes a batch of arenas' due ticks."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from arena import telemetry
from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.celery import ADVANCE_ARENAS_TASK, SCHEDULE_TICKS_TASK
from arena.persistence.connections import pooled_connection
from arena.persistence.tick_leases import batches, claim_due, release
from arena.services.commands import AdvanceArenas
from arena.services.results import TicksMade

log = logging.getLogger(__name__)

CLAIMS_PER_PASS = 500


@shared_task(name=SCHEDULE_TICKS_TASK)
def schedule_ticks() -> int:
    """Claim every running arena whose next tick is due and send `advance_arenas` for them, a
    task per TICK_BATCH_CELLS cells of boards: few transactions, yet every worker busy."""
    parts = components()
    with pooled_connection(db.engine) as connection:
        due = claim_due(
            connection, limit=CLAIMS_PER_PASS, lease_seconds=parts.settings.tick_lease_seconds
        )
    for arena_ids in batches(due, parts.settings.tick_batch_cells):
        parts.celery.send_task(ADVANCE_ARENAS_TASK, args=[arena_ids])
    return len(due)


@shared_task(name=ADVANCE_ARENAS_TASK)
def advance_arenas(arena_ids: list[str]) -> int:
    """Make the arenas' due ticks, a transaction for all of them per tick: each arena up to
    TICK_MAX_CATCH_UP of them (one further behind skips ahead instead), then free the leases."""
    parts = components()
    max_catch_up = parts.settings.tick_max_catch_up
    behind, made, skipped = list(arena_ids), 0, 0
    started = time.perf_counter()
    try:
        for _ in range(max_catch_up):
            result = parts.bus.handle(AdvanceArenas(tuple(behind), max_catch_up))
            assert isinstance(result, TicksMade)
            made += sum(tick.advanced for tick in result.ticks)
            skipped += sum(tick.skipped for tick in result.ticks)
            behind = result.another_due()
            if not behind:
                break
    finally:
        with pooled_connection(db.engine) as connection:
            release(connection, arena_ids)
        metrics = telemetry.metrics()
        metrics.tick_run_seconds.observe(time.perf_counter() - started)
        metrics.ticks_made.inc(made)
        metrics.ticks_skipped.inc(skipped)
    if made > len(arena_ids):
        log.info("%d arenas made %d ticks, catching up", len(arena_ids), made)
    return made
