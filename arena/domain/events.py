"""Domain events and the envelope every event travels in (outbox → Kafka → projections)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

AGGREGATE_TYPE = "Arena"
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """A fact an aggregate recorded; `version` is the aggregate's version after the change."""

    type: str
    aggregate_id: str
    version: int
    occurred_at: datetime
    payload: dict[str, Any]


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
    schema_version: int = SCHEMA_VERSION

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


class MalformedEnvelope(ValueError):
    """A received message is not an event envelope; retrying cannot help."""
