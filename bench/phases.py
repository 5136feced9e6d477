"""The pipeline benchmark's phases for one tree, with the whole pipeline running: the steady
rate and its latencies, the burst and its drain, the capacity steps, the tick path and the soak;
then, with the live consumer stopped, the projection replay and the relay drain. `TreeSession`
is what they share and what they produce."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from flask import Flask

from bench.capacity import capacity_rows
from bench.compare import Measure
from bench.cpu import CpuMeter, Usage, flag_busy
from bench.disturbances import Disturbances
from bench.drain import relay_drain
from bench.minimal_relay import minimal_relay_drain
from bench.pipeline_rows import api_row, burst_drain_row, latency_rows, worker_rows
from bench.probes import KafkaArrivals, QueueDepthProbe, TaskEvents
from bench.processes import Ports, Processes
from bench.replay import projection_run, wait_for_empty_outbox
from bench.soak import soak
from bench.table import Row
from bench.ticks import tick_path
from bench.tree_views import TreeViews
from bench.workload import (
    READERS,
    Answer,
    Driver,
    Readers,
    Visibility,
    burst,
    steady,
    wait_until_applied,
)
from harness.resources import Run

LIVE_ARENAS = 8  # arenas in play at once at the steady rate (a new one opens when none is free)


@contextlib.contextmanager
def thread(started: threading.Thread, stop: Callable[[], None]) -> Iterator[None]:
    """The thread running for the block, stopped after it whatever happens."""
    started.start()
    try:
        yield
    finally:
        stop()


@dataclass
class TreeSession:
    """One tree's run: what the phases share, and what they produce."""

    args: argparse.Namespace
    run: Run
    app: Flask
    views: TreeViews  # the read model as this tree lays it out
    processes: Processes
    meter: CpuMeter
    ports: Ports
    queues: set[str]
    disturbances: Disturbances
    tasks: TaskEvents
    rows: list[Row] = dataclasses.field(default_factory=list)
    details: list[str] = dataclasses.field(default_factory=list)
    usage: dict[str, Usage] = dataclasses.field(default_factory=dict)
    measures: list[Measure] = dataclasses.field(default_factory=list)  # beyond rows and CPU

    def window_rows(self, first: int, since: tuple[int, float], usage: Usage, what: str) -> None:
        """Flag the rows since `first` measured while disturbed or busy; note the CPU."""
        self.disturbances.flag(self.rows[first:], since)
        flags: list[str] = []
        flag_busy(usage, flags)
        for row in self.rows[first:]:
            row.notes += "".join(f"; {flag}" for flag in flags)
        self.details.append(usage.line(f"{self.processes.tree.name}, {what}"))


