"""The envelope every event travels in: what the outbox stores, Kafka carries and projections read.

The wire format is fixed (camelCase keys, `schemaVersion` per event type); the typed events of
`arena.domain.events` go in through `wrap` and come out through `event`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from arena.domain.events import DomainEvent, PoisonEvent, decode_event

AGGREGATE_TYPE = "Arena"


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    """The wire form of an event: what the outbox stores, Kafka carries and projections read."""

    event_type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: str
    payload: dict[str, Any]
    correlation_id: str
    causation_id: str
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    aggregate_type: str = AGGREGATE_TYPE
    schema_version: int = 1

    @classmethod
    def wrap(cls, event: DomainEvent, *, correlation_id: str, causation_id: str) -> EventEnvelope:
        return cls(
            event_type=event.type,
            aggregate_id=event.aggregate_id,
            aggregate_version=event.version,
            occurred_at=event.occurred_at.isoformat(),
            payload=event.payload,
            correlation_id=correlation_id,
            causation_id=causation_id,
            schema_version=event.schema_version,
        )

    def event(self) -> DomainEvent:
        """The typed event inside; `UnknownEvent` or `RejectedPayload` when it cannot be read."""
        return decode_event(
            self.event_type,
            self.schema_version,
            aggregate_id=self.aggregate_id,
            version=self.aggregate_version,
            occurred_at=self.occurred_at,
            payload=self.payload,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "eventId": self.event_id,
            "eventType": self.event_type,
            "schemaVersion": self.schema_version,
            "aggregateType": self.aggregate_type,
            "aggregateId": self.aggregate_id,
            "aggregateVersion": self.aggregate_version,
            "occurredAt": self.occurred_at,
            "correlationId": self.correlation_id,
            "causationId": self.causation_id,
            "payload": self.payload,
        }

    @classmethod
    def from_json(cls, text: str) -> EventEnvelope:
        """Parse a message's text: the one parser of received records."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise MalformedEnvelope(f"the message is not JSON: {error}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> EventEnvelope:
        """Parse a received envelope strictly; `MalformedEnvelope` names every bad field."""
        if not isinstance(data, dict):
            raise MalformedEnvelope("an event envelope must be a JSON object")
        bad = [name for name, kind in _ENVELOPE_FIELDS.items() if not _is_a(data.get(name), kind)]
        if bad:
            raise MalformedEnvelope(f"malformed event envelope, bad or missing: {', '.join(bad)}")
        if data["aggregateVersion"] < 1:
            raise MalformedEnvelope("aggregateVersion must be at least 1")
        return cls(
            event_id=data["eventId"],
            event_type=data["eventType"],
            schema_version=data["schemaVersion"],
            aggregate_type=data["aggregateType"],
            aggregate_id=data["aggregateId"],
            aggregate_version=data["aggregateVersion"],
            occurred_at=data["occurredAt"],
            correlation_id=data["correlationId"],
            causation_id=data["causationId"],
            payload=data["payload"],
        )


_ENVELOPE_FIELDS: dict[str, type] = {
    "eventId": str,
    "eventType": str,
    "schemaVersion": int,
    "aggregateType": str,
    "aggregateId": str,
    "aggregateVersion": int,
    "occurredAt": str,
    "correlationId": str,
    "causationId": str,
    "payload": dict,
}


def _is_a(value: object, kind: type) -> bool:
    """JSON-strict type check: a bool is not an int here, and nothing is coerced."""
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


class MalformedEnvelope(PoisonEvent):
    """A received message is not JSON, or not an event envelope."""
