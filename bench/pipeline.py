#!/usr/bin/env python
"""Whole-pipeline benchmark: commands/s through the HTTP API, events/s through the projections,
how long a command takes to show in the read model, the capacity at which that stays quick, and
where the CPU goes per event; optionally for a baseline commit and the working tree side by side.

Run from the project root: `.venv/bin/python bench/pipeline.py [options]` (`make bench`); with
`--baseline REF` (or BENCH_BASELINE=REF) it first measures REF, checked out in a temporary
`git worktree`, then the working tree, and prints each figure for both with the ratio
current ÷ baseline. Like bench/relay.py (whose helpers it imports), it uses the local services on
127.0.0.1 but only resources of its own, named after a random run id per tree: a database
`arena_bench_<id>` (migrated by that tree's code), topics `arena.events[.dlq].bench-<id>`, a
read-model prefix, Celery queues and consumer groups. It removes them at the end, also after a
failure or Ctrl-C, and prints one table.

The processes are each tree's own, as its Procfile lists them (bench/procfile.py: the API's
gunicorn, the Celery workers, whether one or one per queue, beat, `flask consume`), started from
that tree with its code first on PYTHONPATH and the bench's environment. A further threaded
gunicorn of the tree answers the `?minVersion=N` reads, which wait in the server: on the command
server they would hold its workers and throttle the commands being measured.

Phases, per tree:
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
4. Projection throughput: the consumer is stopped, the read model pointed at an empty
   generation, and the whole events topic replayed by a fresh consumer group, once with
   PROJECTION_BATCHING=true and once with false, timed from the first projection task the
   consumer sent (Celery's task-sent event) until every arena's view reached its write-model
   version.
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
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/pipeline.py` puts bench/ first, not the project
    sys.path.insert(0, str(ROOT))

import click  # noqa: E402 - after the path fix above
import psycopg  # noqa: E402
from flask import Flask  # noqa: E402
from kafka import KafkaAdminClient  # noqa: E402
from redis import Redis  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from arena.settings import Settings  # noqa: E402
from arena.readmodel.store import ArenaViews  # noqa: E402
from bench.capacity import TARGET_P99_MS, capacity_rows  # noqa: E402
from bench.compare import Measure, TreeFigures, from_cpu, from_rows, render  # noqa: E402
from bench.cpu import (  # noqa: E402
    REDIS_BROKER,
    REDIS_READ_MODEL,
    CpuMeter,
    Usage,
    flag_busy,
    per_event,
)
from bench.drain import relay_drain  # noqa: E402
from bench.minimal_relay import minimal_relay_drain  # noqa: E402
from bench.processes import (  # noqa: E402
    READ_SERVER_THREADS,
    REPLAY_CONSUMER,
    Ports,
    Processes,
    free_port,
    start_pipeline,
)
from bench.procfile import PROJECT_TASK, RELAY_TASK, plan  # noqa: E402
from bench.relay import (  # noqa: E402
    CeleryEventReceiver,
    KafkaArrivals,
    Row,
    Run,
    bench_settings,
    distribution,
    drop_resources,
    machine_lines,
    make_app,
    percentiles,
    require_loopback,
    wait_for,
)
from bench.soak import soak  # noqa: E402
from bench.ticks import tick_path  # noqa: E402
from bench.trees import Tree, baseline_tree, current_tree  # noqa: E402
from bench.workload import (  # noqa: E402
    MIX,
    READERS,
    WATCH_INTERVAL_SECONDS,
    Answer,
    Driver,
    Readers,
    Visibility,
    burst,
    steady,
    wait_until_applied,
)

LIVE_ARENAS = 8  # arenas in play at once at the steady rate (a new one opens when none is free)
DRAIN_INTERVAL_SECONDS = 0.02

# --- options --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        description="Benchmark the whole pipeline (API → … → read model) on the local services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--rate",
        type=float,
        default=40.0,
        help="steady commands per second (issue 8's light load: p50 ≤ 20 ms, p99 ≤ 100 ms)",
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
        help="length of the memory soak at --soak-rate (issue 8: 600 at half capacity); 0: skip",
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


class Outages(threading.Thread):
    """Notes when a service stops taking connections (other engineers' tests restart them), so
    the figures measured meanwhile can be flagged instead of trusted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="outages", daemon=True)
        database = make_url(settings.database_url)
        redis, broker = urlsplit(settings.redis_url), urlsplit(settings.celery_broker_url)
        kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
        self._endpoints = {
            "Kafka": (kafka_host.strip("[] "), int(kafka_port)),
            "PostgreSQL": (database.host or "127.0.0.1", database.port or 5432),
            "read-model Redis": (redis.hostname or "127.0.0.1", redis.port or 6379),
            "broker Redis": (broker.hostname or "127.0.0.1", broker.port or 6379),
        }
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[str, tuple[float, datetime]] = {}
        self.outages: list[tuple[str, float, float, datetime]] = []  # service, from, to, wall

    def run(self) -> None:
        while not self._stop_flag.wait(1.0):
            for service, address in self._endpoints.items():
                try:
                    socket.create_connection(address, timeout=1).close()
                    up = True
                except OSError:
                    up = False
                with self._lock:
                    if not up and service not in self._open:
                        self._open[service] = (time.monotonic(), datetime.now())
                    elif up and service in self._open:
                        began, wall = self._open.pop(service)
                        self.outages.append((service, began, time.monotonic(), wall))

    def _all(self) -> list[tuple[str, float, float, datetime]]:
        with self._lock:
            still = [(s, b, time.monotonic(), w) for s, (b, w) in self._open.items()]
            return self.outages + still

    def during(self, since: float, until: float) -> list[str]:
        return [
            f"{service} down {wall:%H:%M:%S} for {to - began:.0f} s"
            for service, began, to, wall in self._all()
            if began <= until and to >= since
        ]

    def lines(self) -> list[str]:
        return [
            f"{service} down {wall:%H:%M:%S} for {to - began:.0f} s"
            for service, began, to, wall in self._all()
        ]

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)


