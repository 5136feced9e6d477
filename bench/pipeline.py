"""Whole-pipeline benchmark: commands/s through the HTTP API, events/s through the projections,
how long a command takes to show in the read model, the capacity at which that stays quick, and
where the CPU goes per event; optionally for a baseline commit and the working tree side by side.

Run from the project root: `.venv/bin/python -m bench pipeline [options]` (`make bench`); with
`--baseline REF` (or BENCH_BASELINE=REF) it first measures REF, checked out in a temporary
`git worktree`, then the working tree, and prints each figure for both with the ratio
current ÷ baseline. Like the relay benchmark, it uses the local services on 127.0.0.1 but only
resources of its own (harness/resources.py), named after a random run id per tree: a database
`arena_bench_<id>` (migrated by that tree's code), topics `arena.events[.dlq].bench-<id>`, a
read-model prefix, Celery queues and consumer groups. It removes them at the end, also after a
failure or Ctrl-C, and prints one table.

The Celery broker is RabbitMQ (CELERY_BROKER_URL). A baseline from before RabbitMQ (71078f3 and
older) needs the Redis broker it was written for: `--baseline-broker-url redis://127.0.0.1:6379/0`
(or BENCH_BASELINE_BROKER_URL) gives the baseline's processes, and the bench's waits, queue
depths, CPU rows and clean-up for that tree, that broker instead. scripts/services.sh no longer
starts one; start a throwaway Redis for it by hand first:
`redis-server --port 6379 --save '' --appendonly no --daemonize yes`.

The processes are each tree's own, as its Procfile lists them (bench/procfile.py: the API's
gunicorn, the Celery workers, whether one or one per queue, beat, `flask consume`), started from
that tree with its code first on PYTHONPATH and the bench's environment. A further threaded
gunicorn of the tree answers the `?minVersion=N` reads, which wait in the server: on the command
server they would hold its workers and throttle the commands being measured.

Phases, per tree (bench/phases.py):
1. Steady rate: `--rate` commands/s for `--seconds` through the API, a realistic mix (each arena
   goes create → join → start → actions → pause → config → resume → actions → stop, about
   `LIVE_ARENAS` arenas at a time). Every answer's `version` is awaited by polling the store
   directly, and a Kafka consumer notes each event's arrival, to split the time into hops; one
   answer in `--read-every` is also read back with GET /api/v1/arenas/{id}?minVersion=N (what a
   client sees; the server's polling for every answer would take CPU the pipeline needs).
2. Burst: `--burst` commands as fast as `--clients` client threads can send them, with the whole
   pipeline running; then how long until all of them are applied.
3. Capacity (bench/capacity.py): the offered rate steps up until command → visible p99 exceeds
   `--capacity-p99` ms, with the p50/p99 at the best rate that passed.
4. Projection throughput (bench/replay.py): the consumer is stopped, the read model pointed at
   an empty generation, and the whole events topic replayed by a fresh consumer group, timed
   from the first projection task the consumer sent (Celery's task-sent event) until every
   arena's view reached its write-model version: the replay rate.
5. Relay drain (bench/drain.py): `--relay-events` pending outbox rows, drained by the tree's
   relay worker.

CPU per event (bench/cpu.py) = CPU seconds each kind of process used in the steady, burst and
drain windows ÷ events applied in them, from /proc. Celery's task events show what the workers
spent their time on. Everything shares the cores with the services and with whatever else runs:
rows measured while a service was down, the consumer had to be restarted, or other processes
took a good part of the CPU are flagged, and should be measured again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask
from sqlalchemy.engine import make_url

from arena.bootstrap import components
from arena.settings import Settings
from bench.brokers import broker_name, queue_remover
from bench.capacity import TARGET_P99_MS
from bench.client import require_loopback, start_client
from bench.compare import Measure, TreeFigures, from_cpu, from_rows, render
from bench.cpu import CpuMeter, Usage, per_event, service_ports
from bench.disturbances import Disturbances, Outages
from bench.minimal_relay import minimal_topic
from bench.phases import TreeSession, later_phases, live_phases, thread
from bench.probes import TaskEvents
from bench.processes import READ_SERVER_THREADS, Ports, Processes, start_pipeline
from bench.procfile import plan
from bench.replay import replay_group
from bench.table import Row, machine_lines
from bench.tree_views import TreeViews
from bench.trees import Tree, baseline_tree, current_tree
from harness.processes import free_port
from harness.resources import (
    Run,
    bench_settings,
    create_database,
    drop_resources,
    make_app,
    wait_for,
)
from harness.script import MIX


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m bench pipeline",
        description="Benchmark the whole pipeline (API → … → read model) on the local services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--rate",
        type=float,
        default=40.0,
        help="steady commands per second (a light load; its targets: p50 ≤ 20 ms, p99 ≤ 100 ms)",
    )
    add("--seconds", type=float, default=20.0, help="length of the steady run")
    add("--burst", type=int, default=2000, help="commands in the burst")
    add("--clients", type=int, default=8, help="client threads in the burst")
    add(
        "--concurrency",
        type=int,
        default=None,
        help="Celery worker processes of every worker; unset: as each tree's Procfile says",
    )
    add("--warmup", type=int, default=24, help="unmeasured commands first")
    add(
        "--read-every",
        type=int,
        default=5,
        help="read back every Nth steady command with GET ?minVersion (each one is polled in "
        "the store anyway; the reads' server-side polling costs CPU the pipeline needs)",
    )
    add(
        "--relay-interval",
        type=float,
        default=defaults.outbox_relay_interval_seconds,
        help="Celery beat's relay interval in seconds (OUTBOX_RELAY_INTERVAL_SECONDS)",
    )
    add("--capacity-seconds", type=float, default=10.0, help="length of a capacity step; 0: skip")
    add("--capacity-refine", type=int, default=1, help="bisecting steps after the first failure")
    add(
        "--capacity-p99",
        type=float,
        default=TARGET_P99_MS,
        help="command → visible p99 (ms) a capacity step must stay within",
    )
    add("--relay-events", type=int, default=20_000, help="rows for the relay drain; 0: skip")
    add(
        "--tick-events",
        type=int,
        default=5000,
        help="events of the tick path (100 per transaction, no HTTP); 0: skip",
    )
    add("--tick-rate", type=float, default=500.0, help="events per second of the tick path")
    add(
        "--soak-seconds",
        type=float,
        default=0.0,
        help="length of the memory soak at --soak-rate (target: 600 s at half capacity); 0: skip",
    )
    add("--soak-rate", type=float, default=50.0, help="commands per second of the soak")
    add("--soak-warmup", type=float, default=60.0, help="seconds of the soak before the baseline")
    add(
        "--baseline",
        metavar="REF",
        default=os.environ.get("BENCH_BASELINE") or None,
        help="also measure this commit (a temporary git worktree) first, and print ratios; "
        "BENCH_BASELINE=REF in the environment sets it too",
    )
    add(
        "--baseline-broker-url",
        metavar="URL",
        default=os.environ.get("BENCH_BASELINE_BROKER_URL") or None,
        help="CELERY_BROKER_URL for the baseline's processes only (unset: CELERY_BROKER_URL, "
        "RabbitMQ, as for the working tree). A baseline from before RabbitMQ (71078f3 and "
        "older) needs a Redis broker: redis://127.0.0.1:6379/0, from a Redis started by hand "
        "first (redis-server --port 6379 --save '' --appendonly no --daemonize yes); "
        "BENCH_BASELINE_BROKER_URL=URL in the environment sets it too",
    )
    add("--no-baseline", action="store_true", help="measure the working tree only")
    add("--phase-deadline", type=float, default=180.0, help="seconds any one phase may take")
    add("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args(argv)
    if min(args.burst, args.clients, args.read_every) < 1 or args.warmup < 0:
        parser.error("--burst, --clients and --read-every must be at least 1")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if args.rate <= 0 or args.seconds <= 0 or args.relay_interval <= 0:
        parser.error("--rate, --seconds and --relay-interval must be positive")
    if min(args.capacity_seconds, args.capacity_refine, args.relay_events, args.tick_events) < 0:
        parser.error(
            "--capacity-seconds, --capacity-refine, --relay-events and --tick-events must be ≥ 0"
        )
    if args.tick_rate <= 0 or args.soak_rate <= 0 or args.soak_seconds < 0:
        parser.error("--tick-rate and --soak-rate must be positive, --soak-seconds ≥ 0")
    return args


@dataclass
class TreeRun:
    """What measuring one tree produced."""

    tree: Tree
    run_id: str
    rows: list[Row]
    usage: dict[str, Usage]
    details: list[str]
    load: tuple[float, float]
    layout: str
    error: str | None
    measures: list[Measure]


def measure_tree(args: argparse.Namespace, tree: Tree, workdir: Path) -> TreeRun:
    """Start the tree's pipeline on resources of a run of its own, measure it, clean up."""
    base = Settings.from_env()
    if tree.broker_url:  # the waits, queue depths, outages, CPU rows and clean-up follow it
        base = dataclasses.replace(base, celery_broker_url=tree.broker_url)
        require_loopback(base)
    broker = broker_name(base.celery_broker_url)
    services = ("PostgreSQL", "Redis", broker, "Kafka")
    run_id = uuid.uuid4().hex[:8]
    run = Run(run_id, base, bench_settings(base, run_id, args.relay_interval), workdir)
    click.echo(f"— {tree.name} ({tree.ref} at {tree.root}), run {run_id}")
    wait_for(base, *services, broker=broker)
    started, load_before = time.monotonic(), os.getloadavg()
    processes = Processes(run, tree)
    outages = Outages(base)
    outages.start()
    disturbances = Disturbances(processes, outages)
    database = make_url(run.settings.database_url).database or ""
    meter = CpuMeter(processes.roots, database, service_ports(run.settings))
    meter.start()
    apps: list[Flask] = []
    queues: set[str] = {run.settings.celery_queue}
    session: TreeSession | None = None
    error: str | None = None
    layout = "?"
    try:
        create_database(run)
        tree.prepare(run.settings, processes.logs / "setup.log")
        apps.append(make_app(run.settings))
        ports = Ports(free_port(), free_port())
        report = tree.probe(run.settings)
        pipeline = plan(
            tree,
            tree.environment(run.settings),
            report,
            tree.probe(None),
            run_id=run_id,
            worker_prefix=run.worker_prefix,
            workdir=run.workdir,
            port=ports.commands,
            concurrency=args.concurrency,
        )
        queues, layout = pipeline.queues, pipeline.layout
        if pipeline.skipped:
            layout += f"; not started from its Procfile: {', '.join(pipeline.skipped)}"
        click.echo(f"starting {', '.join(s.name for s in pipeline.specs)} and a reads gunicorn…")
        start_pipeline(processes, pipeline, ports, run.settings)
        tasks = TaskEvents(apps[0], run.worker_prefix, queues)
        views = TreeViews(
            components(apps[0]).views.redis, run.settings.read_model_prefix, report["view_key"]
        )
        session = TreeSession(
            args, run, apps[0], views, processes, meter, ports, queues, disturbances, tasks
        )
        session.details.append(
            f"{tree.name}: set-up (database, migrations, topics, processes ready) "
            f"{time.monotonic() - started:.0f} s; {layout}"
        )
        consumers = [s.name for s in pipeline.specs if s.kind == "consumer"]
        with thread(tasks, tasks.stop):
            tasks.ready.wait(timeout=10)
            live_phases(session)
            later_phases(
                session, consumers, next(s.argv for s in pipeline.specs if s.kind == "consumer")
            )
    except Exception as caught:  # noqa: BLE001 - still clean up and show what was measured
        first_line = (str(caught).strip() or "no message").splitlines()[0]
        error = f"{type(caught).__name__}: {first_line[:200]}"
        click.echo(traceback.format_exc(), err=True)
    finally:
        processes.stop_all()
        meter.stop()
        with contextlib.suppress(SystemExit):  # a service mid-restart: wait, then clean up
            wait_for(base, *services, broker=broker)
        problems = drop_resources(
            run,
            apps,
            queues,
            [replay_group(run.settings)],
            topics=[minimal_topic(run)],
            remove_queues=queue_remover(run),
        )
        for problem in problems:
            click.echo(f"clean-up: {problem}", err=True)
        outages.stop()
    rows = session.rows if session else []
    details = session.details if session else []
    details += [f"{tree.name}: DISTURBED: {line}" for line in processes.restarts + outages.lines()]
    details.append(f"{tree.name}: {time.monotonic() - started:.0f} s in all")
    return TreeRun(
        tree,
        run_id,
        rows,
        session.usage if session else {},
        details,
        (load_before[0], os.getloadavg()[0]),
        layout,
        error,
        session.measures if session else [],
    )


