"""The record type of the read side's intake: what `flask consume` hands to projection tasks."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord


# Not slotted: `task_bytes` is cached in the instance's dict, which `task_fields` leaves out.
@dataclass(frozen=True)
class ReceivedRecord:
    """A Kafka record as projection tasks get it: the undecoded value and where it came from.

    The value is text that ought to be an event envelope; `EventEnvelope.from_json` says whether
    it is. Topic, partition and offset name the record in the DLQ, and order a batch's retries.
    The fields are the projection task's argument (`ReceivedRecord(**fields)` on the worker).
    """

    value: str
    key: str | None
    topic: str
    partition: int
    offset: int

    @classmethod
    def from_record(cls, record: ConsumerRecord) -> ReceivedRecord:
        return cls(
            value=record.value.decode("utf-8", errors="replace"),
            key=record.key.decode("utf-8", errors="replace") if record.key else None,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )

    def task_fields(self) -> dict[str, Any]:
        # Shallow: every field is a str or an int, which `asdict` would copy deep for nothing.
        return {field.name: getattr(self, field.name) for field in _FIELDS}

    @cached_property
    def task_bytes(self) -> int:
        """What it adds to a projection task's message: itself as JSON, as Celery encodes it
        (escapes included, so a record of non-ASCII text counts several bytes a character).
        Encoded once per record, however often the consumer and dispatcher ask."""
        return len(json.dumps(self.task_fields()))


_FIELDS = dataclasses.fields(ReceivedRecord)