class QueueDepth(threading.Thread):
    """Samples the Celery queues' lengths: with one queue, relay nudges and projection tasks wait
    there together; a tree may give each its own."""

    def __init__(self, settings: Settings, queues: set[str]) -> None:
        super().__init__(name="queue-depth", daemon=True)
        self._broker = Redis.from_url(settings.celery_broker_url, socket_timeout=2)
        self._queues = sorted(queues)
        self._stop_flag = threading.Event()
        self.samples: list[tuple[float, dict[str, int]]] = []

    def run(self) -> None:
        while not self._stop_flag.wait(0.25):
            with contextlib.suppress(RedisError):
                pipe = self._broker.pipeline(transaction=False)
                for queue in self._queues:
                    pipe.llen(queue)
                depths = dict(zip(self._queues, pipe.execute(), strict=True))
                self.samples.append((time.monotonic(), depths))

    def peak(self, since: float, until: float) -> str:
        """The peak depth in the window, per queue when there are several."""
        window = [depths for at, depths in self.samples if since <= at <= until]
        peaks = {q: max((d[q] for d in window), default=0) for q in self._queues}
        if len(peaks) == 1:
            return str(next(iter(peaks.values())))
        return ", ".join(
            f"{q.rsplit('.', 1)[-1] if '.' in q else 'default'} {n}" for q, n in peaks.items()
        )

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)
        self._broker.close()


