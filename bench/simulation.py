"""`python -m bench simulation` (`make bench-simulation`): the cost of one simulation step.

For each board size, a population is spawned over a quarter of the cells (every kind, four
players), fed, and left to settle for `--settle` ticks; then `--steps` steps are timed one by one
in CPU time of this process (numpy runs on one core here). Beside each size, in the same run: the
cost of copying that board (the floor any step pays, since it never changes its input), so the
step reads as a ratio too; and the bytes a tick's delta and a snapshot take on the wire.
No services needed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from arena.simulation import delta
from arena.simulation.board import Board
from arena.simulation.rules import DueAction, Rules, step
from arena.stored_board import encode
from bench.table import print_markdown

KINDS = ("BACTERIA", "BACTERIA", "FUNGI", "PHAGE")
TARGET_MS = {256: 10.0}  # the target: a 256 x 256 step within 10 ms on one core


def settled_board(side: int, settle: int, seed: int) -> tuple[Board, Rules]:
    rng = np.random.default_rng(seed)
    cells = rng.choice(side * side, size=side * side // 4, replace=False)
    spawns = [
        DueAction(
            f"spawn-{index}",
            f"player-{index % 4}",
            "SPAWN_ORGANISM",
            {"kind": KINDS[index % 4], "position": {"x": int(cell % side), "y": int(cell // side)}},
        )
        for index, cell in enumerate(cells)
    ]
    everywhere = {"x": 0, "y": 0, "width": side, "height": side}
    feed = DueAction("feed", "player-0", "ADD_NUTRIENTS", {"area": everywhere, "amount": 5.0})
    rules = Rules(seed=seed, diffusion_rate=0.1, mutation_rate=0.01, max_organisms=side * side)
    board = step(Board.empty(side, side, 37.0), [*spawns, feed], rules).board
    for _ in range(settle):
        board = step(board, [], rules).board
    return board, rules


def cpu_ms(action: Callable[[], object], times: int) -> list[float]:
    samples = []
    for _ in range(times):
        started = time.process_time()
        action()
        samples.append((time.process_time() - started) * 1000)
    return samples


def measure(side: int, steps: int, settle: int, seed: int) -> list[str]:
    board, rules = settled_board(side, settle, seed)
    copy_ms = statistics.median(cpu_ms(board.copy, max(steps, 20)))
    step_ms, delta_bytes, organisms = [], [], []
    for _ in range(steps):
        started = time.process_time()
        result = step(board, [], rules)
        step_ms.append((time.process_time() - started) * 1000)
        wire = json.dumps(delta.encode(delta.diff(board, result.board)), separators=(",", ":"))
        delta_bytes.append(len(wire))
        organisms.append(result.stats.organism_count)
        board = result.board
    p50 = statistics.median(step_ms)
    p99 = statistics.quantiles(step_ms, n=100, method="inclusive")[98]
    target = TARGET_MS.get(side)
    verdict = f"≤ {target:.0f} ms {'✓' if p50 <= target else '✗'}" if target else ""
    return [
        f"{side} x {side}",
        f"{statistics.mean(organisms):,.0f}",
        f"{p50:.2f}",
        f"{p99:.2f}",
        f"{copy_ms:.3f}",
        f"{p50 / copy_ms:.1f}",
        f"{statistics.median(delta_bytes) / 1024:,.1f}",
        f"{len(encode(board)) / 1024:,.1f}",
        verdict,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench simulation", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--steps", type=int, default=50, help="timed steps per size")
    parser.add_argument("--settle", type=int, default=20, help="ticks before timing")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    load_at_start = os.getloadavg()[0]
    rows = [measure(side, args.steps, args.settle, args.seed) for side in args.sizes]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    machine = [
        f"Machine: {cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"numpy {np.__version__}",
        f"Load average (1 min) {load_at_start:.2f} at start, {os.getloadavg()[0]:.2f} at end",
        f"{args.steps} timed steps per size after {args.settle} ticks of settling; CPU time of "
        "this process (one core)",
    ]
    headers = [
        "board",
        "organisms",
        "step p50 ms",
        "step p99 ms",
        "board copy ms",
        "step ÷ copy",
        "delta KiB/tick",
        "snapshot KiB",
        "target",
    ]
    print_markdown("Simulation step", machine, headers, rows, (0, len(headers) - 1))
    return 0
