"""`python -m bench chaos` (`make chaos`): the chaos matrix (harness/chaos.py) over every fault, or
the ones asked for, printed as a Markdown table with the machine it ran on; docs/reliability.md
explains each column. Exits 1 unless every row is clean."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from arena.settings import Settings
from bench.client import start_client
from bench.table import machine_lines, print_markdown
from harness import chaos
from harness.chaos import HEADERS, Windows, run_matrix
from harness.faults import FAULTS, SHORT


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench chaos",
        description=chaos.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--short", action="store_true", help=f"only {', '.join(SHORT)}")
    parser.add_argument("--only", nargs="+", choices=FAULTS, metavar="FAULT", help="these faults")
    parser.add_argument("--fault-seconds", type=float, default=Windows.fault_seconds)
    parser.add_argument("--quiet-seconds", type=float, default=Windows.quiet_seconds)
    parser.add_argument("--after-seconds", type=float, default=Windows.after_seconds)
    args = parser.parse_args(argv)
    names = args.only or (SHORT if args.short else list(FAULTS))
    base = Settings.from_env()
    workdir = start_client(base, "arena-chaos-")
    load_at_start = os.getloadavg()
    windows = Windows(args.quiet_seconds, args.fault_seconds, args.after_seconds)
    outcomes = run_matrix([FAULTS[name] for name in names], windows, workdir)
    print_markdown(
        "Chaos matrix: one fault at a time under load (docs/reliability.md)",
        [*machine_lines(base, load_at_start), f"Logs in {workdir}"],
        HEADERS,
        [outcome.cells() for outcome in outcomes],
        text_columns={0, 9, 10, 11},
    )
    return 0 if all(outcome.clean for outcome in outcomes) else 1
