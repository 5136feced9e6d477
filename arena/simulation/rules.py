"""One tick of the petri dish, in the documented order (docs/simulation.md):

actions due → diffusion and decay → feeding → metabolism → death → reproduction → phage
infection; the `max_organisms` cap holds throughout (spawns and births past it do not happen).

Deterministic: every random draw comes from PCG64 seeded by `(seed, tick)` for the tick being
made, in a fixed order, so the same board, actions and seed give the same next board anywhere.
The step never changes the board it is given.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from arena.simulation.board import (
    ANTIBIOTICS,
    BACTERIA,
    EMPTY,
    ENERGY_QUANTUM,
    FUNGI,
    KIND_CODES,
    MAX_OWNERS,
    NOBODY,
    PHAGE,
    Board,
)
from arena.simulation.genome import DEFAULT_GENOMES, GENES, mutate

# --- the constants (docs/simulation.md lists them with their reasons) --------------------------
FIELD_SCALE = 1000  # nutrients and antibiotics are kept in integer milli-units
FIELD_MAX = 2**31 - 1  # a field cell saturates here (about 2.1 million units)
NUTRIENT_DECAY = 0.001  # share of every cell's nutrients lost per tick
ANTIBIOTIC_DECAY = 0.02  # share of every antibiotic lost per tick
UPTAKE_PER_GROWTH = 0.5  # nutrients an organism can take per tick, per unit of growth rate
ENERGY_PER_NUTRIENT = 1.0
SPAWN_ENERGY = 1.0
BASE_COST = {BACTERIA: 0.10, FUNGI: 0.06, PHAGE: 0.15}  # energy per tick, at the optimum
TEMPERATURE_COST = 0.01  # extra energy per tick per °C away from the genome's optimum
DIVIDE_AT = {BACTERIA: 2.0, FUNGI: 3.0}  # energy at which an organism divides in two
FUNGI_RESISTANCE_FACTOR = 2.0  # fungi withstand this many times their resistance genes
INFECTION_PROBABILITY = 0.5  # per tick, for a bacterium next to at least one phage
PHAGE_BIRTH_ENERGY = 1.0
PHAGE_GAIN = 0.5  # energy a phage gains per bacterium it infects
FITNESS_AGE_WEIGHT = 0.01
FITNESS_OFFSPRING_WEIGHT = 0.5

# Von Neumann neighbours (dy, dx), in the order ties are broken: north, east, south, west.
NEIGHBOURS = ((-1, 0), (0, 1), (1, 0), (0, -1))
_ORDERS = np.array(list(itertools.permutations(range(len(NEIGHBOURS)))))  # the 24 orders to try


@dataclass(frozen=True, slots=True)
class DueAction:
    """A submitted action whose `applyAtTick` is the tick being made, as the domain recorded it."""

    action_id: str
    player_id: str
    action_type: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Rules:
    """The arena config's share in the rules."""

    seed: int
    diffusion_rate: float
    mutation_rate: float
    max_organisms: int


@dataclass(frozen=True, slots=True)
class TickStats:
    organism_count: int
    births: int
    deaths: int
    mutations: int
    avg_fitness: float

    def to_json(self) -> dict[str, Any]:
        """As `TickAdvanced` carries them (the engine adds `ticksSkipped`)."""
        return {
            "organismCount": self.organism_count,
            "births": self.births,
            "deaths": self.deaths,
            "mutations": self.mutations,
            "avgFitness": self.avg_fitness,
        }


@dataclass(slots=True)
class TickResult:
    board: Board
    stats: TickStats
    applied: list[str] = field(default_factory=list)  # action ids, in submission order
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (action id, reason)


@dataclass(slots=True)
class _Counts:
    births: int = 0
    deaths: int = 0
    mutations: int = 0


def step(
    board: Board,
    actions: Sequence[DueAction],
    rules: Rules,
    present: Collection[str] | None = None,
) -> TickResult:
    """The board one tick later. Given the arena's `present` players, the organisms of those who
    left (and those their due spawns place) become NOBODY's first: then at most one `owner` index
    per player present, plus NOBODY's, holds organisms, and a newcomer always finds a free one
    (`Board.owner_index`)."""
    tick = board.tick + 1
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([rules.seed, tick])))
    nxt = board.copy()
    nxt.tick = tick
    counts = _Counts()
    result = TickResult(nxt, TickStats(0, 0, 0, 0, 0.0))
    if present is not None:
        nxt.release_departed(present)
    for action in actions:
        if present is not None and action.player_id not in present:
            action = replace(action, player_id=NOBODY)
        reason = _apply(nxt, action, rules)
        if reason is None:
            result.applied.append(action.action_id)
        else:
            result.rejected.append((action.action_id, reason))
    _diffuse_and_decay(nxt, rules.diffusion_rate)
    _feed(nxt)
    _metabolise(nxt)
    counts.deaths += _die(nxt)
    _reproduce(nxt, rules, rng, counts)
    _infect(nxt, rules, rng, counts)
    result.stats = TickStats(
        organism_count=nxt.organism_count(),
        births=counts.births,
        deaths=counts.deaths,
        mutations=counts.mutations,
        avg_fitness=_mean(fitness(nxt)[nxt.occupied()]),
    )
    return result


