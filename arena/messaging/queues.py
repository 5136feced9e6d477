"""How many tasks wait in the broker's queues, and how many workers consume each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from amqp.exceptions import AMQPError
from celery import Celery
from kombu.connection import Connection
from kombu.exceptions import KombuError

from arena.messaging.kept import Kept

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


class BrokerQueues:
    """One AMQP connection per process for looking at queue depths (`Kept`: a queue not declared
    yet closes the channel too, so it is dropped then as well). Connecting, reading and writing
    each give up within `timeout_seconds`; no heartbeats, since nothing reads this connection
    between calls."""

    def __init__(self, celery: Celery, timeout_seconds: float = BROKER_TIMEOUT_SECONDS) -> None:
        self._celery = celery
        self._timeout = timeout_seconds
        self._connection = Kept(self._connect, Connection.release)

    def depths(self, queues: Iterable[str]) -> list[QueueDepth]:
        """A passive declare per queue (it creates nothing); raises if the broker is away."""
        return self._connection.use(lambda connection: _depths(connection, queues))

    def close(self) -> None:
        self._connection.close()

    def _connect(self) -> Connection:
        connection: Connection = self._celery.connection_for_read(
            connect_timeout=self._timeout,
            heartbeat=0,
            transport_options={"read_timeout": self._timeout, "write_timeout": self._timeout},
        )
        try:
            connection.ensure_connection(max_retries=0, timeout=self._timeout)  # type: ignore[no-untyped-call]  # one try
        except Exception:
            connection.release()  # type: ignore[no-untyped-call]
            raise
        return connection


def _depths(connection: Connection, queues: Iterable[str]) -> list[QueueDepth]:
    channel = connection.default_channel
    depths = []
    for queue in queues:
        _, waiting, consumers = channel.queue_declare(queue, passive=True)  # type: ignore[no-untyped-call]
        depths.append(QueueDepth(queue, waiting, consumers))
    return depths


def queue_depths(celery: Celery, queues: Iterable[str]) -> list[QueueDepth]:
    """Depths on a connection of its own, closed after (tools and tests that look once)."""
    broker = BrokerQueues(celery)
    try:
        return broker.depths(queues)
    finally:
        broker.close()
