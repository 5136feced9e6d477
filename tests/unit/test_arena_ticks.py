"""Ticks in the domain and the service layer (in memory): cadence, catching up and skipping
ahead, actions applied at their tick, a tick that loses a race to a command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from arena.domain.config import ArenaConfig
from arena.domain.errors import IllegalTransition
from arena.domain.events import (
    ActionApplied,
    ActionRejected,
    ActionSubmitted,
    ArenaConfigUpdated,
    SnapshotTaken,
    TickAdvanced,
)
from arena.domain.model import Arena, ArenaStatus, TickOutcome, hash_token
from arena.services.bus import CommandBus
from arena.services.commands import (
    AdvanceArenas,
    ChangeStatus,
    CreateArena,
    SubmitAction,
    UpdateConfig,
)
from arena.services.idempotency import Reply
from arena.services.results import ActionAccepted, ArenaOpened, Result, TickMade, TicksMade
from arena.simulation import delta
from arena.simulation.board import BACTERIA, Board
from arena.stored_board import decode_text
from tests.support.fakes import FakeUnitsOfWork

T0 = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
PERIOD = timedelta(milliseconds=500)
NOTHING = TickOutcome(stats={}, delta={}, board_hash="", applied=[], rejected=[], snapshot=None)


def _running() -> Arena:
    arena, creator = Arena.create(
        name="Dish", creator_display_name="Ada", config=ArenaConfig(seed=5), now=T0
    )
    arena.transition("start", creator.player, T0)
    arena.collect_events()
    return arena


def test_start_and_resume_make_a_tick_due_one_period_later_and_pause_cancels_it() -> None:
    arena, creator = Arena.create(
        name="Dish", creator_display_name="Ada", config=ArenaConfig(seed=5), now=T0
    )
    assert arena.next_tick_at is None and not arena.tick_due(T0 + PERIOD)
    arena.transition("start", creator.player, T0)
    assert arena.next_tick_at == T0 + PERIOD
    assert not arena.tick_due(T0 + PERIOD / 2) and arena.tick_due(T0 + PERIOD)
    arena.transition("pause", creator.player, T0 + PERIOD)
    assert arena.next_tick_at is None and not arena.tick_due(T0 + 10 * PERIOD)
    arena.transition("resume", creator.player, T0 + 3 * PERIOD)
    assert arena.next_tick_at == T0 + 4 * PERIOD


def test_ticks_keep_their_cadence_and_a_late_arena_catches_up_tick_by_tick() -> None:
    arena = _running()
    late = T0 + 3.5 * PERIOD  # ticks 1, 2 and 3 are due
    for expected_tick in (1, 2, 3):
        assert arena.tick_due(late)
        arena.record_tick(NOTHING, late, max_catch_up=5)
        assert arena.tick == expected_tick
    assert not arena.tick_due(late) and arena.next_tick_at == T0 + 4 * PERIOD
    advanced = [e for e in arena.collect_events() if isinstance(e, TickAdvanced)]
    assert [e.stats["ticksSkipped"] for e in advanced] == [0, 0, 0]


def test_an_arena_far_behind_skips_ahead_and_says_how_many_ticks_it_left_out() -> None:
    arena = _running()
    much_later = T0 + 20.2 * PERIOD  # 20 ticks due, 19 periods late
    arena.record_tick(NOTHING, much_later, max_catch_up=5)
    (advanced,) = arena.collect_events()
    assert isinstance(advanced, TickAdvanced)
    assert (advanced.tick, advanced.stats["ticksSkipped"]) == (1, 19)
    assert arena.next_tick_at == much_later + PERIOD  # the cadence starts again from now


def test_a_tick_records_its_actions_then_the_tick_then_the_snapshot() -> None:
    arena = _running()
    outcome = TickOutcome(
        stats={"organismCount": 1},
        delta={},
        board_hash="h",
        applied=["a1", "a3"],
        rejected=[("a2", "the cell is occupied")],
        snapshot="c25hcA==",
    )
    version = arena.version
    arena.record_tick(outcome, T0 + PERIOD, max_catch_up=5)
    kinds = [type(e) for e in arena.collect_events()]
    assert kinds == [ActionApplied, ActionApplied, ActionRejected, TickAdvanced, SnapshotTaken]
    assert arena.version == version + 5


def test_no_tick_for_an_arena_that_is_not_running_or_not_due() -> None:
    arena = _running()
    with pytest.raises(IllegalTransition):
        arena.record_tick(NOTHING, T0 + PERIOD / 2, max_catch_up=5)
    arena.status = ArenaStatus.PAUSED
    with pytest.raises(IllegalTransition):
        arena.record_tick(NOTHING, T0 + 10 * PERIOD, max_catch_up=5)


# --- the service layer, in memory --------------------------------------------------------------


def _reply(result: Result) -> Reply:
    return Reply(200, {"version": result.version})


class Kept(list[Result]):
    def __call__(self, result: Result) -> Reply:
        self.append(result)
        return _reply(result)


def _opened_and_started(bus: CommandBus) -> tuple[ArenaOpened, str]:
    kept = Kept()
    config = {"seed": 9, "width": 8, "height": 8, "snapshotEveryTicks": 2}
    bus.execute(CreateArena("Dish", "Ada", config), kept)
    opened = kept[0]
    assert isinstance(opened, ArenaOpened)
    token = hash_token(opened.creator.token)
    bus.execute(ChangeStatus(opened.arena_id, "start", token), kept)
    return opened, token


def _make_due(units: FakeUnitsOfWork, arena_id: str) -> None:
    units.committed.arenas[arena_id].next_tick_at = datetime.now(UTC) - timedelta(seconds=1)


def _spawn(arena_id: str, token: str, x: int, y: int) -> SubmitAction:
    payload = {"kind": "BACTERIA", "position": {"x": x, "y": y}}
    return SubmitAction(arena_id, "SPAWN_ORGANISM", payload, None, token)  # type: ignore[arg-type]


def _advance(bus: CommandBus, arena_id: str) -> TickMade:
    result = bus.handle(AdvanceArenas((arena_id,), 5))
    assert isinstance(result, TicksMade)
    (made,) = result.ticks
    return made


def test_a_tick_applies_the_due_actions_keeps_the_board_and_records_the_tick() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    opened, token = _opened_and_started(bus)
    kept = Kept()
    for x, y in ((1, 1), (1, 1), (4, 4)):
        bus.execute(_spawn(opened.arena_id, token, x, y), kept)
    first, second, third = kept
    assert isinstance(first, ActionAccepted) and isinstance(second, ActionAccepted)

    assert _advance(bus, opened.arena_id) == TickMade(
        opened.arena_id, 5, 0, advanced=False, another_due=False
    )  # not due yet: nothing happens
    _make_due(units, opened.arena_id)
    made = _advance(bus, opened.arena_id)
    assert made.advanced and made.tick == 1

    events = [event for _, event in units.committed.events]
    settled = [e for e in events if isinstance(e, ActionApplied | ActionRejected)]
    assert [(type(e), e.action_id) for e in settled] == [
        (ActionApplied, first.action_id),
        (ActionApplied, third.action_id),
        (ActionRejected, second.action_id),
    ]
    board = units.committed.boards[opened.arena_id]
    assert board.tick == 1 and board["kind"][1, 1] == BACTERIA and board["kind"][4, 4] == BACTERIA
    (advanced,) = [e for e in events if isinstance(e, TickAdvanced)]
    assert advanced.board_hash == board.hash()
    rebuilt = delta.apply(Board.empty(8, 8, 37.0), delta.decode(advanced.delta))
    assert rebuilt.same_as(board)
    assert units.committed.actions == []  # settled

    _make_due(units, opened.arena_id)
    _advance(bus, opened.arena_id)  # tick 2: a snapshot tick
    snapshot = [e for _, e in units.committed.events if isinstance(e, SnapshotTaken)]
    assert [s.tick for s in snapshot] == [2]
    assert decode_text(snapshot[0].board).same_as(units.committed.boards[opened.arena_id])


def test_a_tick_racing_a_pause_is_run_again_and_then_finds_nothing_due() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    opened, token = _opened_and_started(bus)
    _make_due(units, opened.arena_id)
    rival = CommandBus(FakeUnitsOfWorkSharing(units), pause=lambda _: None)

    def pause_first() -> None:
        units.before_commit = lambda: None
        rival.execute(ChangeStatus(opened.arena_id, "pause", token), _reply)

    units.before_commit = pause_first
    made = _advance(bus, opened.arena_id)
    assert made == TickMade(opened.arena_id, 3, 0, advanced=False, another_due=False)
    assert units.committed.arenas[opened.arena_id].status is ArenaStatus.PAUSED
    assert opened.arena_id not in units.committed.boards


class FakeUnitsOfWorkSharing(FakeUnitsOfWork):
    """Another bus's units over the same committed state (a concurrent request)."""

    def __init__(self, shared: FakeUnitsOfWork) -> None:
        super().__init__()
        self.committed = shared.committed