class TaskEvents(CeleryEventReceiver):
    """Celery's own task events for this run's relay and projection tasks: when each was sent
    (by the API, beat or the consumer), started, how long it ran, and whether it was retried or
    discarded as expired. Shows what the worker spends its time on."""

    def __init__(
        self, flask_app: Flask, settings: Settings, worker_prefix: str, queues: set[str]
    ) -> None:
        super().__init__(flask_app, settings, worker_prefix)
        self._queues = queues
        self._lock = threading.Lock()
        self._tasks: dict[str, dict[str, Any]] = {}

    def _on(self, message: dict[str, Any]) -> None:
        kind, task_id = message.get("type", ""), message.get("uuid")
        if not kind.startswith("task-") or task_id is None:
            return
        with self._lock:
            if kind == "task-sent":  # a retry is sent again under the same id
                name = message.get("name")
                if name in (RELAY_TASK, PROJECT_TASK) and message.get("queue") in self._queues:
                    record = self._tasks.setdefault(task_id, {"name": name, "retries": 0})
                    record.setdefault("sent", message.get("timestamp"))
                return
            record = self._tasks.get(task_id)
            if record is None or not str(message.get("hostname", "")).startswith(
                self._worker_prefix
            ):
                return  # not ours: another engineer's worker on the shared broker
            if kind == "task-started":
                record.setdefault("started", message.get("timestamp"))
            elif kind == "task-retried":
                record["retries"] += 1
            elif kind == "task-succeeded":
                record["runtime"] = message.get("runtime")
                record["result"] = message.get("result")
            elif kind == "task-revoked":
                record["expired"] = bool(message.get("expired"))

    def window(self, name: str, since: float, until: float = float("inf")) -> list[dict[str, Any]]:
        """Tasks `name` first sent between the two wall-clock times."""
        with self._lock:
            return [
                dict(r)
                for r in self._tasks.values()
                if r["name"] == name and since <= (r.get("sent") or 0) <= until
            ]


def worker_rows(tasks: TaskEvents, since: float, until: float, during: str) -> list[Row]:
    """What the worker's processes did meanwhile: relay runs (one per command, via the nudge,
    plus beat's) and projection tasks; p = runtime."""
    window = until - since
    rows = []
    for label, name in (("relay tasks", RELAY_TASK), ("projection tasks", PROJECT_TASK)):
        records = tasks.window(name, since, until)
        runtimes = [1000 * r["runtime"] for r in records if r.get("runtime") is not None]
        pickup = percentiles([1000 * (r["started"] - r["sent"]) for r in records if "started" in r])
        expired = sum(1 for r in records if r.get("expired"))
        idle = sum(1 for r in records if name == RELAY_TASK and r.get("result") == "0")
        busy = sum(runtimes) / 1000
        notes = (
            f"p = runtime; {busy:.1f} s of worker time in {window:.1f} s; "
            f"wait in queue p50 {pickup['p50'] or 0:.0f} ms, max {pickup['max'] or 0:.0f} ms"
        )
        retried = sum(r["retries"] for r in records)
        if retried:
            notes += f"; {retried} retries"
        if idle:
            notes += f"; {idle} found nothing to publish"
        if expired:
            notes += f"; {expired} expired unrun"
        rows.append(distribution(f"  · {label} sent during the {during}", runtimes, notes))
        rows[-1].n = len(records)
    return rows


def wait_for_empty_outbox(run: Run, processes: Processes, deadline_seconds: float) -> None:
    """Replays can only catch up with what reached Kafka: wait until nothing is pending."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        with psycopg.connect(run.dsn) as connection:
            (pending,) = connection.execute(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            ).fetchone()
        if pending == 0:
            return
        processes.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending} outbox events still unpublished; replays would stall")
        time.sleep(0.5)


def write_model_versions(run: Run) -> dict[str, int]:
    """Each arena's version in PostgreSQL: how many events it has, and what its view must reach."""
    with psycopg.connect(run.dsn) as connection:
        rows = connection.execute("SELECT id::text, version FROM arenas").fetchall()
    return {arena_id: version for arena_id, version in rows}


