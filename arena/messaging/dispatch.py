"""Handing a batch of received records to a Celery projection task, without ever dropping it.

A send returns once the broker has confirmed the message (publisher confirms): from then on the
broker keeps it until a worker acks it, after the task ran. While the broker is away, or refuses
the message for a reason that may pass, the dispatcher waits and tries again, with backoff, and
the consumer commits nothing past the batch meanwhile; no send error stops the consumer. A
record too large for any broker message, by BROKER_MAX_MESSAGE_BYTES or by the broker's own
refusal (its limit is lower than the setting says), is dead-lettered instead; a batch of several
records the broker refused for its size goes back to the consumer to be sent in smaller ones.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from amqp.exceptions import PreconditionFailed

from arena.messaging.celery_setup import PROJECT_TASK
from arena.messaging.records import ReceivedRecord

log = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0
# Celery's message around the records: headers, the task's name and id, and the JSON that holds
# them together, well within this.
MESSAGE_OVERHEAD_BYTES = 64 * 1024
# RabbitMQ's refusal of a message above its max_message_size (a 406 that closes the channel).
_BROKER_SIZE_REFUSAL = re.compile(r"message size \d+ is larger than configured max size (\d+)")


class TooLargeForBroker(Exception):
    """The task carrying this record would exceed the broker's largest message."""


class BatchTooLargeForBroker(Exception):
    """The broker refused a task of several records for its size: the consumer should send
    batches of at most `max_record_bytes` of records from now on."""

    def __init__(self, max_record_bytes: int) -> None:
        super().__init__(f"batches of at most {max_record_bytes} bytes of records")
        self.max_record_bytes = max_record_bytes


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
        large for the broker; raises BatchTooLargeForBroker for a batch of several records the
        broker refused for its size, and anything else only once a stop was asked for."""
        size = MESSAGE_OVERHEAD_BYTES + sum(event.task_bytes for event in events)
        if size > self._max_message_bytes:
            self._dead_letter_all(
                events,
                TooLargeForBroker(
                    f"a projection task of {size} bytes exceeds the broker's largest message "
                    f"(BROKER_MAX_MESSAGE_BYTES={self._max_message_bytes})"
                ),
            )
            return None
        payload = [event.task_fields() for event in events]
        task_id = self._new_task_id()
        refusal = self._retry_until_done(
            lambda: self._celery.send_task(PROJECT_TASK, args=[payload], task_id=task_id),
            "projection task",
        )
        if refusal is None:
            return task_id
        broker_max, reason = refusal
        # Its real limit, lower than BROKER_MAX_MESSAGE_BYTES: no later task tries above it, nor
        # at this size again, so that batches shrink however far off our size is.
        self._max_message_bytes = min(self._max_message_bytes, broker_max, size - 1)
        log.error(
            "the broker refused a projection task of %d bytes (%s): BROKER_MAX_MESSAGE_BYTES is "
            "above its max_message_size; sending at most %d bytes from now on",
            size,
            reason,
            self._max_message_bytes,
        )
        if len(events) > 1:
            raise BatchTooLargeForBroker(self._max_message_bytes - MESSAGE_OVERHEAD_BYTES)
        self._dead_letter_all(
            events,
            TooLargeForBroker(f"the broker refused a projection task of {size} bytes: {reason}"),
        )
        return None

    def _dead_letter_all(self, events: list[ReceivedRecord], error: TooLargeForBroker) -> None:
        for event in events:
            self._retry_until_done(partial(self._dead_letter, event, error), "dead letter")

    def _retry_until_done(self, send: Callable[[], object], what: str) -> tuple[int, str] | None:
        """None once sent; the broker's largest message and its words if it refused the message
        for its size, which no retry changes. The broker away (kombu's or a socket's error) or
        refusing otherwise (a channel error): try again with backoff, whatever the error, until
        a stop is asked for."""
        pause = FIRST_PAUSE_SECONDS
        while True:
            try:
                send()
                return None
            except Exception as error:  # any: never stop the consumer; retried
                if refusal := _size_refusal(error):
                    return refusal
                if self._stopping.is_set():
                    raise
                log.warning("sending a %s failed (%r); retrying in %.1f s", what, error, pause)
                self._stopping.wait(pause)
                pause = min(pause * 2, MAX_PAUSE_SECONDS)


def _size_refusal(error: Exception) -> tuple[int, str] | None:
    """The broker's largest message and its words, if `error` is its refusal of one too large."""
    if isinstance(error, PreconditionFailed) and error.reply_code == 406:
        text = str(error.reply_text)
        if found := _BROKER_SIZE_REFUSAL.search(text):
            return int(found[1]), text
    return None
