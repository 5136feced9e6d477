"""`python -m bench ticking` (`make bench-ticking`): many arenas ticking on the whole pipeline.

`--arenas` arenas of `--side` x `--side` cells are opened through the API (in this process),
fed, seeded with organisms of two players and started, each ticking every `--tick-millis`; a
real Celery worker for ticks and projections (concurrency 2) and one for the relay (concurrency
1), as `make run` starts them, Celery beat and `flask consume` make and project their ticks.
After `--warmup` seconds, for `--seconds` it measures:

- the tick rate achieved against the rate scheduled (arenas x seconds / tickMillis), i.e. the
  drift; the target is at most 5 %;
- tick → visible: from a tick's `advancedAt` to the moment a reader polling the views (every
  25 ms, so up to 25 ms late) first sees the arena at that tick or a later one; the target is
  p99 ≤ 500 ms;
- the bytes every tick puts in the outbox (all of its events' envelopes);
- CPU per tick of each process kind, from /proc (bench/cpu.py), with the machine's load.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
import psycopg
from flask.testing import FlaskClient
from sqlalchemy.engine import make_url

from arena.bootstrap import components
from arena.messaging.celery_setup import relay_queue
from arena.settings import Settings
from bench.client import start_client
from bench.cpu import (
    KAFKA,
    POSTGRES_OURS,
    RABBITMQ,
    REDIS_READ_MODEL,
    CpuMeter,
    Usage,
    service_ports,
)
from bench.table import print_markdown
from harness.processes import (
    Supervisor,
    celery_beat_command,
    celery_worker_command,
    flask_command,
    pipeline_env,
)
from harness.resources import Run, bench_settings, create_resources, drop_resources, wait_for
from harness.stats import percentiles

POLL_SECONDS = 0.025
SEEDS_PER_ARENA = 12
KINDS = (
    "worker",
    "relay",
    "beat",
    "consumer",
    POSTGRES_OURS,
    RABBITMQ,
    REDIS_READ_MODEL,
    KAFKA,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench ticking", description=__doc__)
    parser.add_argument("--arenas", type=int, default=100)
    parser.add_argument("--side", type=int, default=64, help="cells per side of each board")
    parser.add_argument("--tick-millis", type=int, default=500)
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds before measuring")
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds measured")
    return parser.parse_args(argv)


def open_arenas(client: FlaskClient, args: argparse.Namespace) -> list[str]:
    """Fed, seeded and started arenas; their ids."""
    config = {"width": args.side, "height": args.side, "tickMillis": args.tick_millis}
    everywhere = {"x": 0, "y": 0, "width": args.side, "height": args.side}
    opened = []
    with click.progressbar(range(args.arenas), label="opening arenas") as numbers:
        for number in numbers:
            created = client.post(
                "/api/v1/arenas",
                json={"name": f"Ticking dish {number}", "displayName": "Ada", "config": config},
            ).get_json()
            arena_id, ada = created["id"], created["player"]["token"]
            bob = client.post(
                f"/api/v1/arenas/{arena_id}/players", json={"displayName": "Bob"}
            ).get_json()["player"]["token"]
            client.post(f"/api/v1/arenas/{arena_id}/start", headers=_bearer(ada))
            feed = {"type": "ADD_NUTRIENTS", "payload": {"area": everywhere, "amount": 6.0}}
            client.post(f"/api/v1/arenas/{arena_id}/actions", headers=_bearer(ada), json=feed)
            for seed in range(SEEDS_PER_ARENA):
                position = {"x": (seed * 7) % args.side, "y": (seed * 11) % args.side}
                kind = ("BACTERIA", "BACTERIA", "FUNGI", "PHAGE")[seed % 4]
                spawn = {"type": "SPAWN_ORGANISM", "payload": {"kind": kind, "position": position}}
                token = ada if seed % 2 else bob
                client.post(
                    f"/api/v1/arenas/{arena_id}/actions", headers=_bearer(token), json=spawn
                )
            opened.append(arena_id)
    return opened


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Watcher(threading.Thread):
    """Polls every arena's view; keeps when each (arena, tick) was first seen (wall clock)."""

    def __init__(self, app: Any, arena_ids: list[str]) -> None:
        super().__init__(name="tick-watcher", daemon=True)
        self._app, self._ids = app, arena_ids
        self.seen: dict[tuple[str, int], float] = {}
        self._stop_flag = threading.Event()

    def run(self) -> None:
        with self._app.app_context():
            views = components().views
            while not self._stop_flag.wait(POLL_SECONDS):
                now = time.time()
                for arena_id, view in views.get_many(self._ids).items():
                    self.seen.setdefault((arena_id, view["tick"]), now)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)


