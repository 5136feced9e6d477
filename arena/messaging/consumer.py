"""The long-running consumer loop behind `flask consume`.

Offsets are committed only after every polled record was handed to the Celery broker, so a crash
re-delivers (never drops) records; projections are idempotent, so re-delivery is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A record as the projection task gets it: the raw value plus where it came from."""

    value: str
    key: str | None
    topic: str
    partition: int
    offset: int

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> ReceivedEvent:
        return cls(
            value=record.value.decode("utf-8", errors="replace"),
            key=record.key.decode("utf-8", errors="replace") if record.key else None,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )


def consume(
    consumer: KafkaConsumer,
    dispatch: Callable[[list[ReceivedEvent]], None],
    should_stop: Callable[[], bool],
    *,
    batch_per_arena: bool = True,
    poll_timeout_ms: int = 500,
    max_records: int = 500,
) -> int:
    """Poll, dispatch, commit until `should_stop()`; return how many records were dispatched.

    With `batch_per_arena`, the consecutive events of one arena (one key) in a poll go out as one
    dispatch, in order; otherwise each event goes alone.
    """
    dispatched = 0
    try:
        while not should_stop():
            try:
                batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_records)
            except KafkaError as error:
                log.warning("poll failed (%r); polling again in a second", error)
                time.sleep(1.0)
                continue
            events = [ReceivedEvent.from_record(r) for records in batch.values() for r in records]
            for group in _groups(events, batch_per_arena):
                dispatch(group)
            if events:
                dispatched += len(events)
                log.info("dispatched %d event(s), %d in total", len(events), dispatched)
                _commit(consumer)
    finally:
        consumer.close(autocommit=False)
    return dispatched


def _commit(consumer: KafkaConsumer) -> None:
    """Commit what was dispatched; if Kafka is away, the next commit covers it (or, after a
    rebalance, the records are delivered again, and projections ignore duplicates)."""
    try:
        consumer.commit()
    except KafkaError as error:
        log.warning("offset commit failed (%r); carrying on", error)


def _groups(events: list[ReceivedEvent], batch_per_arena: bool) -> list[list[ReceivedEvent]]:
    if not batch_per_arena:
        return [[event] for event in events]
    by_key: dict[tuple[str, int, str | None], list[ReceivedEvent]] = {}
    for event in events:  # one arena's events share a key and a partition, in offset order
        by_key.setdefault((event.topic, event.partition, event.key), []).append(event)
    return list(by_key.values())
