"""Projection throughput: with the live consumer stopped, the read model pointed at an empty
generation and the whole events topic replayed by a fresh consumer group of the tree's `flask
consume`, timed from the first projection task it sent (Celery's task-sent event) until every
arena's view reached its write-model version."""

from __future__ import annotations

import dataclasses
import time

import click
import psycopg
from redis.exceptions import RedisError

from arena.settings import Settings
from bench.backlog import pending_rows
from bench.cpu import CpuMeter, flag_busy
from bench.disturbances import Disturbances
from bench.probes import TaskEvents
from bench.processes import REPLAY_CONSUMER, Processes
from bench.procfile import PROJECT_TASK
from bench.table import Row
from bench.tree_views import TreeViews
from harness.resources import Run
from harness.stats import percentiles

POLL_SECONDS = 0.02  # views polled at least this far apart, or twice a poll's own cost


def replay_group(settings: Settings) -> str:
    """The replay's consumer group: a fresh one, so it reads the topic from its start."""
    return f"{settings.kafka_consumer_group}-replay"


def wait_for_empty_outbox(run: Run, processes: Processes, deadline_seconds: float) -> None:
    """The replay can only catch up with what reached Kafka: wait until nothing is pending."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        pending = pending_rows(run)
        if pending == 0:
            return
        processes.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending} outbox events still unpublished; the replay would stall")
        time.sleep(0.5)


def write_model_versions(run: Run) -> dict[str, int]:
    """Each arena's version in PostgreSQL: how many events it has, and what its view must reach."""
    with psycopg.connect(run.dsn) as connection:
        rows = connection.execute("SELECT id::text, version FROM arenas").fetchall()
    return {arena_id: version for arena_id, version in rows}


def projection_run(
    run: Run,
    views: TreeViews,
    processes: Processes,
    meter: CpuMeter,
    tasks: TaskEvents,
    consumer: list[str],
    deadline_seconds: float,
    disturbances: Disturbances,
) -> tuple[Row, str]:
    """Replay the whole topic into an empty generation with a fresh consumer group; time it."""
    settings = dataclasses.replace(run.settings, kafka_consumer_group=replay_group(run.settings))
    targets = write_model_versions(run)
    total = sum(targets.values())
    until_redis = time.monotonic() + deadline_seconds
    while True:  # the read model may be restarting (another engineer's tests)
        try:
            views.switch_to("replay")
            break
        except RedisError:
            if time.monotonic() > until_redis:
                raise
            time.sleep(1)
    since = disturbances.mark()
    since_wall = time.time()
    deadline = time.monotonic() + deadline_seconds
    name = "consumer-replay"
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
        with click.progressbar(length=total, label="projection replay") as bar:
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
                time.sleep(max(POLL_SECONDS, 2 * elapsed))
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
    row = Row.timed(
        "Projection replay",
        applied,
        wall,
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
    return row, usage.line(f"{processes.tree.name}, projection replay")