def fitness(board: Board) -> npt.NDArray[np.float64]:
    """Per cell: energy + 0.01 x age in ticks + 0.5 x offspring (0 on empty cells)."""
    age = (board.tick - board["born_tick"]).astype(np.float64)
    value = (
        board["energy"].astype(np.float64)
        + FITNESS_AGE_WEIGHT * age
        + FITNESS_OFFSPRING_WEIGHT * board["offspring"]
    )
    return np.where(board.occupied(), value, 0.0)


# --- actions -----------------------------------------------------------------------------------


def _apply(board: Board, action: DueAction, rules: Rules) -> str | None:
    """Apply one action; the reason it was rejected, if it was.

    An action was checked against the grid when it was submitted, but the grid may have shrunk
    before the first tick, so cells outside the board reject it here."""
    payload = action.payload
    if action.action_type in ("ADD_NUTRIENTS", "DROP_ANTIBIOTIC"):
        area = payload["area"]
        if not _inside(board, area["x"], area["y"], area["width"], area["height"]):
            return "the area is outside the board"
        if action.action_type == "ADD_NUTRIENTS":
            _add(board["nutrients"][_cells(area)], payload["amount"])
        else:
            plane = ANTIBIOTICS.index(payload["kind"])
            _add(board["antibiotic"][plane][_cells(area)], payload["concentration"])
    elif action.action_type == "SET_TEMPERATURE":
        board["temperature"][:] = np.float32(payload["temperature"]["value"])
    elif action.action_type == "SPAWN_ORGANISM":
        x, y = payload["position"]["x"], payload["position"]["y"]
        if not _inside(board, x, y, 1, 1):
            return "the cell is outside the board"
        if board["kind"][y, x] != EMPTY:
            return "the cell is occupied"
        if board.organism_count() >= rules.max_organisms:
            return f"the arena holds its maximum of {rules.max_organisms} organisms"
        owner = board.owner_index(action.player_id)
        if owner is None:
            return f"all the arena's {MAX_OWNERS} owner indexes hold organisms"
        kind = KIND_CODES[payload["kind"]]
        _place(board, y, x, kind, owner, SPAWN_ENERGY)
        genome = DEFAULT_GENOMES[kind]
        board["growth_rate"][y, x] = genome.growth_rate
        board["resistance"][:, y, x] = genome.resistance
        board["optimum_temperature"][y, x] = genome.optimum_temperature
    else:
        return f"unknown action type {action.action_type!r}"
    return None


def _inside(board: Board, x: int, y: int, width: int, height: int) -> bool:
    return min(x, y) >= 0 and x + width <= board.width and y + height <= board.height


def _cells(area: dict[str, Any]) -> tuple[slice, slice]:
    return (
        slice(area["y"], area["y"] + area["height"]),
        slice(area["x"], area["x"] + area["width"]),
    )


def _place(board: Board, y: Any, x: Any, kind: Any, owner: Any, energy: Any) -> None:
    """New organisms at (y, x) — scalars or index arrays — with fresh ids, born this tick."""
    count = np.size(y)
    ids = np.arange(board.next_organism_id, board.next_organism_id + count, dtype=np.int64)
    board.next_organism_id += count
    board["organism_id"][y, x] = ids if np.ndim(y) else ids[0]
    board["kind"][y, x] = kind
    board["owner"][y, x] = owner
    board["energy"][y, x] = energy
    board["born_tick"][y, x] = board.tick
    board["offspring"][y, x] = 0
    board["generation"][y, x] = 0
    board["parent_id"][y, x] = 0
    board["mutations"][y, x] = 0


# --- the environment ---------------------------------------------------------------------------


def _add(cells: npt.NDArray[np.int32], amount: float) -> None:
    """Add `amount` (in units) to field cells, in milli-units, saturating at the field's top
    (an amount past it, which the domain refuses, saturates too rather than overflow int64)."""
    total = cells.astype(np.int64) + min(round(amount * FIELD_SCALE), FIELD_MAX)
    cells[...] = np.minimum(total, FIELD_MAX)


