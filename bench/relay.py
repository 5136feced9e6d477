"""Outbox relay benchmark: batched vs one-row-at-a-time throughput, and commit → Kafka latency.

Run from the project root: `.venv/bin/python -m bench relay [options]` (`make bench-relay`).
It uses the local services (PostgreSQL, RabbitMQ, Redis, Kafka on 127.0.0.1) but only resources
of its own, named after a random run id: a database `arena_bench_<id>` (migrated), topics
`arena.events[.dlq].bench-<id>`, Celery queues and a consumer group. It removes them at the end,
also after a failure or Ctrl-C, and prints one table. docs/benchmarks.md explains the figures.

1. Batched relay (bench/relay_throughput.py): COPY N pending outbox rows, drain them in-process
   with the real `relay_pending` at the configured batch size; check Kafka got N records and
   nothing is left pending.
2. One-row relay: the same code with batch size 1 over fresh rows (what batching buys).
3. Latency (bench/relay_latency.py): a real Celery worker and beat as subprocesses, commands
   through the API in-process at a steady rate, a Kafka consumer thread timing each event's
   arrival; once with the nudge (OUTBOX_NUDGE=true) and once with beat only. Kafka record
   timestamps and Celery's own task events split the latency into its hops.

A phase disturbed by a Kafka outage (another engineer's tests restart it) is measured again once
Kafka is back, up to --attempts times.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import click
from flask import Flask
from kafka.errors import KafkaError

from arena.settings import Settings
from bench.client import start_client
from bench.relay_latency import latency_round
from bench.relay_throughput import relay_run
from bench.table import Row, machine_lines, print_rows
from harness.processes import ProcessEnded
from harness.resources import Run, bench_settings, create_resources, drop_resources, wait_for


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m bench relay",
        description="Benchmark the transactional-outbox relay on the local services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--events", type=int, default=100_000, help="events for the batched run")
    add("--arenas", type=int, default=1000, help="arenas those events belong to")
    add("--batch-size", type=int, default=defaults.outbox_batch_size, help="batched run's size")
    add("--single-events", type=int, default=5000, help="events for the batch-size-1 run")
    add("--trickle", type=int, default=300, help="measured commands per latency round")
    add("--rate", type=float, default=20.0, help="commands per second in the latency rounds")
    add("--warmup", type=int, default=40, help="unmeasured commands before each latency round")
    add(
        "--relay-interval",
        type=float,
        default=defaults.outbox_relay_interval_seconds,
        help="Celery beat's relay interval, seconds (OUTBOX_RELAY_INTERVAL_SECONDS)",
    )
    add("--phase-deadline", type=float, default=900.0, help="seconds one phase may take")
    add("--attempts", type=int, default=3, help="tries per phase when Kafka goes away mid-phase")
    add("--skip-throughput", action="store_true", help="run only the latency rounds")
    add("--skip-latency", action="store_true", help="run only the throughput runs")
    add("--keep-logs", action="store_true", help="keep the log directory (worker, beat, relay)")
    args = parser.parse_args(argv)
    sizes = (args.events, args.arenas, args.batch_size, args.single_events, args.trickle)
    if min(sizes) < 1 or args.attempts < 1:
        parser.error("counts, sizes and --attempts must be at least 1")
    if args.rate <= 0 or args.relay_interval <= 0:
        parser.error("--rate and --relay-interval must be positive")
    return args


def measured(
    what: str, run: Run, attempts: int, phase: Callable[[], tuple[list[Row], bool]]
) -> list[Row]:
    """Run a phase; if a Kafka outage disturbed it, wait for Kafka and measure it again."""
    for attempt in range(1, attempts + 1):
        try:
            rows, disturbed = phase()
        except (KafkaError, RuntimeError, ProcessEnded) as error:
            if attempt == attempts:
                raise
            click.echo(f"{what} failed ({error!r}); waiting for Kafka to measure again", err=True)
        else:
            if attempt > 1:
                rows[0].notes += f"; attempt {attempt} (Kafka outage before)"
            if not disturbed or attempt == attempts:
                return rows
            click.echo(f"{what} was disturbed (Kafka outage?); measuring it again", err=True)
        wait_for(run.settings, "Kafka")
    raise AssertionError("unreachable")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the relay benchmark; 0 when every check passed, 1 otherwise."""
    args = parse_args(argv)
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    workdir = start_client(base, f"arena-bench-{run_id}-")
    run = Run(run_id, base, bench_settings(base, run_id, args.relay_interval), workdir)
    click.echo(f"outbox relay benchmark, run {run_id} (logs in {workdir})")
    wait_for(base, "PostgreSQL", "Redis", "RabbitMQ", "Kafka")
    started, load_at_start = time.monotonic(), os.getloadavg()
    rows: list[Row] = []
    apps: list[Flask] = []
    completed = False
    try:
        app = create_resources(run)
        apps.append(app)
        if not args.skip_throughput:
            batched = measured(
                "the batched run",
                run,
                args.attempts,
                lambda: relay_run(run, app, args, "Batched", args.events, args.batch_size),
            )
            single = measured(
                "the one-row run",
                run,
                args.attempts,
                lambda: relay_run(run, app, args, "One-row", args.single_events, 1),
            )
            fast, slow = batched[1].rate, single[1].rate
            speed_up = Row(
                f"Speed-up, batch size {args.batch_size} over 1",
                rate=fast / slow if fast and slow else None,
                notes="the events/s column is the factor",
            )
            rows += [*batched, *single, speed_up]
        if not args.skip_latency:
            for nudge in (True, False):
                rows += measured(
                    f"the latency round (nudge {'on' if nudge else 'off'})",
                    run,
                    args.attempts,
                    functools.partial(latency_round, run, args, nudge, apps),
                )
        completed = True
    finally:
        problems = drop_resources(run, apps)
        for problem in problems:
            click.echo(f"clean-up: {problem}", err=True)
        if completed and not args.keep_logs and not problems:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            click.echo(f"logs kept in {workdir}", err=True)
    elapsed = time.monotonic() - started
    title = f"Outbox relay benchmark, run {run_id}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print_rows(f"{title}, {elapsed:.0f} s", machine_lines(base, load_at_start), rows)
    return 0 if all(row.ok for row in rows) else 1
