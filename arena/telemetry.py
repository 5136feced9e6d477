"""Prometheus metrics of every process, added up across processes at `/metrics`.

With PROMETHEUS_MULTIPROC_DIR set (`make run` sets it), every process of the machine (gunicorn's
workers, Celery's prefork children, `flask consume`) writes its samples to files there
(prometheus-client's multiprocess mode) and the API's `/metrics` adds them up, whichever worker
answers the scrape. Files are named after host and pid, so containers sharing one volume never
collide. Without it each process counts alone (a one-off CLI command, most tests).

The metrics are made on first use, after `configure`, because the library picks single- or
multi-process values when a metric is made. Gauges of the pipeline's state (outbox backlog,
consumer lag, stalls) are not kept by any process: `/metrics` reads them when scraped, at
most PIPELINE_CACHE_SECONDS old (`arena/http/pipeline_status.py`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector

from arena.settings import Settings

LIBRARY_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # what prometheus-client itself reads
FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class Metrics:
    http_seconds: Histogram
    commands: Counter
    relay_batch_rows: Histogram
    relay_batch_seconds: Histogram
    events_published: Counter
    projection_batch_seconds: Histogram
    projection_outcomes: Counter
    open_streams: Gauge
    tick_run_seconds: Histogram
    ticks_made: Counter
    ticks_skipped: Counter


def configure(settings: Settings) -> None:
    """Before any metric is made: write to the shared directory, if there is one."""
    directory = settings.prometheus_multiproc_dir
    if not directory:
        # The variable set but empty (as `Settings.to_env` passes it on) would make the library
        # write its files into the working directory: count in memory instead.
        os.environ.pop(LIBRARY_VARIABLE, None)
        values.ValueClass = values.MutexValue
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    os.environ[LIBRARY_VARIABLE] = directory
    host = socket.gethostname()
    values.ValueClass = values.MultiProcessValue(lambda: f"{host}_{os.getpid()}")  # type: ignore[no-untyped-call]


@cache
def metrics() -> Metrics:
    return Metrics(
        http_seconds=Histogram(
            "arena_http_request_seconds",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            buckets=FAST,
        ),
        commands=Counter(
            "arena_commands", "Commands by route: accepted (2xx) or refused", ["route", "outcome"]
        ),
        relay_batch_rows=Histogram(
            "arena_relay_batch_rows",
            "Outbox rows claimed per relay batch",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
        ),
        relay_batch_seconds=Histogram(
            "arena_relay_batch_seconds", "Claim, publish, flush and mark of a batch", buckets=FAST
        ),
        events_published=Counter("arena_events_published", "Events the relay put on Kafka"),
        projection_batch_seconds=Histogram(
            "arena_projection_batch_seconds", "One projection task's batch", buckets=FAST
        ),
        projection_outcomes=Counter(
            "arena_projection_events",
            "Events by what the projection did: applied, duplicate, retried, dead-lettered, parked",
            ["outcome"],
        ),
        open_streams=Gauge("arena_open_streams", "Live streams open", multiprocess_mode="livesum"),
        tick_run_seconds=Histogram(
            "arena_tick_run_seconds",
            "One make_due_ticks task: a batch of arenas' due ticks",
            buckets=FAST,
        ),
        ticks_made=Counter("arena_ticks", "Ticks made"),
        ticks_skipped=Counter(
            "arena_ticks_skipped", "Ticks skipped by arenas too far behind (the drift)"
        ),
    )


def exposition(settings: Settings, state: Collector) -> tuple[bytes, str]:
    """The text format of every process's samples (or this process's) and the `state` gauges."""
    registry = CollectorRegistry()
    if settings.prometheus_multiproc_dir:
        multiprocess.MultiProcessCollector(registry, path=settings.prometheus_multiproc_dir)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Everything())
    registry.register(state)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Everything(Collector):
    """This process's own registry, inside the scrape's."""

    def collect(self):  # type: ignore[no-untyped-def]
        return REGISTRY.collect()


def process_ended(settings: Settings, pid: int) -> None:
    """A worker process ended (gunicorn's child_exit): its live gauges stop counting."""
    if settings.prometheus_multiproc_dir:
        directory = settings.prometheus_multiproc_dir
        multiprocess.mark_process_dead(f"{socket.gethostname()}_{pid}", directory)  # type: ignore[no-untyped-call]