def _diffuse_and_decay(board: Board, rate: float) -> None:
    """Each cell gives `rate / 4` of its content to each of its four neighbours (none across the
    edge: the dish is closed), then loses its decay share. Integer milli-units throughout: every
    edge moves one whole amount, so the total is conserved exactly, and a gradient too small to
    move a milli-unit, like a decay too small to round to one, changes nothing."""
    for name, decay in (("nutrients", NUTRIENT_DECAY), ("antibiotic", ANTIBIOTIC_DECAY)):
        layer = board[name]
        planes = layer if layer.ndim == 3 else layer[np.newaxis]
        for plane in planes:
            if plane.any():
                diffused = _diffused(plane, rate)
                lost = (diffused * round(decay * 2**20) + 2**19) >> 20  # rounded to the nearest
                plane[...] = diffused - lost


def _diffused(plane: npt.NDArray[np.int32], rate: float) -> npt.NDArray[np.int64]:
    level = plane.astype(np.int64)
    share = round(rate / 4 * 2**16)  # of a difference, per edge, in 1/65536ths
    across = _flow(level[:, :-1] - level[:, 1:], share)  # west → east over each inner edge
    down = _flow(level[:-1, :] - level[1:, :], share)  # north → south
    level[:, :-1] -= across
    level[:, 1:] += across
    level[:-1, :] -= down
    level[1:, :] += down
    return level


def _flow(difference: npt.NDArray[np.int64], share: int) -> npt.NDArray[np.int64]:
    """`share` of each difference, truncated toward zero (so it never overshoots)."""
    moved: npt.NDArray[np.int64] = np.sign(difference) * ((np.abs(difference) * share) >> 16)
    return moved


def _feed(board: Board) -> None:
    eaters = board.occupied() & (board["kind"] != PHAGE)
    wanted = np.rint(board["growth_rate"].astype(np.float64) * UPTAKE_PER_GROWTH * FIELD_SCALE)
    uptake = np.where(eaters, np.minimum(board["nutrients"], wanted.astype(np.int64)), 0)
    board["nutrients"][...] = board["nutrients"] - uptake
    gained = uptake / FIELD_SCALE * ENERGY_PER_NUTRIENT
    board["energy"][...] = _on_grid(board["energy"] + gained)


def _metabolise(board: Board) -> None:
    kind = board["kind"]
    base = np.select([kind == code for code in BASE_COST], list(BASE_COST.values()), 0.0)
    distance = np.abs(board["temperature"] - board["optimum_temperature"])
    cost = np.where(board.occupied(), base + TEMPERATURE_COST * distance, 0.0)
    board["energy"][...] = _on_grid(board["energy"] - cost)


