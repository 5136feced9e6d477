"""GET /api/v1/pipeline: how the event pipeline is doing, for people and dashboards.

The state is computed at most once per PIPELINE_CACHE_SECONDS per process, off the request
threads, by bounded queries (arena/outbox/operations.py, arena/readmodel/projection_lag.py) and one
long-lived Kafka client and AMQP connection; a part that does not answer within
PIPELINE_DEADLINE_SECONDS is shown unavailable. At most PIPELINE_MAX_CALLS requests for it (this
route and /metrics) run at once per process; past that they answer 503 at once, so that scrapes
never hold the threads commands need.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from flask import Flask, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from arena.bootstrap import components
from arena.extensions import db
from arena.http.polled import Polled, Unavailable
from arena.http.problems import RETRY_AFTER_SECONDS, refuse
from arena.messaging.celery_setup import relay_queue
from arena.messaging.lag import KafkaOffsets
from arena.messaging.queues import BrokerQueues
from arena.outbox.operations import COUNT_CAP, outbox_status
from arena.persistence.connections import pooled_connection
from arena.persistence.tick_leases import set_aside_arenas
from arena.readmodel.projection_lag import LISTED, projection_lag

blp = Blueprint("pipeline", __name__, url_prefix="/api/v1", description="Pipeline status")

EXTENSION = "arena.pipeline"
_MAKING = threading.Lock()


@blp.route("/pipeline")
class PipelineStatus(MethodView):
    @blp.response(200)
    @blp.alt_response(503, description="Too many such requests at once, or no state in time")
    def get(self) -> dict[str, Any]:
        """Outbox backlog and held rows, consumer lag per partition, projection lag, stalls,
        arenas set aside from ticking."""
        with pipeline_call():
            try:
                return pipeline_status()
            except Unavailable as error:
                detail = f"The pipeline's state is late ({error}); try again shortly."
                refuse(503, detail, "pipeline-late", RETRY_AFTER_SECONDS)


class PipelineProbes:
    """This process's long-lived clients, cached state and call slots (one per app)."""

    def __init__(self, app: Flask) -> None:
        parts = components(app)
        settings = parts.settings
        age, deadline = settings.pipeline_cache_seconds, settings.pipeline_deadline_seconds
        kafka = KafkaOffsets(settings, timeout_ms=int(deadline * 1000))
        broker = BrokerQueues(parts.celery, timeout_seconds=deadline)
        queues = [settings.celery_queue, relay_queue(settings)]
        self._app = app
        self.kafka = Polled("pipeline-kafka", kafka.figures, max_age=age, deadline=deadline)
        self.broker = Polled(
            "pipeline-broker", partial(broker.depths, queues), max_age=age, deadline=deadline
        )
        # Twice the deadline: the database's part, then the waits for Kafka's and RabbitMQ's.
        self.state = Polled("pipeline-state", self._computed, max_age=age, deadline=2 * deadline)
        self.calls = threading.BoundedSemaphore(settings.pipeline_max_calls)

    def _computed(self) -> dict[str, Any]:
        """The state, on a thread of its own: Kafka and RabbitMQ are asked while SQL runs."""
        self.kafka.prefetch()
        self.broker.prefetch()
        parts = components(self._app)
        settings = parts.settings
        with self._app.app_context():
            outbox = outbox_status(db.session).to_dict()
            projections = projection_lag(db.session, parts.views).to_dict()
            set_aside = _set_aside()
        for stall in projections["stalledArenas"]:  # what an operator runs once it is fixed
            stall["replayCommand"] = f"flask dlq replay --arena {stall['arenaId']}"
        consumer: dict[str, Any] = {"group": settings.kafka_consumer_group}
        dead_letters: dict[str, Any] = {"topic": settings.kafka_dlq_topic}
        try:
            figures = self.kafka.get()
            consumer["lagByPartition"] = figures.lag_by_partition
            dead_letters["records"] = figures.dead_letters
        except Exception as error:  # noqa: BLE001 - Kafka away: say so, show the other figures
            consumer |= {"lagByPartition": None, "error": repr(error)}
            dead_letters |= {"records": None, "error": repr(error)}
        try:
            broker: dict[str, Any] = {"queues": [depth.to_dict() for depth in self.broker.get()]}
        except Exception as error:  # noqa: BLE001 - the broker away: the page still answers
            broker = {"queues": None, "error": repr(error)}
        return {
            "outbox": outbox,
            "ticks": set_aside,
            "consumer": consumer,
            "projections": projections,
            "deadLetters": dead_letters,
            "broker": broker,
            "flower": settings.flower_url,
        }


def _set_aside() -> dict[str, Any]:
    """How many arenas are set aside from ticking, and the first LISTED, each with what an
    operator runs once it is fixed."""
    with pooled_connection(db.engine) as connection:
        arenas = set_aside_arenas(connection, listed=LISTED, counted=COUNT_CAP).to_dict()
    for arena in arenas["setAsideArenas"]:
        arena["resumeCommand"] = f"flask ticks resume {arena['arenaId']}"
    return arenas


def probes(app: Flask | None = None) -> PipelineProbes:
    """The app's `PipelineProbes`, made on first use (in the serving process, after any fork)."""
    flask_app: Flask = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _MAKING:
        found = flask_app.extensions.get(EXTENSION)
        if found is None:
            found = flask_app.extensions[EXTENSION] = PipelineProbes(flask_app)
    assert isinstance(found, PipelineProbes)
    return found


@contextmanager
def pipeline_call() -> Iterator[None]:
    """One of PIPELINE_MAX_CALLS slots for the duration, or 503 at once."""
    calls = probes().calls
    if not calls.acquire(blocking=False):
        detail = "This server answers enough pipeline requests already; try again shortly."
        refuse(503, detail, "pipeline-busy", RETRY_AFTER_SECONDS)
    try:
        yield
    finally:
        calls.release()


def pipeline_status() -> dict[str, Any]:
    """What GET /api/v1/pipeline answers, and what /metrics reports as gauges (at most
    PIPELINE_CACHE_SECONDS old); `Unavailable` when none was computed in time."""
    return probes().state.get()
