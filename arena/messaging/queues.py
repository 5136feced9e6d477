"""How many tasks wait in the broker's queues, and how many workers consume each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import KombuError

BROKER_TIMEOUT_SECONDS = 2
# The broker away (socket, kombu), or a queue not declared yet (AMQP's NOT_FOUND).
BROKER_ERRORS = (OSError, KombuError, AMQPError)


@dataclass(frozen=True, slots=True)
class QueueDepth:
    queue: str
    waiting: int  # ready to be delivered; what workers hold unacked is not counted
    consumers: int

    def to_dict(self) -> dict[str, object]:
        return {"queue": self.queue, "waiting": self.waiting, "consumers": self.consumers}


def queue_depths(celery: Celery, queues: Iterable[str]) -> list[QueueDepth]:
    """A passive declare per queue (it creates nothing); raises if the broker is away."""
    with celery.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        channel = connection.default_channel
        depths = []
        for queue in queues:
            _, waiting, consumers = channel.queue_declare(queue, passive=True)
            depths.append(QueueDepth(queue, waiting, consumers))
        return depths