def projection_run(
    run: Run,
    app: Flask,
    processes: Processes,
    meter: CpuMeter,
    tasks: TaskEvents,
    consumer: list[str],
    batching: bool,
    deadline_seconds: float,
    disturbances: Disturbances,
) -> tuple[Row, str]:
    """Replay the whole topic into an empty generation with a fresh consumer group; time it."""
    tag = "batched" if batching else "single"
    settings = dataclasses.replace(
        run.settings,
        projection_batching=batching,
        kafka_consumer_group=f"{run.settings.kafka_consumer_group}-{tag}",
    )
    targets = write_model_versions(run)
    total = sum(targets.values())
    views: ArenaViews = app.extensions["arena_views"]
    until_redis = time.monotonic() + deadline_seconds
    while True:  # the read model may be restarting (another engineer's tests)
        try:
            views.switch_to(f"replay-{tag}")
            break
        except RedisError:
            if time.monotonic() > until_redis:
                raise
            time.sleep(1)
    since = disturbances.mark()
    since_wall = time.time()
    deadline = time.monotonic() + deadline_seconds
    name = f"consumer-{tag}"
    processes.start(name, list(consumer), settings, REPLAY_CONSUMER)
    window = meter.begin()
    try:
        while not tasks.window(PROJECT_TASK, since_wall):  # the group join takes seconds
            processes.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} dispatched nothing in {deadline_seconds:.0f}s")
            time.sleep(0.05)
        remaining = dict(targets)
        finished_wall = time.time()
        reached = dict.fromkeys(targets, 0)
        label = f"replay, PROJECTION_BATCHING={str(batching).lower():5}"
        with click.progressbar(length=total, label=label) as bar:
            while remaining and time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    current = views.get_many(list(remaining))
                except RedisError:
                    time.sleep(0.2)
                    continue
                finished_wall = time.time()
                for arena_id, view in current.items():
                    bar.update(view["version"] - reached[arena_id])
                    reached[arena_id] = view["version"]
                    if view["version"] >= remaining[arena_id]:
                        del remaining[arena_id]
                processes.check()
                elapsed = time.monotonic() - started
                time.sleep(max(DRAIN_INTERVAL_SECONDS, 2 * elapsed))
        usage = meter.end(window, sum(reached.values()))
    finally:
        processes.stop(name)
    records = tasks.window(PROJECT_TASK, since_wall)
    first = min((r["sent"] for r in records), default=finished_wall)
    wall = finished_wall - first
    applied = sum(reached.values())
    retried = sum(r["retries"] for r in records)
    runtimes = [1000 * r["runtime"] for r in records if r.get("runtime") is not None]
    pickup = percentiles([1000 * (r["started"] - r["sent"]) for r in records if "started" in r])
    check = (
        f"{len(targets) - len(remaining)}/{len(targets)} arenas caught up"
        if remaining
        else f"all {len(targets)} arenas caught up"
    )
    row = Row(
        f"Projection replay, PROJECTION_BATCHING={str(batching).lower()}",
        n=applied,
        wall_s=wall,
        rate=applied / wall if wall > 0 else None,
        notes=(
            f"p = task runtime; {len(records):,} tasks ({applied / max(1, len(records)):.1f} "
            f"events/task), {retried:,} retries; wait in queue p50 {pickup['p50'] or 0:.0f} ms, "
            f"max {pickup['max'] or 0:.0f} ms; {check}"
        ),
        ok=not remaining,
        **percentiles(runtimes),
    )
    disturbances.flag([row], since)
    flagged: list[str] = []
    flag_busy(usage, flagged)
    row.notes += "".join(f"; {flag}" for flag in flagged)
    return row, usage.line(f"{processes.tree.name}, replay with PROJECTION_BATCHING={tag}")


# --- rows -----------------------------------------------------------------------------------------


def api_row(name: str, answers: list[Answer], notes: str) -> Row:
    """Commands accepted per second, from the first send to the last answer; p = request time."""
    accepted = [a for a in answers if a.ok]
    failed = len(answers) - len(accepted)
    wall = (max(a.returned for a in answers) - min(a.sent for a in answers)) if answers else 0.0
    return Row(
        name,
        n=len(accepted),
        wall_s=wall,
        rate=len(accepted) / wall if wall > 0 else None,
        notes=f"p = request time; {notes}" + (f"; {failed} FAILED" if failed else ""),
        ok=failed == 0,
        **percentiles([a.request_ms for a in accepted]),
    )


