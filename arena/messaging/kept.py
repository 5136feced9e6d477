"""A client kept for a process's occasional look at a service (Kafka's offsets, the broker's
queues): made on first use, dropped after any failure, so the next call connects afresh."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Client = TypeVar("Client")
T = TypeVar("T")


class Kept(Generic[Client]):
    """Invariants: at most one client at a time, used by one call at a time (the clients kept
    here are not meant for several threads at once); a call that raises leaves no client behind,
    so a service that went away is never asked again on a connection it broke."""

    def __init__(self, connect: Callable[[], Client], close: Callable[[Client], None]) -> None:
        self._connect = connect
        self._close = close
        self._client: Client | None = None
        self._lock = threading.Lock()

    def use(self, call: Callable[[Client], T]) -> T:
        """`call` with the kept client (made now if there is none); what it raises, raised."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            try:
                return call(self._client)
            except Exception:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            self._close(client)
