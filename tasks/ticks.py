"""The tick engine: beat's scheduling pass, and the task that makes one arena's due ticks."""

from __future__ import annotations

import logging

from celery import shared_task

from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.celery import ADVANCE_ARENA_TASK, SCHEDULE_TICKS_TASK
from arena.persistence.connections import pooled_connection
from arena.persistence.tick_leases import claim_due, release
from arena.services.commands import AdvanceArena
from arena.services.results import TickMade

log = logging.getLogger(__name__)

CLAIMS_PER_PASS = 500


@shared_task(name=SCHEDULE_TICKS_TASK)
def schedule_ticks() -> int:
    """Claim every running arena whose next tick is due and send one `advance_arena` for each."""
    settings = components().settings
    with pooled_connection(db.engine) as connection:
        due = claim_due(
            connection, limit=CLAIMS_PER_PASS, lease_seconds=settings.tick_lease_seconds
        )
    for arena_id in due:
        components().celery.send_task(ADVANCE_ARENA_TASK, args=[arena_id])
    return len(due)


@shared_task(name=ADVANCE_ARENA_TASK)
def advance_arena(arena_id: str) -> int:
    """Make the arena's due ticks, each in its own transaction: up to TICK_MAX_CATCH_UP of
    them (an arena further behind skips ahead instead), then free the arena's lease."""
    parts = components()
    command = AdvanceArena(arena_id, max_catch_up=parts.settings.tick_max_catch_up)
    made = tick = 0
    try:
        for _ in range(command.max_catch_up):
            result = parts.bus.handle(command)
            assert isinstance(result, TickMade)
            made, tick = made + result.advanced, result.tick
            if not result.another_due:
                break
    finally:
        with pooled_connection(db.engine) as connection:
            release(connection, arena_id)
    if made > 1:
        log.info("arena %s caught up %d ticks (now at tick %d)", arena_id, made, tick)
    return made
