"""`python -m bench queries`: the dish's queries at the worst case the bounds allow.

The largest board (512 x 512, GRID_SIDE_RANGE) with an organism in every cell (maxOrganisms
allows 512²), each organism of a genome of its own (the most signatures to compute), owned by
four players. Each query's work after its Redis reads, in this process: wall and CPU time of one
run, then the peak of Python's allocations (tracemalloc) over a second run. A streamed answer is
consumed piece by piece, as the server sends it. No services needed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from arena.domain.config import GRID_SIDE_RANGE
from arena.http.dish_bodies import (
    board_json,
    genome_body,
    leaderboard_body,
    organism_body,
    organisms,
    stats_body,
)
from arena.http.schemas import HISTORY_FULL_MAX_CELLS
from bench.table import print_markdown
from harness.boards import PLAYERS, crowded

VIEW = {"id": "arena-1", "version": 1, "stats": None}


def consumed(pieces: Iterable[str]) -> int:
    return sum(len(piece) for piece in pieces)


def measure(name: str, query: Callable[[], object]) -> list[str]:
    wall, cpu = time.perf_counter(), time.process_time()
    query()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    tracemalloc.start()
    try:
        query()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return [name, f"{wall:.2f}", f"{cpu:.2f}", f"{peak / 2**20:,.0f}"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench queries", description=__doc__)
    parser.add_argument("--side", type=int, default=GRID_SIDE_RANGE[1])
    args = parser.parse_args(argv)
    side = args.side
    board = crowded(side, distinct_genomes=side * side)
    some = board.occupied()
    organism = int(board["organism_id"][some][side])
    genome = leaderboard_body(board, PLAYERS, 1)["entries"][0]["genomeSignature"]
    boards = min(200, HISTORY_FULL_MAX_CELLS // (side * side))  # the most FULL allows
    load_at_start = os.getloadavg()[0]
    rows = [
        measure("GET /board (streamed)", lambda: consumed(board_json(board, VIEW))),
        measure(
            f"GET /history?mode=FULL, {boards} boards (streamed)",
            lambda: consumed(piece for _ in range(boards) for piece in board_json(board, VIEW)),
        ),
        measure(
            "every organism's object at once (no route builds this now)",
            lambda: len(json.dumps(organisms(board))),
        ),
        measure("GET /leaderboard?top=100", lambda: leaderboard_body(board, PLAYERS, 100)),
        measure("GET /stats", lambda: stats_body(board, [], 60, datetime.now(UTC))),
        measure("GET /genomes/{signature}", lambda: genome_body(board, genome)),
        measure("GET /organisms/{id}", lambda: organism_body(board, organism)),
    ]
    machine = [
        f"{side} x {side}, {board.organism_count():,} organisms, each its own genome",
        f"{os.cpu_count()} cores; load average (1 min) {load_at_start:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end",
    ]
    headers = ["query (its work after the Redis reads)", "wall s", "CPU s", "peak MiB"]
    print_markdown("Dish queries, worst case", machine, headers, rows, (0,))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
