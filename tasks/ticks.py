"""The tick engine: beat's scheduling pass, and the task that makes a batch of arenas' due ticks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg
import sqlalchemy.exc
from celery import shared_task

from arena import telemetry
from arena.bootstrap import components
from arena.domain.errors import Conflict
from arena.extensions import db
from arena.messaging.celery import ADVANCE_ARENAS_TASK, SCHEDULE_TICKS_TASK
from arena.persistence.connections import pooled_connection
from arena.persistence.tick_leases import batches, claim_due, release, set_aside
from arena.services.bus import CommandBus
from arena.services.commands import AdvanceArenas
from arena.services.results import TicksMade

log = logging.getLogger(__name__)

CLAIMS_PER_PASS = 500
# PostgreSQL away, not an arena at fault: the task fails and the next pass claims them all again.
UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlalchemy.exc.OperationalError,  # the pool could not connect
    sqlalchemy.exc.TimeoutError,  # every pooled connection busy
)


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
    TICK_MAX_CATCH_UP of them (one further behind skips ahead instead), then free the leases.
    An arena whose tick fails is set aside and the others tick (`advance_apart`)."""
    parts = components()
    max_catch_up = parts.settings.tick_max_catch_up
    behind, made, skipped = list(arena_ids), 0, 0
    started = time.perf_counter()
    try:
        for _ in range(max_catch_up):
            result = advance_apart(parts.bus, behind, max_catch_up, _set_aside)
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


def advance_apart(
    bus: CommandBus,
    arena_ids: list[str],
    max_catch_up: int,
    set_aside: Callable[[str, str], None],
) -> TicksMade:
    """The arenas' next ticks in one transaction; if it fails, in two halves, each again in one,
    down to the arena that fails alone: `set_aside(its id, the reason)`, and every other arena
    ticks. A failed transaction keeps nothing, so an arena's tick, its events and its version
    are written together or not at all. An arena that keeps losing races to commands is only
    left for the next pass: busy is not broken."""
    try:
        result = bus.handle(AdvanceArenas(tuple(arena_ids), max_catch_up))
    except UNAVAILABLE:
        raise
    except Conflict as race:
        if len(arena_ids) == 1:
            log.warning(
                "arena %s: its tick lost every race, left for the next pass: %s", *arena_ids, race
            )
            return TicksMade(())
    except Exception as failure:
        if len(arena_ids) == 1:
            reason = f"{type(failure).__name__}: {failure}"
            log.exception("arena %s set aside: its tick fails: %s", *arena_ids, reason)
            set_aside(arena_ids[0], reason)
            return TicksMade(())
    else:
        assert isinstance(result, TicksMade)
        return result
    half = len(arena_ids) // 2
    first = advance_apart(bus, arena_ids[:half], max_catch_up, set_aside)
    rest = advance_apart(bus, arena_ids[half:], max_catch_up, set_aside)
    return TicksMade(first.ticks + rest.ticks)


def _set_aside(arena_id: str, reason: str) -> None:
    with pooled_connection(db.engine) as connection:
        set_aside(connection, arena_id, reason)