def _ticks_made(run: Run, since: datetime, until: datetime) -> list[tuple[str, int, float, int]]:
    """(arena, tick, advancedAt epoch, bytes of all that tick's envelopes) in the window.

    One pass over the outbox grouped by (arena, tick), joined to the window's ticks: a subquery
    per tick read each arena's rows once per tick, minutes for a 5-minute run.
    """
    with psycopg.connect(run.dsn) as connection:
        rows = connection.execute(
            """
            WITH made AS (
                SELECT aggregate_id, (envelope->'payload'->>'tick')::int AS tick,
                       EXTRACT(EPOCH FROM (envelope->'payload'->>'advancedAt')::timestamptz) AS at
                  FROM outbox
                 WHERE event_type = 'TickAdvanced' AND created_at >= %s AND created_at < %s
            ), sizes AS (
                SELECT aggregate_id, (envelope->'payload'->>'tick')::int AS tick,
                       sum(octet_length(envelope::text)) AS size
                  FROM outbox
                 WHERE event_type IN
                       ('TickAdvanced', 'SnapshotTaken', 'ActionApplied', 'ActionRejected')
                 GROUP BY 1, 2
            )
            SELECT made.aggregate_id::text, made.tick, made.at, sizes.size
              FROM made JOIN sizes USING (aggregate_id, tick)
            """,
            (since, until),
        ).fetchall()
    return [(arena, tick, float(at), int(size)) for arena, tick, at, size in rows]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    workdir = start_client(base, f"arena-bench-ticking-{run_id}-")
    run = Run(run_id, base, bench_settings(base, run_id, 1.0), workdir)
    click.echo(f"ticking benchmark, run {run_id} (logs in {workdir})")
    wait_for(base, "PostgreSQL", "Redis", "RabbitMQ", "Kafka")
    load_at_start = os.getloadavg()[0]
    app = create_resources(run)
    processes = Supervisor(workdir)
    # Every process writes its Prometheus samples to one directory, as under `make run`.
    samples = dataclasses.replace(run.settings, prometheus_multiproc_dir=str(workdir / "metrics"))
    environment = pipeline_env(samples)
    meter = CpuMeter(
        processes.roots,
        make_url(run.settings.database_url).database or "",
        service_ports(run.settings),
    )
    meter.start()
    watcher: Watcher | None = None
    try:
        # The workers of `make run` (Procfile): the relay's drainer has a worker of its own, and
        # the tick and projection tasks share the other's two processes.
        queue = run.settings.celery_queue
        relay = celery_worker_command(f"{run.worker_prefix}-relay@%h", 1, relay_queue(run.settings))
        processes.start("relay", relay, environment)
        worker = celery_worker_command(f"{run.worker_prefix}@%h", 2, queue)
        processes.start("worker", worker, environment)
        processes.start("beat", celery_beat_command(workdir / "celerybeat-schedule"), environment)
        processes.start("consumer", flask_command("consume"), environment)
        processes.wait_for_line("worker", " ready.")
        processes.wait_for_line("relay", " ready.")
        arena_ids = open_arenas(app.test_client(), args)
        watcher = Watcher(app, arena_ids)
        watcher.start()
        click.echo(f"warming up for {args.warmup:.0f} s, then measuring for {args.seconds:.0f} s")
        time.sleep(args.warmup)  # a benchmark's measuring window, not a wait for a result
        since, window = datetime.now(UTC), meter.begin()
        time.sleep(args.seconds)
        until = datetime.now(UTC)
        usage = meter.end(window)  # before reading the outbox: that query is no tick's cost
        made = _ticks_made(run, since, until)
        usage = dataclasses.replace(usage, events=len(made))
        time.sleep(2.0)  # let the last ticks of the window reach the read model
        watcher.stop()
        report(args, made, watcher.seen, usage, load_at_start, (until - since).total_seconds())
        processes.assert_running()
    finally:
        if watcher is not None and watcher.is_alive():
            watcher.stop()
        processes.stop_all()
        meter.stop()
        for problem in drop_resources(run, [app]):  # the relay's queue among the run's
            click.echo(f"clean-up: {problem}", err=True)
    return 0


