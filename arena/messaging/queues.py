"""How many tasks wait in the broker's queues, and how many workers consume each."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from amqp.exceptions import AMQPError
from celery import Celery
from kombu.connection import Connection
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


class BrokerQueues:
    """One AMQP connection for looking at queue depths, made on first use and kept.

    Dropped after any failure (a queue not declared yet closes the channel too), so the next call
    connects afresh. Connecting, reading and writing each give up within `timeout_seconds`; no
    heartbeats, since nothing reads this connection between calls. Calls are serialised.
    """

    def __init__(self, celery: Celery, timeout_seconds: float = BROKER_TIMEOUT_SECONDS) -> None:
        self._celery = celery
        self._timeout = timeout_seconds
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def depths(self, queues: Iterable[str]) -> list[QueueDepth]:
        """A passive declare per queue (it creates nothing); raises if the broker is away."""
        with self._lock:
            try:
                channel = self._connected().default_channel
                depths = []
                for queue in queues:
                    _, waiting, consumers = channel.queue_declare(queue, passive=True)  # type: ignore[no-untyped-call]
                    depths.append(QueueDepth(queue, waiting, consumers))
                return depths
            except Exception:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _connected(self) -> Connection:
        if self._connection is None:
            connection = self._celery.connection_for_read(
                connect_timeout=self._timeout,
                heartbeat=0,
                transport_options={"read_timeout": self._timeout, "write_timeout": self._timeout},
            )
            try:
                connection.ensure_connection(max_retries=0, timeout=self._timeout)  # one try
            except Exception:
                connection.release()
                raise
            self._connection = connection
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            connection.release()  # type: ignore[no-untyped-call]


def queue_depths(celery: Celery, queues: Iterable[str]) -> list[QueueDepth]:
    """Depths on a connection of its own, closed after (tools and tests that look once)."""
    broker = BrokerQueues(celery)
    try:
        return broker.depths(queues)
    finally:
        broker.close()
