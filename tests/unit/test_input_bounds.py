"""The bounds on what a client sends (issue 23, item 3): the domain's limits come from the board's
integer layers, so nothing the domain accepts can overflow them at a tick, and the step rejects,
rather than fails on, what it cannot apply (an action outside a shrunk grid); owner indexes are
reused, so joining, spawning and leaving cannot use them up.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from arena.domain.actions import MAX_AMOUNT, ActionType
from arena.domain.config import GRID_SIDE_RANGE, MAX_ORGANISMS_RANGE, MAX_PLAYERS_RANGE, ArenaConfig
from arena.domain.errors import Conflict, ValidationFailed
from arena.domain.model import MAX_TICK, Arena, Player
from arena.simulation.board import (
    BACTERIA,
    LAYERS,
    MAX_ORGANISM_ID,
    MAX_OWNERS,
    NOBODY,
    Board,
)
from arena.simulation.rules import FIELD_MAX, FIELD_SCALE, DueAction, Rules, step

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
STILL = Rules(seed=7, diffusion_rate=0.0, mutation_rate=0.0, max_organisms=100)
PLAYER = "11111111-1111-1111-1111-111111111111"
TEMPERATURE = {"temperature": {"value": 30.0, "unit": "C"}}


def _paused_arena(*, tick: int) -> tuple[Arena, Player]:
    config = ArenaConfig(width=10, height=6, seed=42)
    arena, admin = Arena.create(name="Bounds", creator_display_name="Ada", config=config, now=NOW)
    arena.transition("start", admin.player, NOW)
    arena.transition("pause", admin.player, NOW)
    arena.tick = tick  # the simulation advances the tick; a loaded arena can be at any tick
    return arena, admin.player


def _nutrients(amount: float, x: int = 0, width: int = 1) -> DueAction:
    area = {"x": x, "y": 0, "width": width, "height": 1}
    return DueAction(f"feed-{x}", PLAYER, "ADD_NUTRIENTS", {"area": area, "amount": amount})


def _spawn(x: int, y: int, player: str = PLAYER) -> DueAction:
    payload = {"kind": "BACTERIA", "position": {"x": x, "y": y}}
    return DueAction(f"spawn-{x}-{y}", player, "SPAWN_ORGANISM", payload)


# --- the limits fit the board's layers ------------------------------------------------------------


def test_the_limits_come_from_the_boards_integer_layers() -> None:
    assert (
        FIELD_MAX == np.iinfo(LAYERS["nutrients"][0]).max == np.iinfo(LAYERS["antibiotic"][0]).max
    )
    assert round(MAX_AMOUNT * FIELD_SCALE) == FIELD_MAX
    assert np.iinfo(LAYERS["born_tick"][0]).max == MAX_TICK
    assert MAX_ORGANISMS_RANGE[1] == GRID_SIDE_RANGE[1] ** 2
    assert MAX_PLAYERS_RANGE[1] < MAX_OWNERS == np.iinfo(LAYERS["owner"][0]).max + 1
    assert MAX_ORGANISM_ID == np.iinfo(LAYERS["organism_id"][0]).max == 2**63 - 1


def test_the_largest_amount_on_a_full_cell_saturates_it() -> None:
    board = Board.empty(3, 1, 37.0)
    board["nutrients"][0, 0] = FIELD_MAX
    full = board.copy()
    full["nutrients"][:] = FIELD_MAX

    made = step(board, [_nutrients(MAX_AMOUNT, width=3), _nutrients(MAX_AMOUNT, x=1)], STILL)

    assert made.rejected == []
    assert made.board.same_as(step(full, [], STILL).board)


def test_an_amount_past_a_cells_capacity_saturates_rather_than_fail_the_tick() -> None:
    # One submitted before the domain bounded amounts could still be waiting for its tick.
    made = step(Board.empty(1, 1, 37.0), [_nutrients(1e16)], STILL)

    assert made.applied == ["feed-0"]
    assert made.board["nutrients"][0, 0] > FIELD_MAX // 2


# --- what the step rejects instead of failing on --------------------------------------------------


def test_actions_outside_the_board_are_rejected() -> None:
    board = Board.empty(4, 2, 37.0)

    made = step(board, [_spawn(4, 0), _spawn(0, 2), _nutrients(1.0, x=3, width=2)], STILL)

    assert made.applied == []
    assert made.rejected == [
        ("spawn-4-0", "the cell is outside the board"),
        ("spawn-0-2", "the cell is outside the board"),
        ("feed-3", "the area is outside the board"),
    ]
    assert made.board.same_as(step(board, [], STILL).board)


def _held_by_every_index() -> Board:
    """A board one cell wider than MAX_OWNERS organisms, each of an owner of its own (the free
    cell is its last), with one more player, PLAYER, present."""
    board = Board.empty(256, MAX_OWNERS // 256 + 1, 37.0)
    board.owners = [f"left-{index}" for index in range(MAX_OWNERS)]
    cells = board["kind"].reshape(-1)[:MAX_OWNERS]
    cells[:] = BACTERIA
    board["energy"].reshape(-1)[:MAX_OWNERS] = 1.0
    board["owner"].reshape(-1)[:MAX_OWNERS] = np.arange(MAX_OWNERS)
    return board


ROOMY = Rules(seed=7, diffusion_rate=0.0, mutation_rate=0.0, max_organisms=MAX_ORGANISMS_RANGE[1])


def test_a_newcomer_takes_over_an_owner_index_no_organism_holds_once_all_were_used() -> None:
    board = Board.empty(3, 1, 37.0)
    board.owners = [f"player-{index}" for index in range(MAX_OWNERS - 1)] + [PLAYER]
    board["kind"][0, 2] = BACTERIA
    board["energy"][0, 2] = 1.0
    board["owner"][0, 2] = 0  # player-0's organism: index 0 is held, index 1 is not

    made = step(board, [_spawn(0, 0, "newcomer"), _spawn(1, 0)], STILL)

    assert made.rejected == []
    assert made.board["owner"][0].tolist() == [1, MAX_OWNERS - 1, 0]
    assert made.board.owners[:2] == ["player-0", "newcomer"]
    assert len(made.board.owners) == MAX_OWNERS


def test_the_organisms_of_players_who_left_become_nobodys_and_their_indexes_free() -> None:
    board = Board.empty(4, 1, 37.0)
    board.owners = ["gone-a", PLAYER, "gone-b"]
    board["kind"][0, :3] = BACTERIA
    board["energy"][0, :3] = 1.0
    board["owner"][0, :3] = [2, 1, 0]

    made = step(board, [_spawn(3, 0, "gone-c")], STILL, present={PLAYER})

    assert made.applied == ["spawn-3-0"]
    assert made.board.owners == [NOBODY, PLAYER, NOBODY]
    assert made.board["owner"][0].tolist() == [0, 1, 0, 0]  # the departed's spawn too
    again = step(made.board, [], STILL, present={PLAYER}).board
    assert again.owners == made.board.owners
    assert np.array_equal(again["owner"], made.board["owner"])


def test_nobodys_organisms_keep_one_index_however_the_departures_fall() -> None:
    board = Board.empty(3, 1, 37.0)
    board.owners = ["gone-a", PLAYER, NOBODY]
    board["kind"][0, :] = BACTERIA
    board["energy"][0, :] = 1.0
    board["owner"][0, :] = [2, 1, 0]  # NOBODY's at index 2; gone-a's at 0, before it

    board.release_departed({PLAYER})

    assert board.owners == [NOBODY, PLAYER, NOBODY]
    assert board["owner"][0].tolist() == [0, 1, 0]
    assert board.owner_index(NOBODY) == 0


def test_players_who_joined_spawned_and_left_cannot_use_up_the_owner_indexes() -> None:
    # The attack: MAX_OWNERS players join, spawn, leave, and keep their organisms alive.
    board = _held_by_every_index()

    made = step(board, [_spawn(0, board.height - 1)], ROOMY, present={PLAYER})

    assert made.rejected == []
    assert made.board.owners.count(NOBODY) == MAX_OWNERS - 1
    held = np.unique(made.board["owner"][made.board.occupied()]).tolist()
    assert [made.board.owners[index] for index in held] == [NOBODY, PLAYER]


def test_a_spawn_finding_every_owner_index_held_is_rejected_at_its_tick() -> None:
    # Only without the players present (the step keeps every owner then): the fallback.
    board = _held_by_every_index()

    made = step(board, [_spawn(0, board.height - 1)], ROOMY)

    assert made.rejected == [
        (
            f"spawn-0-{board.height - 1}",
            f"all the arena's {MAX_OWNERS} owner indexes hold organisms",
        )
    ]
    assert made.board.owners == board.owners


# --- the domain's bounds --------------------------------------------------------------------------


def test_an_action_may_be_due_at_the_last_tick_the_board_can_record_and_no_later() -> None:
    arena, admin = _paused_arena(tick=3)
    arena.submit_action(admin, ActionType.SET_TEMPERATURE, TEMPERATURE, MAX_TICK, LATER)
    before = copy.deepcopy(arena)

    with pytest.raises(ValidationFailed) as raised:
        arena.submit_action(admin, ActionType.SET_TEMPERATURE, TEMPERATURE, MAX_TICK + 1, LATER)

    assert set(raised.value.field_errors) == {"applyAtTick"}
    assert arena == before


@pytest.mark.parametrize("changes", [{"width": 9}, {"height": 7}, {"width": 11, "tickMillis": 250}])
def test_the_grid_of_an_arena_that_has_ticked_cannot_change(changes: dict[str, int]) -> None:
    arena, admin = _paused_arena(tick=1)
    before = copy.deepcopy(arena)

    with pytest.raises(Conflict, match="grid"):
        arena.update_config(admin, changes, LATER)

    assert arena == before


def test_the_grid_may_change_before_the_first_tick_and_other_settings_after_it() -> None:
    arena, admin = _paused_arena(tick=0)
    arena.update_config(admin, {"width": 4, "height": 4}, LATER)
    arena.tick = 1

    arena.update_config(admin, {"width": 4, "tickMillis": 250}, LATER)

    assert (arena.config.width, arena.config.height, arena.config.tick_millis) == (4, 4, 250)
