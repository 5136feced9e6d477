"""`/metrics` for Prometheus, and the request hooks that time every route.

The counters and histograms come from every process of the machine (`arena.telemetry`); the
pipeline's state gauges are the same figures as GET /api/v1/pipeline, at most
PIPELINE_CACHE_SECONDS old, and cost nothing between scrapes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from arena import telemetry
from arena.bootstrap import components
from arena.http.pipeline_status import pipeline_call, pipeline_status
from arena.http.polled import Unavailable
from arena.readmodel.memory import memory_use

blp = Blueprint("prometheus", __name__)

COMMAND_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Every label value comes from a bounded set, so no request can add a series: the route's rule
# (or UNMATCHED, never the path), a method of HTTP's own (or OTHER_METHOD), the status we answer.
KNOWN_METHODS = COMMAND_METHODS | {"GET", "HEAD", "OPTIONS"}
UNMATCHED = "unmatched"
OTHER_METHOD = "other"


@blp.get("/metrics")
def scrape() -> Response:
    """One of the pipeline's call slots (arena/http/pipeline_status.py), or 503 at once."""
    with pipeline_call():
        body, content_type = telemetry.exposition(components().settings, _PipelineState())
    return Response(body, content_type=content_type)


def time_requests(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started_at = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("started_at", None)
        if started is None:
            return response
        route = request.url_rule.rule if request.url_rule else UNMATCHED
        method = request.method if request.method in KNOWN_METHODS else OTHER_METHOD
        status = str(response.status_code)
        metrics = telemetry.metrics()
        metrics.http_seconds.labels(route, method, status).observe(time.perf_counter() - started)
        if request.method in COMMAND_METHODS and route.startswith("/api/"):
            outcome = "accepted" if response.status_code < 400 else "refused"
            metrics.commands.labels(route, outcome).inc()
        return response


class _PipelineState(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from _read_model_memory()
        try:
            status = pipeline_status()
        except Unavailable:  # not computed in time: the processes' own samples still go out
            return
        outbox, projections = status["outbox"], status["projections"]
        yield _gauge("arena_outbox_backlog", "Outbox rows pending", outbox["backlog"])
        yield _gauge(
            "arena_outbox_oldest_pending_seconds",
            "Age of the oldest pending outbox row",
            outbox["oldest_pending_age_seconds"],
        )
        yield _gauge(
            "arena_outbox_held", "Outbox rows held after too many failures", outbox["held"]
        )
        lag = GaugeMetricFamily(
            "arena_consumer_lag", "Records not yet handed to projections", labels=["partition"]
        )
        for partition, figures in (status["consumer"]["lagByPartition"] or {}).items():
            lag.add_metric([partition], figures["lag"])
        yield lag
        yield _gauge(
            "arena_projection_arenas_behind",
            "Arenas whose view trails their write model",
            projections["arenasBehind"],
        )
        yield _gauge(
            "arena_ticks_set_aside",
            "Arenas set aside from ticking: their tick failed",
            status["ticks"]["setAside"],
        )
        yield _gauge(
            "arena_projection_stalled_arenas",
            "Arenas stalled by a dead-lettered event",
            projections["stalls"],
        )
        yield _gauge(
            "arena_projection_parked_events",
            "Events parked behind stalls",
            projections["parkedEvents"],
        )
        if (queues := status["broker"]["queues"]) is not None:
            waiting = GaugeMetricFamily(
                "arena_broker_tasks_waiting", "Tasks waiting in a Celery queue", labels=["queue"]
            )
            for depth in queues:
                waiting.add_metric([depth["queue"]], depth["waiting"])
            yield waiting
        dead = status["deadLetters"]["records"]
        if dead is not None:
            yield _gauge("arena_dead_letters", "Records the DLQ topic holds", dead)


def _read_model_memory() -> Iterator[Metric]:
    """Read at each scrape (one INFO); absent while the read model's Redis is away."""
    try:
        use = memory_use(components().views.redis)
    except RedisError:
        return
    yield _gauge(
        "arena_read_model_memory_used_bytes", "Memory the read model's Redis uses", use.used_bytes
    )
    yield _gauge(
        "arena_read_model_memory_max_bytes",
        "The read model's Redis maxmemory (0: no cap)",
        use.max_bytes,
    )
    if use.used_ratio is not None:
        yield _gauge(
            "arena_read_model_memory_used_ratio",
            "Used over maxmemory: at 1 the read model refuses writes",
            use.used_ratio,
        )


def _gauge(name: str, documentation: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
