"""`flask consume`: the long-running Kafka consumer feeding the projection tasks."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from arena.bootstrap import Components, components
from arena.messaging.consumer import consume
from arena.messaging.dispatch import MESSAGE_OVERHEAD_BYTES, DeadLetter, ProjectionDispatcher
from arena.messaging.kafka import ensure_topics, events_consumer
from arena.messaging.records import ReceivedRecord
from arena.pacing import Pace
from arena.readmodel.intake import dead_letter

log = logging.getLogger(__name__)

PROJECTION_BATCH_MAX = 1000  # events per projection task: one Redis pipeline of this many writes
COMMIT_INTERVAL_SECONDS = 1.0  # a crash re-delivers at most about this much, which is harmless


def dead_letter_via(parts: Components) -> DeadLetter:
    """What the consumer does with a record too large for the broker: to the DLQ, stalling its
    arena, as a projection task would; a producer whose send failed is built afresh."""

    def dead_letter_too_large(record: ReceivedRecord, error: Exception) -> None:
        try:
            dead_letter(
                parts.views,
                parts.publishers.dead_letters(),
                record,
                error,
                attempts=1,
                first_failure_at=None,
            )
        except Exception:
            parts.publishers.discard(parts.settings.kafka_dlq_topic)
            raise

    return dead_letter_too_large


@click.command("consume")
def consume_command() -> None:
    """Consume arena events from Kafka and hand them in batches to Celery projection tasks."""
    parts = components()
    settings = parts.settings
    ensure_topics(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("%s received: finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    dispatch = ProjectionDispatcher(
        parts.celery,
        stop,
        dead_letter_via(parts),
        max_message_bytes=settings.broker_max_message_bytes,
    )
    log.info("consuming %s as group %s", settings.kafka_events_topic, settings.kafka_consumer_group)
    total = consume(
        events_consumer(settings),
        dispatch,
        stop.is_set,
        still_running=parts.finished_tasks.unfinished,
        max_per_dispatch=PROJECTION_BATCH_MAX,
        # Every task of more than one record fits the broker's message: only a single record
        # can be too large, and it alone is dead-lettered.
        max_bytes_per_dispatch=min(
            settings.projection_task_max_bytes,
            settings.broker_max_message_bytes - MESSAGE_OVERHEAD_BYTES,
        ),
        commit_interval_seconds=COMMIT_INTERVAL_SECONDS,
        pace=Pace.per_second(settings.projection_tasks_per_second),
    )
    log.info("consumer stopped after dispatching %d event(s)", total)
