"""`python -m bench chaos` (`make chaos`): the chaos matrix (harness/chaos.py) over every fault, or
the ones asked for, printed as a Markdown table with the machine it ran on; docs/reliability.md
explains each column. Exits 1 unless every row is clean.

`--cluster` (`make chaos-cluster`) runs the pipeline on the replicated topology of
stack/topology.py (its three Kafka nodes, which must be up) and its node faults instead."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from arena.settings import Settings
from bench.client import start_client
from bench.table import machine_lines, print_markdown
from harness import chaos
from harness.chaos import HEADERS, Windows, run_matrix
from harness.faults import CLUSTER_SHORT, SHORT, TOPOLOGY_FAULTS
from harness.resources import on_kafka


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench chaos",
        description=chaos.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    every = {name for faults in TOPOLOGY_FAULTS.values() for name in faults}
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="on the three Kafka nodes (`make cluster-kafka`), with the faults of their nodes",
    )
    parser.add_argument(
        "--short", action="store_true", help=f"only {', '.join(SHORT)} (--cluster: {CLUSTER_SHORT})"
    )
    parser.add_argument("--only", nargs="+", choices=sorted(every), metavar="FAULT")
    parser.add_argument("--fault-seconds", type=float, default=Windows.fault_seconds)
    parser.add_argument("--quiet-seconds", type=float, default=Windows.quiet_seconds)
    parser.add_argument("--after-seconds", type=float, default=Windows.after_seconds)
    args = parser.parse_args(argv)
    kafka_topology = "cluster" if args.cluster else "single"
    faults = TOPOLOGY_FAULTS[kafka_topology]
    short = CLUSTER_SHORT if args.cluster else SHORT
    names = args.only or (short if args.short else list(faults))
    if unknown := [name for name in names if name not in faults]:
        parser.error(f"not a fault of the {kafka_topology} topology: {', '.join(unknown)}")
    base = Settings.from_env()
    workdir = start_client(base, "arena-chaos-")
    load_at_start = os.getloadavg()
    windows = Windows(args.quiet_seconds, args.fault_seconds, args.after_seconds)
    outcomes = run_matrix(
        [faults[name] for name in names], windows, workdir, kafka_topology=kafka_topology
    )
    print_markdown(
        "Chaos matrix: one fault at a time under load (docs/reliability.md)"
        + (" on the Kafka cluster" if args.cluster else ""),
        [*machine_lines(on_kafka(base, kafka_topology), load_at_start), f"Logs in {workdir}"],
        HEADERS,
        [outcome.cells() for outcome in outcomes],
        text_columns={0, 9, 10, 11},
    )
    return 0 if all(outcome.clean for outcome in outcomes) else 1
