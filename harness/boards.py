"""Crowded boards for the dish's queries: an organism in every cell, with as many genomes as asked.
The query benchmark measures the largest the bounds allow (bench/queries.py); the unit tests
check the queries' answers and memory on smaller ones."""

from __future__ import annotations

import numpy as np

from arena.simulation.board import BACTERIA, FUNGI, Board

PLAYERS = [{"playerId": f"player-{n}", "displayName": f"Player {n}"} for n in range(4)]


def crowded(side: int, distinct_genomes: int, seed: int = 1) -> Board:
    """Every cell an organism, of two kinds and four owners, with `distinct_genomes` genomes."""
    board = Board.empty(side, side, 37.0)
    rng = np.random.default_rng(seed)
    board["kind"][:] = np.where(rng.random((side, side)) < 0.5, BACTERIA, FUNGI)
    board["organism_id"][:] = np.arange(1, side * side + 1).reshape(side, side)
    board.owners[:] = [player["playerId"] for player in PLAYERS]
    board["owner"][:] = rng.integers(0, len(PLAYERS), (side, side))
    board["energy"][:] = rng.uniform(0.1, 9.0, (side, side))
    genes = rng.uniform(0.5, 1.5, distinct_genomes).astype(board["growth_rate"].dtype)
    board["growth_rate"][:] = genes[rng.integers(0, distinct_genomes, (side, side))]
    board["nutrients"][:] = rng.integers(0, 5000, board["nutrients"].shape)
    return board