def _on_grid(energy: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    """Energy rounded down to ENERGY_QUANTUM: an organism never holds more than exact arithmetic
    would give it, and each tick changes it by whole steps, which deltas carry as small
    integers (`delta.FLOAT_SCALES`) instead of float bits."""
    steps = np.floor(energy.astype(np.float64) / ENERGY_QUANTUM)
    on_grid: npt.NDArray[np.float32] = (steps * ENERGY_QUANTUM).astype(np.float32)
    return on_grid


def _die(board: Board) -> int:
    """Starved (energy ≤ 0), or poisoned: an antibiotic above the organism's resistance to it
    (fungi withstand twice theirs; phages none)."""
    kind = board["kind"]
    tolerance = board["resistance"] * np.where(kind == FUNGI, FUNGI_RESISTANCE_FACTOR, 1.0)
    poisoned = (board["antibiotic"] > tolerance * FIELD_SCALE).any(axis=0) & (kind != PHAGE)
    dead = board.occupied() & ((board["energy"] <= 0) | poisoned)
    board.clear(dead)
    return int(np.count_nonzero(dead))


# --- life --------------------------------------------------------------------------------------


def _reproduce(board: Board, rules: Rules, rng: np.random.Generator, counts: _Counts) -> None:
    """Organisms past their division energy split it with a child in a free neighbouring cell.

    Each parent tries its four neighbours in an order of its own; in each of four rounds the
    parents still without a cell claim their next free neighbour, and a cell two parents claim
    goes to the one with the higher random priority. Births stop at the cap, in priority order.
    """
    kind = board["kind"]
    threshold = np.select([kind == code for code in DIVIDE_AT], list(DIVIDE_AT.values()), np.inf)
    free = ~board.occupied()
    has_room = _around(free).any(axis=0)
    ready_y, ready_x = np.nonzero(~free & (board["energy"] >= threshold) & has_room)
    count = ready_y.size
    order = rng.permutation(count)  # the parents' priority, highest first
    preference = _ORDERS[rng.integers(0, len(_ORDERS), count)]
    ready_y, ready_x = ready_y[order], ready_x[order]
    room = max(0, rules.max_organisms - board.organism_count())
    waiting = np.ones(count, bool)
    parent_rows, child_y, child_x = [], [], []
    steps = np.array(NEIGHBOURS)
    for round_ in range(len(NEIGHBOURS)):
        if room <= 0 or not waiting.any():
            break
        step_ = steps[preference[:, round_]]
        target_y, target_x = ready_y + step_[:, 0], ready_x + step_[:, 1]
        inside = (
            (target_y >= 0) & (target_y < board.height) & (target_x >= 0) & (target_x < board.width)
        )
        candidates = np.flatnonzero(waiting & inside)
        candidates = candidates[free[target_y[candidates], target_x[candidates]]]
        # Parents are in priority order: the first claim of each cell wins it.
        cells = target_y[candidates] * board.width + target_x[candidates]
        _, first = np.unique(cells, return_index=True)
        winners = np.sort(candidates[first])[:room]
        room -= winners.size
        waiting[winners] = False
        free[target_y[winners], target_x[winners]] = False
        parent_rows.append(winners)
        child_y.append(target_y[winners])
        child_x.append(target_x[winners])
    if not parent_rows:
        return
    parents = np.concatenate(parent_rows)
    if parents.size == 0:
        return
    py, px = ready_y[parents], ready_x[parents]
    cy, cx = np.concatenate(child_y), np.concatenate(child_x)
    half = _on_grid(board["energy"][py, px] / 2)
    board["energy"][py, px] = half
    board["offspring"][py, px] += 1
    _bear(board, (py, px), (cy, cx), half, rules, rng, counts)


def _infect(board: Board, rules: Rules, rng: np.random.Generator, counts: _Counts) -> None:
    """A bacterium next to a phage is infected with probability 0.5: it dies, and a child of one
    of those phages (chosen at random) takes its cell; the infecting phage gains energy."""
    kind = board["kind"]
    phages_around = _around(kind == PHAGE)
    by, bx = np.nonzero((kind == BACTERIA) & phages_around.any(axis=0))
    count = by.size
    draws = rng.random(count)
    keys = rng.random((count, len(NEIGHBOURS)))
    phage_near = phages_around[:, by, bx].T
    infected = draws < INFECTION_PROBABILITY
    if not infected.any():
        return
    chosen = np.argmax(np.where(phage_near, keys, -1.0), axis=1)[infected]
    steps = np.array(NEIGHBOURS)[chosen]
    cy, cx = by[infected], bx[infected]
    py, px = cy + steps[:, 0], cx + steps[:, 1]
    np.add.at(board["offspring"], (py, px), 1)
    np.add.at(board["energy"], (py, px), np.float32(PHAGE_GAIN))
    board.clear(_mask(board, cy, cx))
    counts.deaths += cy.size
    energy = np.full(cy.size, PHAGE_BIRTH_ENERGY, np.float32)
    _bear(board, (py, px), (cy, cx), energy, rules, rng, counts)


def _bear(
    board: Board,
    parent: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    child: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    energy: npt.NDArray[np.float32],
    rules: Rules,
    rng: np.random.Generator,
    counts: _Counts,
) -> None:
    """Children in empty cells `child` of the organisms at `parent`: same kind and owner, the
    next generation, the parent's genes each mutated with probability `mutation_rate`."""
    genes = np.stack([_gene(board, gene)[parent] for gene in GENES], axis=1)
    mutated, hits = mutate(genes, rules.mutation_rate, rng)
    parent_kind = board["kind"][parent]
    _place(board, *child, parent_kind, board["owner"][parent], energy)
    board["generation"][child] = board["generation"][parent] + 1
    board["parent_id"][child] = board["organism_id"][parent]
    board["mutations"][child] = board["mutations"][parent] + hits
    for index, gene in enumerate(GENES):
        _gene(board, gene)[child] = mutated[:, index]
    counts.births += child[0].size
    counts.mutations += int(hits.sum())


def _gene(board: Board, gene: Any) -> npt.NDArray[np.float32]:
    layer = board[gene.layer]
    return layer if gene.plane is None else layer[gene.plane]


def _around(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """(4, H, W): for each cell, whether its neighbour in each of `NEIGHBOURS` is in `mask`
    (outside the grid is not)."""
    padded = np.pad(mask, 1, constant_values=False)
    height, width = mask.shape
    return np.stack(
        [padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in NEIGHBOURS]
    )


def _mask(board: Board, y: npt.NDArray[np.intp], x: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    mask = np.zeros((board.height, board.width), bool)
    mask[y, x] = True
    return mask


def _mean(values: npt.NDArray[np.float64]) -> float:
    return round(float(values.mean()), 6) if values.size else 0.0
