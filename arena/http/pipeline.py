"""GET /api/v1/pipeline: how the event pipeline is doing, for people and dashboards."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from kafka.errors import KafkaError

from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.celery import relay_queue
from arena.messaging.lag import consumer_lag, dead_letters
from arena.messaging.queues import BROKER_ERRORS, queue_depths
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
    projections = projection_metrics(db.session, views).to_dict()
    for stall in projections["stalledArenas"]:  # what an operator runs once it is fixed
        stall["replayCommand"] = f"flask dlq replay --arena {stall['arenaId']}"
    return {
        "outbox": outbox_metrics(db.session).to_dict(),
        "consumer": _consumer(settings),
        "projections": projections,
        "deadLetters": _dead_letters(settings),
        "broker": _broker(settings),
        "flower": settings.flower_url,
    }


def _dead_letters(settings: Settings) -> dict[str, Any]:
    try:
        return {"topic": settings.kafka_dlq_topic, "records": dead_letters(settings)}
    except KafkaError as error:
        return {"topic": settings.kafka_dlq_topic, "records": None, "error": repr(error)}


def _broker(settings: Settings) -> dict[str, Any]:
    """Tasks waiting in the Celery queues; when the broker is away, say so."""
    queues = [settings.celery_queue, relay_queue(settings)]
    try:
        return {"queues": [depth.to_dict() for depth in queue_depths(components().celery, queues)]}
    except BROKER_ERRORS as error:  # the page still answers
        return {"queues": None, "error": repr(error)}


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
