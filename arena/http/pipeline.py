"""GET /api/v1/pipeline: how the event pipeline is doing, for people and dashboards."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from kafka.errors import KafkaError
from redis.exceptions import RedisError

from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.lag import consumer_lag, dead_letters
from arena.outbox.operations import outbox_metrics
from arena.readmodel.metrics import projection_metrics
from arena.settings import Settings

blp = Blueprint("pipeline", __name__, url_prefix="/api/v1", description="Pipeline metrics")


@blp.route("/pipeline")
class PipelineStatus(MethodView):
    @blp.response(200)
    def get(self) -> dict[str, Any]:
        """Outbox backlog and held rows, consumer lag per partition, projection lag, stalls."""
        return pipeline_status()


def pipeline_status() -> dict[str, Any]:
    """What GET /api/v1/pipeline answers, and what /metrics reports as gauges."""
    settings = components().settings
    views = components().views
    projections = projection_metrics(db.session, views).to_dict() | _in_flight()
    for stall in projections["stalledArenas"]:  # what an operator runs once it is fixed
        stall["replayCommand"] = f"flask dlq replay --arena {stall['arenaId']}"
    return {
        "outbox": outbox_metrics(db.session).to_dict(),
        "consumer": _consumer(settings),
        "projections": projections,
        "deadLetters": _dead_letters(settings),
        "flower": settings.flower_url,
    }


def _dead_letters(settings: Settings) -> dict[str, Any]:
    try:
        return {"topic": settings.kafka_dlq_topic, "records": dead_letters(settings)}
    except KafkaError as error:
        return {"topic": settings.kafka_dlq_topic, "records": None, "error": repr(error)}


def _in_flight() -> dict[str, Any]:
    """Projection tasks sent and not yet done (tasks/in_flight.py), from the broker's Redis."""
    try:
        return {"tasksInFlight": components().projections_in_flight.count()}
    except RedisError as error:
        return {"tasksInFlight": None, "tasksInFlightError": repr(error)}


def _consumer(settings: Settings) -> dict[str, Any]:
    """The group's lag; when Kafka is away, say so and let the other figures through."""
    try:
        lag = consumer_lag(settings)
    except KafkaError as error:
        return {
            "group": settings.kafka_consumer_group,
            "lagByPartition": None,
            "error": repr(error),
        }
    return {"group": settings.kafka_consumer_group, "lagByPartition": lag}