def test_a_new_temperature_for_a_dish_that_has_ticked_reaches_the_board_at_the_next_tick() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    opened, token = _opened_and_started(bus)
    _make_due(units, opened.arena_id)
    _advance(bus, opened.arena_id)
    bus.execute(ChangeStatus(opened.arena_id, "pause", token), _reply)
    seen = len(units.committed.events)
    bus.execute(UpdateConfig(opened.arena_id, {"temperature": {"value": 30}}, token), _reply)
    changed, queued = (event for _, event in units.committed.events[seen:])
    assert isinstance(changed, ArenaConfigUpdated) and isinstance(queued, ActionSubmitted)
    assert (queued.action_type, queued.apply_at_tick) == ("SET_TEMPERATURE", 2)
    bus.execute(ChangeStatus(opened.arena_id, "resume", token), _reply)
    _make_due(units, opened.arena_id)
    _advance(bus, opened.arena_id)
    assert (units.committed.boards[opened.arena_id]["temperature"] == 30.0).all()
    applied = [e for _, e in units.committed.events if isinstance(e, ActionApplied)]
    assert applied[-1].action_id == queued.action_id


def test_a_temperature_set_before_the_first_tick_is_the_configs_alone() -> None:
    arena, creator = Arena.create(
        name="Dish", creator_display_name="Ada", config=ArenaConfig(seed=5), now=T0
    )
    arena.collect_events()
    assert arena.update_config(creator.player, {"temperature": {"value": 20}}, T0) is None
    (only,) = arena.collect_events()
    assert isinstance(only, ArenaConfigUpdated)


