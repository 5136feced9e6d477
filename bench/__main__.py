"""`python -m bench NAME [options]`: run one benchmark; `python -m bench --help` lists them.

Each benchmark is a module of this package with `main(argv) -> int`, imported only when asked
for, so that the listing is quick and one benchmark's imports never slow another down.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

BENCHMARKS = {
    "chaos": ("bench.chaos", "one fault at a time under load: lost, applied twice, converge time"),
    "pipeline": (
        "bench.pipeline",
        "the whole pipeline: CPU per event per process, capacity, latency, drains",
    ),
    "queries": ("bench.queries", "the dish's queries at the worst case allowed: time, memory"),
    "relay": ("bench.relay", "the outbox relay: batched vs one-row throughput, commit → Kafka"),
    "simulation": ("bench.simulation", "one simulation step per board size: CPU ms, delta bytes"),
    "ticking": ("bench.ticking", "many arenas ticking on the whole pipeline: drift, lag, CPU"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Hand the options after NAME to that benchmark's `main`; answer its exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    listing = "\n".join(f"  {name:<10} {about}" for name, (_, about) in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run one benchmark on the local services (docs/benchmarks.md).",
        epilog=f"benchmarks:\n{listing}\n\n`python -m bench NAME --help` lists NAME's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", metavar="NAME", choices=BENCHMARKS, help="the benchmark to run")
    parser.parse_args(arguments[:1])  # NAME's own options are its business
    benchmark: Callable[[Sequence[str]], int] = importlib.import_module(
        BENCHMARKS[arguments[0]][0]
    ).main
    return benchmark(arguments[1:])


if __name__ == "__main__":
    sys.exit(main())
