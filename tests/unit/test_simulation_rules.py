"""Each rule of a tick on small hand-made boards (docs/simulation.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arena.simulation import rules
from arena.simulation.board import BACTERIA, EMPTY, ENERGY_QUANTUM, FUNGI, PHAGE, Board
from arena.simulation.rules import DueAction, Rules, step

PLAYER = "11111111-1111-1111-1111-111111111111"
STILL = Rules(seed=7, diffusion_rate=0.0, mutation_rate=0.0, max_organisms=100)


def _spawn(kind: str, x: int, y: int, action_id: str = "") -> DueAction:
    payload = {"kind": kind, "position": {"x": x, "y": y}}
    return DueAction(action_id or f"spawn-{x}-{y}", PLAYER, "SPAWN_ORGANISM", payload)


def _drop(kind: str, concentration: float, width: int, height: int) -> DueAction:
    area = {"x": 0, "y": 0, "width": width, "height": height}
    payload = {"area": area, "kind": kind, "concentration": concentration}
    return DueAction(f"drop-{kind}", PLAYER, "DROP_ANTIBIOTIC", payload)


def _nutrients(amount: float, width: int, height: int) -> DueAction:
    area = {"x": 0, "y": 0, "width": width, "height": height}
    return DueAction("feed", PLAYER, "ADD_NUTRIENTS", {"area": area, "amount": amount})


def _board(width: int = 5, height: int = 5, temperature: float = 37.0) -> Board:
    return Board.empty(width, height, temperature)


def _grid(energy: float) -> float:
    """Energy as the rules keep it: rounded down to ENERGY_QUANTUM."""
    return math.floor(energy / ENERGY_QUANTUM) * ENERGY_QUANTUM


def test_diffusion_conserves_the_total_exactly_and_spreads_to_neighbours() -> None:
    plane = np.zeros((5, 7), np.int32)
    plane[2, 3] = 8000
    plane[0, 0] = 4000  # a corner: nothing leaves the dish
    spread = rules._diffused(plane, 0.4)
    assert spread.sum() == 12000
    assert spread[2, 3] == 8000 - 4 * 800
    assert [spread[1, 3], spread[3, 3], spread[2, 2], spread[2, 4]] == [800] * 4
    assert spread[0, 0] == 4000 - 2 * 400  # two neighbours inside, two edges


def test_a_gradient_too_small_to_move_a_milli_unit_stays() -> None:
    plane = np.full((3, 3), 1000, np.int32)
    plane[1, 1] = 1009  # 0.1 / 4 of 9 milli-units rounds down to none
    assert (rules._diffused(plane, 0.1) == plane).all()


def test_decay_shrinks_nutrients_and_antibiotics_by_their_rates() -> None:
    board = _board()
    board["nutrients"][:] = 10_000  # 10 units
    board["antibiotic"][1][:] = 1_000
    after = step(board, [], STILL).board
    assert (after["nutrients"] == 10_000 - 10).all()  # 0.1%
    assert (after["antibiotic"][1] == 1_000 - 20).all()  # 2%
    assert (after["antibiotic"][0] == 0).all()


def test_actions_add_fields_in_milli_units_and_saturate() -> None:
    board = step(_board(), [_nutrients(2.5, 5, 5), _drop("C", 0.75, 5, 5)], STILL).board
    assert (board["nutrients"] == 2500 - 3).all()  # then 0.1% decay, rounded
    assert (board["antibiotic"][2] == 750 - 15).all()
    flooded = step(_board(), [_nutrients(3e9, 5, 5)], STILL).board
    assert (flooded["nutrients"] > 2_000_000_000).all()


def test_an_organism_feeds_from_its_cell_and_pays_for_the_temperature() -> None:
    board = _board(temperature=37.0)
    board["nutrients"][2, 2] = 1_000
    fed = step(board, [_spawn("BACTERIA", 2, 2)], STILL).board
    assert fed["nutrients"][2, 2] == 1_000 - 1 - 500  # decay, then the uptake limit of 0.5
    assert fed["energy"][2, 2] == _grid(rules.SPAWN_ENERGY + 0.5 - 0.10)

    cold = step(_board(temperature=17.0), [_spawn("BACTERIA", 2, 2)], STILL).board
    assert cold["energy"][2, 2] == _grid(1.0 - 0.10 - rules.TEMPERATURE_COST * 20)


def test_a_starving_organism_dies_when_its_energy_runs_out() -> None:
    board = step(_board(), [_spawn("BACTERIA", 1, 1)], STILL).board
    ticks = 1
    while board["kind"][1, 1] != EMPTY:
        board = step(board, [], STILL).board
        ticks += 1
    assert ticks == 10  # 1.0 energy at 0.1 a tick
    assert board["organism_id"][1, 1] == 0 and board["owner"][1, 1] == -1


def test_a_resistant_organism_survives_a_dose_that_kills_a_susceptible_one() -> None:
    board = step(_board(), [_spawn("BACTERIA", 0, 0), _spawn("BACTERIA", 4, 4)], STILL).board
    board["resistance"][0, 4, 4] = 2.0
    result = step(board, [_drop("A", 1.0, 5, 5)], STILL)
    assert result.board["kind"][0, 0] == EMPTY
    assert result.board["kind"][4, 4] == BACTERIA
    assert result.stats.deaths == 1


def test_fungi_withstand_twice_their_resistance() -> None:
    actions = [_spawn("FUNGI", 0, 0), _spawn("BACTERIA", 4, 4), _drop("B", 2.5, 5, 5)]
    board = step(_board(), actions, STILL).board
    assert board["kind"][0, 0] == FUNGI  # resistance 1.5 x 2 = 3.0 > 2.5
    assert board["kind"][4, 4] == EMPTY


def test_division_needs_a_free_neighbour() -> None:
    crowd = [_spawn("BACTERIA", 2, 2)] + [
        _spawn("BACTERIA", x, y) for x, y in ((2, 1), (3, 2), (2, 3), (1, 2))
    ]
    board = step(_board(), crowd, STILL).board
    board["energy"][2, 2] = 5.0
    boxed = step(board, [], STILL)
    assert boxed.stats.births == 0 and boxed.board["energy"][2, 2] == _grid(4.9)

    board["kind"][2, 1] = EMPTY  # the west neighbour (x 1, y 2) leaves
    board.clear(board["kind"] == EMPTY)
    freed = step(board, [], STILL)
    assert freed.stats.births == 1
    child = freed.board
    assert child["kind"][2, 1] == BACTERIA
    assert child["parent_id"][2, 1] == board["organism_id"][2, 2]
    assert child["generation"][2, 1] == 1 and child["offspring"][2, 2] == 1
    assert child["energy"][2, 1] == child["energy"][2, 2] == _grid(_grid(4.9) / 2)


def test_energy_stays_on_its_grid_however_it_changes() -> None:
    """Feeding, metabolism at any temperature, division and infection all round down to it."""
    busy = Rules(seed=11, diffusion_rate=0.2, mutation_rate=0.2, max_organisms=400)
    kinds = ("BACTERIA", "FUNGI", "PHAGE")
    spawns = [_spawn(kinds[(x + y) % 3], x, y) for x in range(0, 20, 3) for y in range(0, 20, 2)]
    board = step(_board(20, 20, 31.3), [*spawns, _nutrients(4.0, 20, 20)], busy).board
    births = 0
    for _ in range(40):
        result = step(board, [], busy)
        board, births = result.board, births + result.stats.births
        steps = board["energy"].astype(np.float64) / ENERGY_QUANTUM
        assert (steps == np.floor(steps)).all()
    assert births > 0


def test_spawns_and_births_stop_at_the_cap() -> None:
    capped = Rules(seed=3, diffusion_rate=0.0, mutation_rate=0.0, max_organisms=3)
    spawns = [_spawn("BACTERIA", x, 0) for x in range(5)]
    result = step(_board(), spawns, capped)
    assert result.applied == ["spawn-0-0", "spawn-1-0", "spawn-2-0"]
    assert result.rejected == [
        (f"spawn-{x}-0", "the arena holds its maximum of 3 organisms") for x in (3, 4)
    ]
    board = step(_board(), spawns[:2], capped).board
    board["energy"][0, :2] = 5.0
    grown = step(board, [], capped)
    assert grown.stats.births == 1 and grown.board.organism_count() == 3


def test_a_spawn_on_an_occupied_cell_is_rejected_not_an_error() -> None:
    result = step(_board(), [_spawn("BACTERIA", 1, 1, "a"), _spawn("FUNGI", 1, 1, "b")], STILL)
    assert result.applied == ["a"] and result.rejected == [("b", "the cell is occupied")]
    assert result.board["kind"][1, 1] == BACTERIA


def test_a_phage_next_to_a_bacterium_infects_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "INFECTION_PROBABILITY", 1.0)
    # Spawned in the same tick, the bacterium is infected in that tick (infection comes last).
    result = step(_board(), [_spawn("BACTERIA", 2, 2), _spawn("PHAGE", 3, 2)], STILL)
    after = result.board
    phage_id = int(after["organism_id"][2, 3])
    assert after["kind"][2, 2] == PHAGE and after["parent_id"][2, 2] == phage_id
    assert after["offspring"][2, 3] == 1 and after["generation"][2, 2] == 1
    assert (result.stats.births, result.stats.deaths) == (1, 1)


def test_a_bacterium_far_from_phages_is_not_infected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "INFECTION_PROBABILITY", 1.0)
    board = step(_board(), [_spawn("BACTERIA", 0, 0), _spawn("PHAGE", 2, 2)], STILL).board
    assert step(board, [], STILL).board["kind"][0, 0] == BACTERIA


def test_children_mutate_with_the_mutation_rate() -> None:
    def child_of(mutation_rate: float) -> Board:
        rules_ = Rules(seed=11, diffusion_rate=0.0, mutation_rate=mutation_rate, max_organisms=9)
        board = step(_board(3, 1), [_spawn("BACTERIA", 0, 0)], rules_).board
        board["energy"][0, 0] = 5.0
        return step(board, [], rules_).board

    same = child_of(0.0)
    assert same["growth_rate"][0, 1] == same["growth_rate"][0, 0]
    assert same["mutations"][0, 1] == 0
    mutated = child_of(1.0)
    assert mutated["mutations"][0, 1] == 5  # every gene
    assert mutated["growth_rate"][0, 1] != mutated["growth_rate"][0, 0]


def test_actions_apply_in_submission_order() -> None:
    hot = DueAction("t1", PLAYER, "SET_TEMPERATURE", {"temperature": {"value": 50.0, "unit": "C"}})
    cool = DueAction("t2", PLAYER, "SET_TEMPERATURE", {"temperature": {"value": 20.0, "unit": "C"}})
    result = step(_board(), [hot, cool], STILL)
    assert result.applied == ["t1", "t2"] and (result.board["temperature"] == 20.0).all()


def test_the_step_leaves_its_input_board_alone_and_counts_the_tick() -> None:
    board = _board()
    before = board.canonical_bytes()
    result = step(board, [_spawn("BACTERIA", 0, 0), _nutrients(2.0, 5, 5)], STILL)
    assert board.canonical_bytes() == before
    assert (board.tick, result.board.tick) == (0, 1)
    assert result.stats.organism_count == 1 and result.board.owners == [PLAYER]


def test_fitness_counts_energy_age_and_offspring() -> None:
    board = step(_board(), [_spawn("BACTERIA", 0, 0)], STILL).board
    board.tick += 10
    board["offspring"][0, 0] = 2
    value = rules.fitness(board)[0, 0]
    assert value == pytest.approx(board["energy"][0, 0] + 0.01 * 10 + 0.5 * 2)
    assert rules.fitness(board)[4, 4] == 0.0
