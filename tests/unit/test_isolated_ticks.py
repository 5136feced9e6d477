"""A batch of ticks isolates its arenas (in memory): the arena whose tick fails twice alone is set
aside with its reason and every other ticks, each arena's tick, events and version kept together;
PostgreSQL unavailable fails the batch and a transient failure leaves the arena for the next pass,
neither setting anything aside (the rule is `tasks.ticks.cause_of`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import repeat

import psycopg
import psycopg.errors
import pytest
import sqlalchemy.exc

from arena.domain.errors import Conflict
from arena.domain.events import TickAdvanced
from arena.domain.model import hash_token
from arena.services.bus import CommandBus
from arena.services.commands import ChangeStatus, CreateArena
from arena.services.idempotency import Reply
from arena.services.results import ArenaOpened, Result
from arena.simulation.board import Board
from tasks.ticks import TRIES_ALONE, advance_apart
from tests.support.fakes import FakeUnitsOfWork

MAX_CATCH_UP = 5


class FailingBoard(Board):
    """A stored board whose load raises each of `failures`, then loads (its copies load)."""

    failures: Iterator[Exception] = iter(())

    def copy(self) -> Board:
        failure = next(self.failures, None)
        if failure is not None:
            raise failure
        return super().copy()


def _wrapped(failure: psycopg.Error) -> sqlalchemy.exc.DBAPIError:
    """`failure` as SQLAlchemy raises it (the pool's connect, say)."""
    return sqlalchemy.exc.OperationalError("SELECT 1", None, failure)


UNAVAILABLE = [
    psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
    _wrapped(psycopg.OperationalError("connection failed: Connection refused")),
    psycopg.InterfaceError("the connection is closed"),
    sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    sqlalchemy.exc.DisconnectionError("the connection was invalidated"),
    psycopg.errors.ConnectionFailure("08006"),
    psycopg.errors.AdminShutdown("57P01"),
    psycopg.errors.CrashShutdown("57P02"),
    psycopg.errors.CannotConnectNow("57P03"),
    psycopg.errors.TooManyConnections("53300"),
    _wrapped(psycopg.errors.AdminShutdown("57P01")),
    sqlalchemy.exc.OperationalError(  # SQLAlchemy's own verdict: the connection is gone
        "SELECT 1", None, psycopg.errors.QueryCanceled("57014"), connection_invalidated=True
    ),
]
TRANSIENT = [
    Conflict("The arena kept changing concurrently; retry the request."),
    psycopg.errors.SerializationFailure("40001"),
    psycopg.errors.DeadlockDetected("40P01"),
    psycopg.errors.LockNotAvailable("55P03"),
    psycopg.errors.OutOfMemory("53200"),
    _wrapped(psycopg.errors.DeadlockDetected("40P01")),
]
ARENAS_OWN = [
    ValueError("the stored board does not decode"),
    psycopg.errors.ProgramLimitExceeded("54000"),
    psycopg.errors.StatementTooComplex("54001"),
    psycopg.errors.QueryCanceled("57014"),
    psycopg.errors.NumericValueOutOfRange("22003"),
    psycopg.errors.UniqueViolation("23505"),
    psycopg.DataError("int too large to convert"),  # the driver's, no SQLSTATE
    _wrapped(psycopg.errors.ProgramLimitExceeded("54000")),
]


def _name(failure: Exception) -> str:
    orig = failure.orig if isinstance(failure, sqlalchemy.exc.DBAPIError) else None
    return type(failure).__name__ + (f"({type(orig).__name__})" if orig else "")


class SetAside(dict[str, str]):
    """What the scheduler would persist: arena id → reason."""

    def __call__(self, arena_id: str, reason: str) -> None:
        self[arena_id] = reason


def _due_arenas(units: FakeUnitsOfWork, bus: CommandBus, count: int) -> list[str]:
    opened: list[Result] = []

    def keep(result: Result) -> Reply:
        opened.append(result)
        return Reply(200, {})

    for n in range(count):
        bus.execute(CreateArena(f"Dish {n}", "Ada", {"width": 8, "height": 8}), keep)
        arena = opened[-1]
        assert isinstance(arena, ArenaOpened)
        bus.execute(ChangeStatus(arena.arena_id, "start", hash_token(arena.creator.token)), keep)
    arena_ids = [result.arena_id for result in opened if isinstance(result, ArenaOpened)]
    for arena_id in arena_ids:
        units.committed.arenas[arena_id].next_tick_at = datetime.now(UTC) - timedelta(seconds=1)
    return arena_ids


def _ticked(units: FakeUnitsOfWork) -> list[str]:
    return [e.aggregate_id for _, e in units.committed.events if isinstance(e, TickAdvanced)]


def _curse(units: FakeUnitsOfWork, arena_id: str, failures: Iterator[Exception]) -> None:
    """The arena's tick raises each of `failures`, in every transaction that ticks it."""
    board = FailingBoard.empty(8, 8, 37.0)
    assert isinstance(board, FailingBoard)
    board.failures = failures
    units.committed.boards[arena_id] = board


def _three_due_the_middle_failing(
    failure: Exception,
) -> tuple[FakeUnitsOfWork, CommandBus, list[str]]:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    arena_ids = _due_arenas(units, bus, 3)
    _curse(units, arena_ids[1], repeat(failure))
    return units, bus, arena_ids


@pytest.mark.parametrize("cursed_at", [0, 2, 4])
def test_the_arena_whose_tick_fails_is_set_aside_and_every_other_ticks(cursed_at: int) -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    arena_ids = _due_arenas(units, bus, 5)
    cursed = arena_ids[cursed_at]
    _curse(units, cursed, repeat(ValueError("the stored board does not decode")))
    version = units.committed.arenas[cursed].version
    set_aside = SetAside()

    ticks = advance_apart(bus, arena_ids, MAX_CATCH_UP, set_aside)

    others = [arena_id for arena_id in arena_ids if arena_id != cursed]
    assert [(tick.arena_id, tick.advanced, tick.tick) for tick in ticks.ticks] == [
        (arena_id, True, 1) for arena_id in others
    ]
    assert set_aside == {cursed: "ValueError: the stored board does not decode"}
    assert sorted(_ticked(units)) == sorted(others)  # each tick once, none for the cursed
    assert units.committed.arenas[cursed].version == version and cursed not in _ticked(units)
    assert all(units.committed.arenas[arena_id].tick == 1 for arena_id in others)


def test_a_batch_that_ticks_is_one_transaction_and_sets_nothing_aside() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    arena_ids = _due_arenas(units, bus, 3)
    opened = len(units.opened)
    set_aside = SetAside()

    ticks = advance_apart(bus, arena_ids, MAX_CATCH_UP, set_aside)

    assert len(units.opened) == opened + 1
    assert [tick.arena_id for tick in ticks.ticks if tick.advanced] == arena_ids
    assert set_aside == {}


@pytest.mark.parametrize("failure", ARENAS_OWN, ids=_name)
def test_a_failure_of_the_arenas_own_sets_it_aside_after_a_second_try_alone(
    failure: Exception,
) -> None:
    units, bus, (first, cursed, last) = _three_due_the_middle_failing(failure)
    set_aside = SetAside()

    ticks = advance_apart(bus, [first, cursed, last], MAX_CATCH_UP, set_aside)

    assert [tick.arena_id for tick in ticks.ticks if tick.advanced] == [first, last]
    assert set_aside == {cursed: f"{type(failure).__name__}: {failure}"}
    assert sorted(_ticked(units)) == sorted((first, last))


@pytest.mark.parametrize("failure", UNAVAILABLE, ids=_name)
def test_postgresql_unavailable_fails_the_task_and_sets_no_arena_aside(failure: Exception) -> None:
    units, bus, (first, cursed, last) = _three_due_the_middle_failing(failure)
    opened = len(units.opened)
    set_aside = SetAside()

    with pytest.raises(type(failure)):
        advance_apart(bus, [first, cursed, last], MAX_CATCH_UP, set_aside)
    assert set_aside == {} and _ticked(units) == []
    assert len(units.opened) == opened + 1  # not split: the next pass tries the batch again


@pytest.mark.parametrize("failure", TRANSIENT, ids=_name)
def test_a_transient_failure_leaves_the_arena_for_the_next_pass_and_the_others_tick(
    failure: Exception,
) -> None:
    units, bus, (first, cursed, last) = _three_due_the_middle_failing(failure)
    set_aside = SetAside()

    ticks = advance_apart(bus, [first, cursed, last], MAX_CATCH_UP, set_aside)

    assert [tick.arena_id for tick in ticks.ticks if tick.advanced] == [first, last]
    assert set_aside == {}
    assert sorted(_ticked(units)) == sorted((first, last))


def test_an_arena_whose_tick_fails_once_alone_ticks_on_its_second_try() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    (arena_id,) = _due_arenas(units, bus, 1)
    # A lease that ran out mid-tick: a second worker's tick of the arena committed first.
    _curse(units, arena_id, iter([psycopg.errors.UniqueViolation("duplicate key value")]))
    opened = len(units.opened)
    set_aside = SetAside()

    ticks = advance_apart(bus, [arena_id], MAX_CATCH_UP, set_aside)

    assert [(tick.arena_id, tick.advanced) for tick in ticks.ticks] == [(arena_id, True)]
    assert set_aside == {} and _ticked(units) == [arena_id]
    assert len(units.opened) == opened + 2


def test_an_arena_is_set_aside_only_after_failing_alone_in_a_fresh_transaction_each_try() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    (arena_id,) = _due_arenas(units, bus, 1)
    _curse(units, arena_id, repeat(psycopg.errors.ProgramLimitExceeded("54000")))
    opened = len(units.opened)
    set_aside = SetAside()

    ticks = advance_apart(bus, [arena_id], MAX_CATCH_UP, set_aside)

    assert ticks.ticks == () and set_aside == {arena_id: "ProgramLimitExceeded: 54000"}
    assert len(units.opened) == opened + TRIES_ALONE


def test_postgresql_lost_on_the_second_try_fails_the_task_and_sets_nothing_aside() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    (arena_id,) = _due_arenas(units, bus, 1)
    lost = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    _curse(units, arena_id, iter([psycopg.errors.QueryCanceled("57014"), lost]))
    set_aside = SetAside()

    with pytest.raises(psycopg.errors.AdminShutdown):
        advance_apart(bus, [arena_id], MAX_CATCH_UP, set_aside)
    assert set_aside == {} and _ticked(units) == []


def test_an_arena_that_keeps_losing_races_waits_for_the_next_pass_without_holding_back_others() -> (
    None
):
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    first, busy, last = _due_arenas(units, bus, 3)
    set_aside = SetAside()

    def a_command_on_busy_commits_first() -> None:
        units.committed.arenas[busy].version += 1

    units.before_commit = a_command_on_busy_commits_first
    ticks = advance_apart(bus, [first, busy, last], MAX_CATCH_UP, set_aside)

    assert [tick.arena_id for tick in ticks.ticks if tick.advanced] == [first, last]
    assert set_aside == {}
    assert sorted(_ticked(units)) == sorted((first, last))
