"""Handing a batch of received records to a Celery projection task, without ever dropping it.

A send returns once the broker has confirmed the message (publisher confirms): from then on the
broker keeps it until a worker acks it, after the task ran. While the broker is away, or refuses
the message, the dispatcher waits and tries again, with backoff, and the consumer commits nothing
past the batch meanwhile; no send error stops the consumer. A batch too large for any broker
message (a single record, as the consumer bounds batches in bytes) is dead-lettered instead.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from arena.messaging.celery import PROJECT_TASK
from arena.messaging.records import ReceivedRecord

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0
# Celery's message around the records: headers, the task's name and id, and the JSON that holds
# them together, well within this.
MESSAGE_OVERHEAD_BYTES = 64 * 1024


class TooLargeForBroker(Exception):
    """The task carrying this record would exceed the broker's largest message."""


class TaskSender(Protocol):
    def send_task(self, name: str, *, args: list[Any], task_id: str) -> object: ...


DeadLetter = Callable[[ReceivedRecord, Exception], None]


class ProjectionDispatcher:
    def __init__(
        self,
        celery: TaskSender,
        stopping: threading.Event,
        dead_letter: DeadLetter,
        *,
        max_message_bytes: int,
        new_task_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._celery = celery
        self._stopping = stopping
        self._dead_letter = dead_letter
        self._max_message_bytes = max_message_bytes
        self._new_task_id = new_task_id

    def __call__(self, events: list[ReceivedRecord]) -> str | None:
        """The id of the task now carrying `events`, or None once they are dead-lettered as too
        large for the broker; raises only once a stop was asked for."""
        size = MESSAGE_OVERHEAD_BYTES + sum(event.task_bytes() for event in events)
        if size > self._max_message_bytes:
            error = TooLargeForBroker(
                f"a projection task of {size} bytes exceeds the broker's largest message "
                f"(BROKER_MAX_MESSAGE_BYTES={self._max_message_bytes})"
            )
            for event in events:
                self._retry_until_done(partial(self._dead_letter, event, error), "dead letter")
            return None
        payload = [dataclasses.asdict(event) for event in events]
        task_id = self._new_task_id()
        self._retry_until_done(
            lambda: self._celery.send_task(PROJECT_TASK, args=[payload], task_id=task_id),
            "projection task",
        )
        return task_id

    def _retry_until_done(self, send: Callable[[], object], what: str) -> None:
        """The broker away (kombu's or a socket's error) or refusing (a channel error): try
        again with backoff, whatever the error, until a stop is asked for."""
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                send()
                return
            except Exception as error:  # any: never stop the consumer; retried
                if self._stopping.is_set():
                    raise
                log.warning("sending a %s failed (%r); retrying in %.1f s", what, error, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