def latency_rows(
    answers: list[Answer],
    readers: Readers,
    visibility: Visibility,
    arrivals: KafkaArrivals,
    read_wait_seconds: float,
    read_every: int,
) -> list[Row]:
    """Answer → visible to a client (?minVersion), and the hops it splits into."""
    accepted = [a for a in answers if a.ok]
    by_read = [1000 * (readers.seen[a.key] - a.returned) for a in accepted if a.key in readers.seen]
    in_store = [a for a in accepted if a.key in visibility.seen]
    applied = [1000 * max(0.0, visibility.seen[a.key] - a.returned) for a in in_store]
    reached_kafka = [(a, arrivals.arrivals[a.key]) for a in in_store if a.key in arrivals.arrivals]
    to_send = [1000 * (k.created_wall - a.returned_wall) for a, k in reached_kafka]
    send_to_receive = [1000 * (k.received_wall - k.created_wall) for _, k in reached_kafka]
    receive_to_applied = [
        1000 * (visibility.seen[a.key] - k.received_mono) for a, k in reached_kafka
    ]
    asked = len(readers.asked)
    missing = asked - len(by_read)
    extra = []
    if readers.behind:
        extra.append(f"{readers.behind} x 503 after {read_wait_seconds:g} s, re-read")
    if readers.refused:
        extra.append(f"{readers.refused} x 503 at once (server's waiters full), re-read")
    if readers.errors:
        extra.append(f"{len(readers.errors)} read errors, e.g. {readers.errors[0]}")
    return [
        Row(
            "Command answer → visible via GET ?minVersion=N",
            n=len(by_read),
            notes="; ".join(
                [
                    f"{len(by_read)}/{asked} read back (1 command in {read_every})",
                    "threaded reads gunicorn",
                    *extra,
                ]
            ),
            ok=missing == 0,
            **percentiles(by_read),
        ),
        distribution(
            "  · answer → applied in Redis (store poll)",
            applied,
            f"MGET every ≥{1000 * WATCH_INTERVAL_SECONDS:.0f} ms; ?minVersion polls each 20 ms",
        ),
        distribution(
            "  · answer → relay send() (Kafka CreateTime)",
            to_send,
            "nudge → Celery → relay claim (ms clock)",
        ),
        distribution(
            "  · relay send() → Kafka receive",
            send_to_receive,
            "linger, acks=all, fetch (ms clock)",
        ),
        distribution(
            "  · Kafka receive → applied in Redis",
            receive_to_applied,
            "consumer poll → Celery task → projection",
        ),
    ]


@dataclass
class Disturbances:
    """Service outages and consumer restarts, to flag the rows measured while they happened."""

    processes: Processes
    outages: Outages

    def mark(self) -> tuple[int, float]:
        return len(self.processes.restarts), time.monotonic()

    def flag(self, rows: list[Row], since: tuple[int, float]) -> None:
        restarts, began = since
        reasons = self.outages.during(began, time.monotonic())
        if len(self.processes.restarts) > restarts:
            reasons.append("consumer restarted")
        if reasons:
            for row in rows:
                row.notes += f"; DISTURBED: {', '.join(reasons)}"


def burst_drain_row(answers: list[Answer], visibility: Visibility) -> Row:
    """The whole pipeline under the burst: first command sent → last one applied in Redis."""
    accepted = [a for a in answers if a.ok]
    applied = [a for a in accepted if a.key in visibility.seen]
    if not applied:
        return Row("Burst: first command → all applied in Redis", n=0, ok=False)
    wall = max(visibility.seen[a.key] for a in applied) - min(a.sent for a in answers)
    return Row(
        "Burst: first command → all applied in Redis",
        n=len(applied),
        wall_s=wall,
        rate=len(applied) / wall if wall > 0 else None,
        notes=f"p = answer → applied; {len(applied)}/{len(accepted)} applied; whole pipeline",
        ok=len(applied) == len(accepted),
        **percentiles([1000 * max(0.0, visibility.seen[a.key] - a.returned) for a in applied]),
    )


