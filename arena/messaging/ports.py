"""What the relay and the dead-lettering need from a message broker (Kafka in production)."""

from __future__ import annotations

from typing import Any, Protocol


class Delivery(Protocol):
    def confirm(self) -> None:
        """Wait for the broker's acknowledgement; raise if the message was not stored."""


class Publisher(Protocol):
    def publish(self, key: str, value: dict[str, Any], headers: dict[str, str]) -> Delivery:
        """Hand one message to the producer; may raise at once (e.g. a message too large)."""

    def flush(self) -> None:
        """Push everything handed over so far to the broker."""
