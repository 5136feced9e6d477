"""`flask consume`: the long-running Kafka consumer feeding the projection tasks."""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import uuid
from types import FrameType

import click
from flask import current_app
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from arena.messaging.consumer import ReceivedEvent, consume
from arena.messaging.kafka import ensure_topics, events_consumer
from arena.pacing import Pace

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0
PROJECTION_BATCH_MAX = 1000  # events per projection task: one Redis pipeline of this many writes
COMMIT_INTERVAL_SECONDS = 1.0  # a crash re-delivers at most about this much, which is harmless


@click.command("consume")
def consume_command() -> None:
    """Consume arena events from Kafka and hand them in batches to Celery projection tasks."""
    from tasks.projections import project_events

    settings = current_app.extensions["settings"]
    ensure_topics(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    in_flight = current_app.extensions["projections_in_flight"]

    def dispatch(events: list[ReceivedEvent]) -> str:
        """Record the task as in flight, then hand it to Celery; while the broker is away, wait
        and retry (no commit yet)."""
        payload = [dataclasses.asdict(event) for event in events]
        task_id = str(uuid.uuid4())
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                in_flight.record(task_id, payload)
                project_events.apply_async(args=[payload], task_id=task_id)
                return task_id
            except (KombuOperationalError, RedisError) as error:
                if stop.is_set():
                    raise
                log.warning("Celery broker unavailable (%r); retrying in %.1f s", error, pause)
                stop.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)

    batching = settings.projection_batching
    log.info("consuming %s as group %s", settings.kafka_events_topic, settings.kafka_consumer_group)
    total = consume(
        events_consumer(settings),
        dispatch,
        stop.is_set,
        still_running=in_flight.running,
        max_per_dispatch=PROJECTION_BATCH_MAX if batching else 1,
        commit_interval_seconds=COMMIT_INTERVAL_SECONDS,
        # One event per task cannot gather: pacing would only cap its throughput.
        pace=Pace.per_second(settings.projection_tasks_per_second)
        if batching
        else Pace.unlimited(),
    )
    log.info("consumer stopped after dispatching %d event(s)", total)