# --- clean-up -------------------------------------------------------------------------------------


def delete_consumer_groups(settings: Settings, groups: list[str]) -> list[str]:
    """The replay groups (drop_resources deletes only the run's main group)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id="arena-bench-admin"
        )
    except Exception as error:  # noqa: BLE001 - report, clean up the rest regardless
        return [f"could not delete consumer groups {groups}: {error!r}"]
    try:
        outcomes = dict(admin.delete_groups(groups))  # {group: "OK" or the error's name}
        return [
            f"could not delete consumer group {group}: {outcome}"
            for group, outcome in outcomes.items()
            if str(outcome) not in {"OK", "GroupIdNotFoundError"}
        ]
    except Exception as error:  # noqa: BLE001
        return [f"could not delete consumer groups {groups}: {error!r}"]
    finally:
        admin.close()


def forget_unacked(settings: Settings, queues: set[str]) -> list[str]:
    """Tasks our worker still held when stopped (retries waiting out their countdown) stay in
    the broker's shared `unacked` hash, and another engineer's worker would later restore them
    into our deleted queue: remove ours (kombu stores [message, exchange, routing key])."""
    broker = Redis.from_url(settings.celery_broker_url, socket_timeout=5)
    try:
        ours = []
        for tag, raw in broker.hscan_iter("unacked", count=1000):
            with contextlib.suppress(ValueError, IndexError, TypeError):
                if json.loads(raw)[2] in queues:
                    ours.append(tag)
        if ours:
            broker.hdel("unacked", *ours)
            broker.zrem("unacked_index", *ours)
        return []
    except RedisError as error:
        return [f"could not clear our unacked Celery tasks: {error!r}"]
    finally:
        broker.close()


# --- main -----------------------------------------------------------------------------------------


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # run the clean-up in `finally`


@contextlib.contextmanager
def thread(started: threading.Thread, stop: Callable[[], None]) -> Iterator[None]:
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
    views: ArenaViews = session.app.extensions["arena_views"]
    deadline = time.monotonic() + args.phase_deadline
    visibility = Visibility(views)
    arrivals = KafkaArrivals(run.settings, 5 * args.phase_deadline)
    readers = Readers(ports.reads, deadline)
    depth = QueueDepth(run.settings, session.queues)
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


def isolated_settings(base: Settings, run_id: str, relay_interval: float) -> Settings:
    """bench_settings, plus any other queue a newer Settings names, renamed after the run."""
    settings = bench_settings(base, run_id, relay_interval)
    extra = {
        f.name: f"{getattr(settings, f.name)}-bench-{run_id}"
        for f in dataclasses.fields(settings)
        if f.name.endswith("_queue") and f.name != "celery_queue"
    }
    return dataclasses.replace(settings, **extra)


def create_database(run: Run) -> None:
    """The run's empty database; the tree's own migrations then fill it (Tree.prepare)."""
    name = make_url(run.settings.database_url).database
    server = make_url(run.base.database_url).set(drivername="postgresql")
    with psycopg.connect(server.render_as_string(hide_password=False), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')


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


def later_phases(session: TreeSession, consumers: list[str], consumer_argv: list[str]) -> None:
    """Phase 3 (projection replays) with the live consumer stopped, then the relay drain."""
    args, run, processes = session.args, session.run, session.processes
    for name in consumers:
        processes.stop(name)  # the replays have their own consumers and groups
    wait_for_empty_outbox(run, processes, args.phase_deadline)
    replays: dict[bool, Row] = {}
    for batching in (True, False):
        replays[batching], usage = projection_run(
            run,
            session.app,
            processes,
            session.meter,
            session.tasks,
            consumer_argv,
            batching,
            args.phase_deadline,
            session.disturbances,
        )
        session.rows.append(replays[batching])
        session.details.append(usage)
    if replays[True].rate and replays[False].rate:
        session.rows.append(
            Row(
                "Speed-up of PROJECTION_BATCHING=true over false",
                rate=replays[True].rate / replays[False].rate,
                notes="events/s column = factor (x)",
            )
        )
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
                    notes="events/s column = factor (x); issue 8 asks for at least 0.8",
                )
            )


def measure_tree(args: argparse.Namespace, tree: Tree, workdir: Path) -> TreeRun:
    """Start the tree's pipeline on resources of a run of its own, measure it, clean up."""
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    run = Run(run_id, base, isolated_settings(base, run_id, args.relay_interval), workdir)
    click.echo(f"— {tree.name} ({tree.ref} at {tree.root}), run {run_id}")
    wait_for(base, "PostgreSQL", "Redis", "Kafka")
    started, load_before = time.monotonic(), os.getloadavg()
    processes = Processes(run, tree)
    outages = Outages(base)
    outages.start()
    disturbances = Disturbances(processes, outages)
    database = make_url(run.settings.database_url).database or ""
    redis_ports = {
        urlsplit(run.settings.redis_url).port or 6379: REDIS_READ_MODEL,
        urlsplit(run.settings.celery_broker_url).port or 6379: REDIS_BROKER,
    }
    meter = CpuMeter(processes.roots, database, redis_ports)
    meter.start()
    apps: list[Flask] = []
    queues: set[str] = {run.settings.celery_queue}
    session: TreeSession | None = None
    error: str | None = None
    layout = "?"
    replay_groups = [f"{run.settings.kafka_consumer_group}-{t}" for t in ("batched", "single")]
    try:
        create_database(run)
        tree.prepare(run.settings, run.workdir / f"{tree.name}-setup.log")
        apps.append(make_app(run.settings))
        ports = Ports(free_port(), free_port())
        pipeline = plan(
            tree,
            tree.environment(run.settings),
            tree.probe(run.settings),
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
        tasks = TaskEvents(apps[0], run.settings, run.worker_prefix, queues)
        session = TreeSession(
            args, run, apps[0], processes, meter, ports, queues, disturbances, tasks
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
            wait_for(base, "PostgreSQL", "Redis", "Kafka")
        problems = forget_unacked(run.settings, queues)
        problems += delete_consumer_groups(run.settings, replay_groups)
        problems += drop_resources(run, apps)
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
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base = Settings.from_env()
    require_loopback(base)
    workdir = Path(tempfile.mkdtemp(prefix="arena-bench-pipeline-"))
    # The app's INFO lines go to a file, not over the progress bars.
    logging.basicConfig(
        filename=workdir / "bench.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    baseline = None if args.no_baseline else args.baseline
    click.echo(f"pipeline benchmark (logs in {workdir})")
    started = time.monotonic()
    results: list[TreeRun] = []
    with contextlib.ExitStack() as stack:
        trees = [stack.enter_context(baseline_tree(baseline))] if baseline else []
        trees.append(current_tree())
        for tree in trees:
            results.append(measure_tree(args, tree, workdir))
    failed = any(r.error for r in results) or any(
        not check.ok for r in results for check in [*r.rows, *r.measures]
    )
    if failed or args.keep_logs:
        click.echo(f"logs kept in {workdir}", err=True)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    run = Run(results[-1].run_id, base, bench_settings(base, results[-1].run_id, 1.0), workdir)
    machine = machine_lines(run, (results[0].load[0],))
    machine.append(
        f"Each tree's processes from its own Procfile (gunicorn --bind and Celery queues, names "
        f"and state files adapted), plus a gunicorn -w 2 --threads {READ_SERVER_THREADS} for the "
        f"?minVersion reads; beat every {args.relay_interval:g} s; "
        f"{MIX} (one event per command, so commands/s = events/s)"
    )
    for result in results:
        machine.append(
            f"{result.tree.name} = {result.tree.ref}, run {result.run_id}: {result.layout}"
        )
    for result in results:
        machine += result.details
    title = (
        f"Pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{time.monotonic() - started:.0f} s"
    )
    render(title, machine, [tree_figures(r) for r in results])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