def tree_figures(result: TreeRun) -> TreeFigures:
    """The table's measures of one tree: the machine's load, the rows, the CPU per event."""
    usage = result.usage
    machine = [
        Measure(
            "Machine: load average (1 min)",
            {"at start": result.load[0], "at end": result.load[1]},
            "the services and any other work share these cores",
        ),
        Measure(
            "Machine: other processes' share of all CPU",
            {f"{phase} %": 100 * u.other_share for phase, u in usage.items()},
            "not the pipeline, its services or this client; over 15% flags rows BUSY MACHINE",
        ),
    ]
    measures = machine + from_rows(result.rows) + result.measures
    measures += from_cpu(
        {p: per_event(u) for p, u in usage.items()}, {p: u.events for p, u in usage.items()}
    )
    if result.error:
        measures.append(Measure("INCOMPLETE", {}, result.error, ok=False))
    return TreeFigures(result.tree.name, measures)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the pipeline benchmark; 0 when every check passed, 1 otherwise."""
    args = parse_args(argv)
    base = Settings.from_env()
    workdir = start_client(base, "arena-bench-pipeline-")
    baseline = None if args.no_baseline else args.baseline
    click.echo(f"pipeline benchmark (logs in {workdir})")
    started = time.monotonic()
    results: list[TreeRun] = []
    with contextlib.ExitStack() as stack:
        trees = (
            [stack.enter_context(baseline_tree(baseline, args.baseline_broker_url))]
            if baseline
            else []
        )
        trees.append(current_tree())
        for tree in trees:
            results.append(measure_tree(args, tree, workdir))
    failed = (
        any(r.error for r in results)
        or any(not row.ok for r in results for row in r.rows)
        or any(not measure.ok for r in results for measure in r.measures)
    )
    if failed or args.keep_logs:
        click.echo(f"logs kept in {workdir}", err=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    machine = machine_lines(base, (results[0].load[0],))
    machine.append(
        f"Each tree's processes from its own Procfile (gunicorn --bind and Celery queues, names "
        f"and state files adapted), plus a gunicorn -w 2 --threads {READ_SERVER_THREADS} for the "
        f"?minVersion reads; beat every {args.relay_interval:g} s; "
        f"{MIX} (one event per command, so commands/s = events/s)"
    )
    for result in results:
        broker = broker_name(result.tree.broker_url or base.celery_broker_url)
        machine.append(
            f"{result.tree.name} = {result.tree.ref}, run {result.run_id}, broker {broker}: "
            f"{result.layout}"
        )
    for result in results:
        machine += result.details
    title = (
        f"Pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s"
    )
    render(title, machine, [tree_figures(r) for r in results])
    return 1 if failed else 0