def live_phases(session: TreeSession) -> None:
    """Phases 1 and 2 (the steady rate with its latencies, the burst and its drain), then the
    capacity steps, all with the whole pipeline running."""
    args, run, processes, ports, meter = (
        session.args,
        session.run,
        session.processes,
        session.ports,
        session.meter,
    )
    rows, tasks = session.rows, session.tasks
    deadline = time.monotonic() + args.phase_deadline
    visibility = Visibility(session.views)
    arrivals = KafkaArrivals(run.settings, 5 * args.phase_deadline)
    readers = Readers(ports.reads, deadline)
    depth = QueueDepthProbe(run.settings, session.queues)
    with (
        thread(visibility, visibility.stop),
        thread(arrivals, arrivals.stop),
        thread(depth, depth.stop),
        ThreadPoolExecutor(READERS, thread_name_prefix="client") as pool,
    ):
        if args.warmup:  # producers, connections, the consumer's group join; not measured
            warm = steady(
                Driver(ports.commands, "warm", 2),
                args.warmup,
                args.rate,
                pool,
                visibility.expect,
                "warm-up               ",
                deadline,
            )
            wait_until_applied(visibility, warm, processes, "warm-up: applied      ", deadline)

        read_back = itertools.count()

        def measured(answer: Answer) -> None:
            visibility.expect(answer)
            if next(read_back) % args.read_every == 0:
                readers.read(answer)

        since, since_wall = session.disturbances.mark(), time.time()
        window = meter.begin()
        answers = steady(
            Driver(ports.commands, "steady", LIVE_ARENAS),
            round(args.rate * args.seconds),
            args.rate,
            pool,
            measured,
            f"steady: {args.rate:g} commands/s ",
            deadline,
        )
        wait_until_applied(visibility, answers, processes, "steady: applied       ", deadline)
        session.usage["steady"] = meter.end(window, sum(a.key in visibility.seen for a in answers))
        # Only the steady rows split latency at Kafka: later phases would count this second
        # consumer's fetches as the pipeline's Kafka CPU, and its decoding as the client's.
        arrivals.stop()
        readers.wait()
        readers.close()
        first = len(rows)
        rows.append(
            api_row(
                "API, steady rate: commands accepted",
                answers,
                f"offered {args.rate:g}/s for {args.seconds:g} s, open loop",
            )
        )
        rows += latency_rows(
            answers, readers, visibility, arrivals, run.settings.read_wait_seconds, args.read_every
        )
        rows[-1].notes += f"; Celery queue peak {depth.peak(since[1], time.monotonic())}"
        rows += worker_rows(tasks, since_wall, time.time(), "steady run")
        session.window_rows(first, since, session.usage["steady"], "steady run until all applied")

        deadline = time.monotonic() + args.phase_deadline
        since, since_wall = session.disturbances.mark(), time.time()
        window = meter.begin()
        bursted = burst(
            Driver(ports.commands, "burst", 2 * args.clients),
            args.burst,
            args.clients,
            visibility.expect,
            deadline,
        )
        wait_until_applied(visibility, bursted, processes, "burst: applied        ", deadline)
        session.usage["burst"] = meter.end(window, sum(a.key in visibility.seen for a in bursted))
        first = len(rows)
        rows.append(
            api_row(
                "API, burst: commands accepted",
                bursted,
                f"{args.clients} client threads, closed loop, pipeline running",
            )
        )
        rows.append(burst_drain_row(bursted, visibility))
        rows[-1].notes += f"; Celery queue peak {depth.peak(since[1], time.monotonic())}"
        rows += worker_rows(tasks, since_wall, time.time(), "burst")
        session.window_rows(first, since, session.usage["burst"], "burst until all applied")

        if args.capacity_seconds > 0:
            since = session.disturbances.mark()
            window = meter.begin()
            first = len(rows)
            rows += capacity_rows(
                ports.commands,
                visibility,
                processes,
                args.capacity_seconds,
                args.capacity_refine,
                time.monotonic() + args.phase_deadline,
                args.capacity_p99,
            )
            session.window_rows(first, since, meter.end(window), "capacity steps")

        if args.tick_events > 0:
            since, first = session.disturbances.mark(), len(rows)
            tick_rows, session.usage["ticks"] = tick_path(
                run,
                ports.commands,
                visibility,
                processes,
                meter,
                args.tick_events,
                args.tick_rate,
                time.monotonic() + args.phase_deadline,
            )
            rows += tick_rows
            session.window_rows(first, since, session.usage["ticks"], "tick path until applied")

        if args.soak_seconds > 0:
            session.measures += soak(
                ports.commands,
                visibility,
                processes,
                pool,
                args.soak_rate,
                args.soak_seconds,
                args.soak_warmup,
                LIVE_ARENAS,
            )
    if visibility.redis_errors:
        rows[first].notes += f"; read model unreachable {visibility.redis_errors}x (retried)"


def later_phases(session: TreeSession, consumers: list[str], consumer_argv: list[str]) -> None:
    """Phase 3 (the projection replay) with the live consumer stopped, then the relay drain."""
    args, run, processes = session.args, session.run, session.processes
    for name in consumers:
        processes.stop(name)  # the replay has a consumer and a group of its own
    wait_for_empty_outbox(run, processes, args.phase_deadline)
    row, replay_usage = projection_run(
        run,
        session.views,
        processes,
        session.meter,
        session.tasks,
        consumer_argv,
        args.phase_deadline,
        session.disturbances,
    )
    session.rows.append(row)
    session.details.append(replay_usage)
    if args.relay_events > 0:
        since = session.disturbances.mark()
        row, usage = relay_drain(
            run,
            processes,
            session.meter,
            args.relay_events,
            args.phase_deadline,
        )
        session.rows.append(row)
        session.usage["drain"] = usage
        session.window_rows(len(session.rows) - 1, since, usage, "relay drain")
        yardstick = minimal_relay_drain(run, args.relay_events)
        session.rows.append(yardstick)
        if row.rate and yardstick.rate:
            session.rows.append(
                Row(
                    "Speed-up of the tree's relay drain over the minimal relay",
                    rate=row.rate / yardstick.rate,
                    notes="events/s column = factor (x); the target is at least 0.8",
                )
            )
