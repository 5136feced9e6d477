"""What the relay and the dead-lettering need from a message broker (Kafka in production)."""

from __future__ import annotations

from typing import Protocol


class MessageRejected(Exception):
    """This one message cannot be published (e.g. too large); the broker itself is fine."""


class Delivery(Protocol):
    def confirm(self) -> None:
        """After `flush()`: raise unless the broker acknowledged the message (never waits)."""


class Publisher(Protocol):
    def publish(self, key: str, value: bytes, headers: dict[str, str]) -> Delivery:
        """Hand one message (its value already encoded) to the producer.

        Raises `MessageRejected` for a problem of this message alone, anything else when the
        broker cannot be reached (then further messages would fail too).
        """

    def flush(self) -> None:
        """Push everything handed over so far to the broker."""
