"""The tick engine: beat's scheduling pass, and the task that makes a batch of arenas' due ticks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import Enum

import psycopg
import sqlalchemy.exc
from celery import shared_task

from arena import telemetry
from arena.bootstrap import components
from arena.domain.errors import Conflict
from arena.extensions import db
from arena.messaging.celery_setup import MAKE_DUE_TICKS_TASK, SCHEDULE_TICKS_TASK
from arena.persistence.connections import pooled_connection
from arena.persistence.tick_leases import batches, claim_due, release, set_aside
from arena.services.bus import CommandBus
from arena.services.commands import AdvanceArenas
from arena.services.results import TicksMade

log = logging.getLogger(__name__)

CLAIMS_PER_PASS = 500
# A tick that fails alone gets a second, fresh transaction before its arena is set aside.
TRIES_ALONE = 2


class Cause(Enum):
    """Why a tick transaction failed, which says what becomes of its arenas (`cause_of`)."""

    UNAVAILABLE = "PostgreSQL unavailable"
    TRANSIENT = "transient"
    ARENA = "the arena's own"


def cause_of(failure: BaseException) -> Cause:
    """What a failed tick transaction blames (SQLAlchemy's wrappers judged by the psycopg error
    they carry):

    - UNAVAILABLE, PostgreSQL itself: no connection to be had (the pool's timeout, a failed
      connect, too many connections 53300) or the one held lost (SQLSTATE class 08, the server
      shutting down or ending the session 57P01-57P05, a driver error with no SQLSTATE, psycopg's
      InterfaceError). Every arena would fail alike: the task fails, the next pass retries the
      whole batch.
    - TRANSIENT, other transactions or the server's shortage: a lost race (`Conflict`),
      serialization failure 40001, deadlock 40P01, lock not available 55P03, the rest of class
      53 (memory, disk, a configured limit). The batch is split; an arena failing alone waits
      for the next pass.
    - ARENA, anything else: a program limit 54xxx, a cancelled statement 57014, bad data, a
      constraint, a Python error. The batch is split; an arena failing alone twice is set aside.
    """
    if isinstance(failure, sqlalchemy.exc.DBAPIError):
        if failure.connection_invalidated:
            return Cause.UNAVAILABLE
        failure = failure.orig if failure.orig is not None else failure
    if isinstance(
        failure,
        sqlalchemy.exc.TimeoutError | sqlalchemy.exc.DisconnectionError | psycopg.InterfaceError,
    ):
        return Cause.UNAVAILABLE
    if isinstance(failure, Conflict):
        return Cause.TRANSIENT
    if not isinstance(failure, psycopg.Error):
        return Cause.ARENA
    state = failure.sqlstate
    if state is None:
        # libpq gives no SQLSTATE when connecting fails or the connection drops mid-statement.
        return Cause.UNAVAILABLE if isinstance(failure, psycopg.OperationalError) else Cause.ARENA
    if state.startswith(("08", "57P")) or state == "53300":
        return Cause.UNAVAILABLE
    if state.startswith("53") or state in ("40001", "40P01", "55P03"):
        return Cause.TRANSIENT
    return Cause.ARENA


@shared_task(name=SCHEDULE_TICKS_TASK)
def schedule_ticks() -> int:
    """Claim every running arena whose next tick is due and send `make_due_ticks` for them, a
    task per TICK_BATCH_CELLS cells of boards: few transactions, yet every worker busy."""
    parts = components()
    with pooled_connection(db.engine) as connection:
        due = claim_due(
            connection, limit=CLAIMS_PER_PASS, lease_seconds=parts.settings.tick_lease_seconds
        )
    for arena_ids in batches(due, parts.settings.tick_batch_cells):
        parts.celery.send_task(MAKE_DUE_TICKS_TASK, args=[arena_ids])
    return len(due)


@shared_task(name=MAKE_DUE_TICKS_TASK)
def make_due_ticks(arena_ids: list[str]) -> int:
    """Make the arenas' due ticks with the `AdvanceArenas` command (handled by `advance_arenas`
    in arena/services/handlers.py), a transaction for all of them per tick: each arena up to
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
    down to the arena that fails alone (`_advance_alone`), and every other arena ticks. A failed
    transaction keeps nothing, so an arena's tick, its events and its version are written
    together or not at all. PostgreSQL unavailable fails the whole batch (`cause_of`)."""
    if len(arena_ids) == 1:
        return _advance_alone(bus, arena_ids[0], max_catch_up, set_aside)
    try:
        return _advance(bus, arena_ids, max_catch_up)
    except Exception as failure:
        if cause_of(failure) is Cause.UNAVAILABLE:
            raise
    half = len(arena_ids) // 2
    first = advance_apart(bus, arena_ids[:half], max_catch_up, set_aside)
    rest = advance_apart(bus, arena_ids[half:], max_catch_up, set_aside)
    return TicksMade(first.ticks + rest.ticks)


def _advance_alone(
    bus: CommandBus, arena_id: str, max_catch_up: int, set_aside: Callable[[str, str], None]
) -> TicksMade:
    """One arena's next tick, tried TRIES_ALONE times before `set_aside(arena_id, the reason)`:
    a race with another writer (a lease that ran out mid-tick, say) is over by the second try,
    as PostgreSQL reports a unique or version clash only once the rival has committed. A
    transient failure leaves the arena for the next pass: busy is not broken."""
    for tries_left in reversed(range(TRIES_ALONE)):
        try:
            return _advance(bus, [arena_id], max_catch_up)
        except Exception as failure:
            cause = cause_of(failure)
            if cause is Cause.UNAVAILABLE:
                raise
            if cause is Cause.TRANSIENT:
                log.warning("arena %s: its tick is left for the next pass: %s", arena_id, failure)
                return TicksMade(())
            reason = f"{type(failure).__name__}: {failure}"
            if tries_left:
                log.warning("arena %s: its tick failed, trying it once more: %s", arena_id, reason)
            else:
                log.exception("arena %s set aside: its tick fails: %s", arena_id, reason)
                set_aside(arena_id, reason)
    return TicksMade(())


def _advance(bus: CommandBus, arena_ids: list[str], max_catch_up: int) -> TicksMade:
    result = bus.handle(AdvanceArenas(tuple(arena_ids), max_catch_up))
    assert isinstance(result, TicksMade)
    return result


def _set_aside(arena_id: str, reason: str) -> None:
    with pooled_connection(db.engine) as connection:
        set_aside(connection, arena_id, reason)