def test_one_unit_ticks_every_due_arena_of_a_batch_each_with_its_own_actions() -> None:
    units = FakeUnitsOfWork()
    bus = CommandBus(units, pause=lambda _: None)
    (first, first_token), (second, second_token), (idle, _) = (
        _opened_and_started(bus) for _ in range(3)
    )
    bus.execute(_spawn(first.arena_id, first_token, 1, 1), _reply)
    bus.execute(_spawn(second.arena_id, second_token, 6, 6), _reply)
    _make_due(units, first.arena_id)
    _make_due(units, second.arena_id)
    units_before = len(units.opened)

    batch = (first.arena_id, "not-an-arena", second.arena_id, idle.arena_id)
    result = bus.handle(AdvanceArenas(batch, 5))

    assert len(units.opened) == units_before + 1  # one unit of work: one transaction
    assert isinstance(result, TicksMade)
    assert [(t.arena_id, t.advanced, t.tick) for t in result.ticks] == [
        (first.arena_id, True, 1),
        (second.arena_id, True, 1),
        (idle.arena_id, False, 0),
    ]
    boards = units.committed.boards
    assert np.argwhere(boards[first.arena_id]["kind"] == BACTERIA).tolist() == [[1, 1]]
    assert np.argwhere(boards[second.arena_id]["kind"] == BACTERIA).tolist() == [[6, 6]]
    assert idle.arena_id not in boards
    advanced = [e for _, e in units.committed.events if isinstance(e, TickAdvanced)]
    assert sorted(e.aggregate_id for e in advanced) == sorted((first.arena_id, second.arena_id))
    assert units.committed.actions == []
