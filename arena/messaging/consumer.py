"""The long-running consumer loop behind `flask consume`.

Offsets are committed only after every polled record was handed to the Celery broker, so a crash
re-delivers (never drops) records; projections are idempotent, so re-delivery is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord

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
    dispatch: Callable[[ReceivedEvent], None],
    should_stop: Callable[[], bool],
    *,
    poll_timeout_ms: int = 500,
    max_records: int = 500,
) -> int:
    """Poll, dispatch, commit until `should_stop()`; return how many records were dispatched."""
    dispatched = 0
    try:
        while not should_stop():
            batch = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_records)
            records = [
                record for partition_records in batch.values() for record in partition_records
            ]
            for record in records:
                dispatch(ReceivedEvent.from_record(record))
            if records:
                consumer.commit()
                dispatched += len(records)
                log.info("dispatched %d event(s), %d in total", len(records), dispatched)
    finally:
        consumer.close(autocommit=False)
    return dispatched