def _first_seen(seen: dict[tuple[str, int], float]) -> dict[str, tuple[list[int], list[float]]]:
    """Per arena: the ticks its view showed, ascending, and when it first showed each or a later
    one (views only move forward, so that is the earliest time at or after each)."""
    by_arena: dict[str, list[tuple[int, float]]] = {}
    for (arena_id, tick), at in seen.items():
        by_arena.setdefault(arena_id, []).append((tick, at))
    firsts = {}
    for arena_id, pairs in by_arena.items():
        pairs.sort()
        ticks = [tick for tick, _ in pairs]
        times = [at for _, at in pairs]
        for index in range(len(times) - 2, -1, -1):
            times[index] = min(times[index], times[index + 1])
        firsts[arena_id] = (ticks, times)
    return firsts


def report(
    args: argparse.Namespace,
    made: list[tuple[str, int, float, int]],
    seen: dict[tuple[str, int], float],
    usage: Usage,
    load_at_start: float,
    seconds: float,
) -> None:
    scheduled = args.arenas * seconds * 1000 / args.tick_millis
    firsts = _first_seen(seen)
    lags = []
    for arena_id, tick, at, _ in made:
        ticks, times = firsts.get(arena_id, ([], []))
        position = bisect.bisect_left(ticks, tick)
        if position < len(ticks):
            lags.append(1000 * (times[position] - at))
    lag = percentiles(lags)
    drift = 100 * (1 - len(made) / scheduled)
    rows = [
        [
            "ticks made / scheduled",
            f"{len(made):,} / {scheduled:,.0f}",
            f"drift {drift:.1f} %",
            "≤ 5 % " + ("✓" if drift <= 5 else "✗"),
        ],
        [
            "ticks per second",
            f"{len(made) / seconds:,.1f}",
            f"{args.arenas} arenas every {args.tick_millis} ms",
            "",
        ],
        [
            "tick → visible p50 / p99 ms",
            f"{lag['p50'] or 0:,.0f} / {lag['p99'] or 0:,.0f}",
            f"{len(lags):,} of {len(made):,} ticks seen; views polled every 25 ms",
            "p99 ≤ 500 ms " + ("✓" if (lag["p99"] or 1e9) <= 500 else "✗"),
        ],
        [
            "outbox bytes per tick",
            f"{sum(m[3] for m in made) / max(1, len(made)) / 1024:,.1f} KiB",
            "every event of the tick, envelope as stored",
            "",
        ],
    ]
    for kind in KINDS:
        if kind in usage.seconds:
            per_tick = 1e6 * usage.seconds[kind] / max(1, len(made))
            rows.append([f"CPU per tick: {kind}", f"{per_tick:,.0f} µs", "", ""])
    busy = 100 * usage.busy / usage.capacity if usage.capacity else 0.0
    machine = [
        f"{args.arenas} arenas of {args.side} x {args.side}, tickMillis {args.tick_millis}; "
        f"{seconds:.0f} s measured after {args.warmup:.0f} s of warm-up",
        f"Machine: {os.cpu_count()} cores, load average (1 min) {load_at_start:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; {busy:.0f} % of all CPU busy in the window",
    ]
    print_markdown(
        "Ticking arenas", machine, ["measurement", "figure", "notes", "target"], rows, (0, 2, 3)
    )
