"""A batch of ticks isolates its arenas (in memory): the arena whose tick fails is set aside with
its reason and every other ticks, each arena's tick, events and version kept together; PostgreSQL
away or an arena busy with commands sets nothing aside."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy.exc

from arena.domain.events import TickAdvanced
from arena.domain.model import hash_token
from arena.services.bus import CommandBus
from arena.services.commands import ChangeStatus, CreateArena
from arena.services.idempotency import Reply
from arena.services.results import ArenaOpened, Result
from arena.simulation.board import Board
from tasks.ticks import advance_apart
from tests.support.fakes import FakeUnitsOfWork

MAX_CATCH_UP = 5


class UnreadableBoard(Board):
    """A stored board that no longer decodes."""

    def copy(self) -> Board:
        raise ValueError("the stored board does not decode")


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


@pytest.mark.parametrize("cursed_at", [0, 2, 4])
def test_the_arena_whose_tick_fails_is_set_aside_and_every_other_ticks(cursed_at: int) -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    arena_ids = _due_arenas(units, bus, 5)
    cursed = arena_ids[cursed_at]
    units.committed.boards[cursed] = UnreadableBoard.empty(8, 8, 37.0)
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


@pytest.mark.parametrize(
    "unavailable",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
    ],
)
def test_postgresql_away_fails_the_task_and_sets_no_arena_aside(unavailable: Exception) -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    arena_ids = _due_arenas(units, bus, 3)
    set_aside = SetAside()

    def connection_lost() -> None:
        raise unavailable

    units.before_commit = connection_lost
    with pytest.raises(type(unavailable)):
        advance_apart(bus, arena_ids, MAX_CATCH_UP, set_aside)
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
