"""Handing a batch of received records to a Celery projection task, without ever dropping it.

A send returns once the broker has confirmed the message (publisher confirms): from then on the
broker keeps it until a worker acks it, after the task ran. While the broker is away the
dispatcher waits and tries again, with backoff, and the consumer commits nothing past the batch
meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from kombu.exceptions import OperationalError as KombuOperationalError

from arena.messaging.celery import PROJECT_TASK
from arena.messaging.records import ReceivedRecord

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0


class TaskSender(Protocol):
    def send_task(self, name: str, *, args: list[Any], task_id: str) -> object: ...


class ProjectionDispatcher:
    def __init__(
        self,
        celery: TaskSender,
        stopping: threading.Event,
        new_task_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._celery = celery
        self._stopping = stopping
        self._new_task_id = new_task_id

    def __call__(self, events: list[ReceivedRecord]) -> str:
        """The id of the task now carrying `events`; raises only once a stop was asked for."""
        payload = [dataclasses.asdict(event) for event in events]
        task_id = self._new_task_id()
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                self._celery.send_task(PROJECT_TASK, args=[payload], task_id=task_id)
                return task_id
            except (KombuOperationalError, OSError) as error:  # kombu's, or a socket's
                if self._stopping.is_set():
                    raise
                log.warning("Celery broker unavailable (%r); retrying in %.1f s", error, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)
