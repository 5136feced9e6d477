"""ProjectionDispatcher: a batch goes to one task, and a broker outage or refusal delays it (with
backoff) instead of dropping it or stopping the consumer, until a stop is asked for; a record too
large for any broker message, by the setting or by the broker's own refusal, is dead-lettered."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from amqp.exceptions import PreconditionFailed
from kombu.exceptions import OperationalError

from arena.messaging.celery_setup import PROJECT_TASK
from arena.messaging.dispatch import (
    FIRST_PAUSE_SECONDS,
    MAX_PAUSE_SECONDS,
    MESSAGE_OVERHEAD_BYTES,
    BatchTooLargeForBroker,
    ProjectionDispatcher,
    TooLargeForBroker,
)
from arena.messaging.records import ReceivedRecord

EVENTS = [ReceivedRecord('{"e": 1}', "arena-1", "arena.events", 0, 7)]
RECORD = {
    "value": '{"e": 1}',
    "key": "arena-1",
    "topic": "arena.events",
    "partition": 0,
    "offset": 7,
}


class Broker:
    """Celery's `send_task`, failing the first `outages` sends as kombu does."""

    def __init__(self, outages: int = 0, error: Exception | None = None) -> None:
        self.outages = outages
        self.error = error or OperationalError("broker away")
        self.calls: list[tuple[str, Any]] = []

    def send_task(self, name: str, *, args: list[Any], task_id: str) -> None:
        if self.outages:
            self.outages -= 1
            raise self.error
        self.calls.append(("send", (name, args, task_id)))


class Waits(threading.Event):
    """A stop event whose waits return at once and are written down."""

    def __init__(self) -> None:
        super().__init__()
        self.waited: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout or 0.0)
        return self.is_set()


def dispatcher(broker, stopping, dead_letters=None, max_message_bytes=128 * 1024 * 1024):
    return ProjectionDispatcher(
        broker,
        stopping,
        lambda record, error: dead_letters.append((record, error)),
        max_message_bytes=max_message_bytes,
        new_task_id=lambda: "task-1",
    )


def test_the_batch_goes_to_one_task_named_by_the_id_it_answers():
    broker = Broker()
    dispatch = dispatcher(broker, Waits())

    assert dispatch(EVENTS) == "task-1"
    assert broker.calls == [("send", (PROJECT_TASK, [[RECORD]], "task-1"))]


def test_a_broker_outage_delays_the_batch_with_backoff_and_loses_nothing():
    broker, stopping = Broker(outages=6), Waits()
    dispatch = dispatcher(broker, stopping)

    assert dispatch(EVENTS) == "task-1"
    assert [call for call in broker.calls if call[0] == "send"] == [
        ("send", (PROJECT_TASK, [[RECORD]], "task-1"))
    ]
    assert stopping.waited == [min(FIRST_PAUSE_SECONDS * 2**n, MAX_PAUSE_SECONDS) for n in range(6)]


def test_once_a_stop_is_asked_for_an_outage_is_raised_so_nothing_is_committed_past_it():
    stopping = Waits()
    stopping.set()
    broker = Broker(outages=1)

    with pytest.raises(OperationalError):
        dispatcher(broker, stopping)(EVENTS)


def size_refusal(max_size=134217728):
    """What py-amqp raises when RabbitMQ refuses a message above its max_message_size."""
    return PreconditionFailed(
        reply_text=f"PRECONDITION_FAILED - message size {max_size + 10_000} is larger than "
        f"configured max size {max_size}",
        method_sig=(60, 40),
        reply_code=406,
    )


def test_a_broker_refusing_the_message_otherwise_is_retried_with_backoff():
    refusal = PreconditionFailed(
        reply_text="PRECONDITION_FAILED - inequivalent arg 'x-max-priority' for queue",
        method_sig=(50, 10),
        reply_code=406,
    )
    broker, stopping = Broker(outages=2, error=refusal), Waits()

    assert dispatcher(broker, stopping)(EVENTS) == "task-1"
    assert len(broker.calls) == 1
    assert stopping.waited == [FIRST_PAUSE_SECONDS, 2 * FIRST_PAUSE_SECONDS]


def test_a_record_the_broker_refuses_for_its_size_is_dead_lettered_not_retried():
    # BROKER_MAX_MESSAGE_BYTES says 128 MiB; RabbitMQ's max_message_size is 100 kB.
    record = ReceivedRecord("x" * 150_000, "arena-1", "arena.events", 0, 8)
    broker, stopping, dead_letters = Broker(outages=1, error=size_refusal(100_000)), Waits(), []
    dispatch = dispatcher(broker, stopping, dead_letters)

    assert dispatch([record]) is None  # finished: its lane is free for the next records
    assert stopping.waited == []
    [(dead, error)] = dead_letters
    assert dead == record
    assert isinstance(error, TooLargeForBroker)
    assert "larger than configured max size 100000" in str(error)

    # The broker's limit is known from now on: the next such record is not even sent.
    assert dispatch([ReceivedRecord("y" * 150_000, "arena-1", "arena.events", 0, 9)]) is None
    assert broker.calls == []
    assert len(dead_letters) == 2
    assert dispatch(EVENTS) == "task-1"


def test_a_batch_the_broker_refuses_for_its_size_goes_back_to_be_sent_smaller():
    broker, dead_letters = Broker(outages=1, error=size_refusal(200_000)), []
    dispatch = dispatcher(broker, Waits(), dead_letters)
    batch = [ReceivedRecord("x" * 100_000, "arena-1", "arena.events", 0, n) for n in range(3)]

    with pytest.raises(BatchTooLargeForBroker) as refusal:
        dispatch(batch)

    assert refusal.value.max_record_bytes == 200_000 - MESSAGE_OVERHEAD_BYTES
    assert dead_letters == []
    assert dispatch(batch[:1]) == "task-1"


def test_a_record_too_large_for_any_broker_message_is_dead_lettered_and_nothing_is_sent():
    huge = ReceivedRecord("x" * 200_000, "arena-1", "arena.events", 0, 8)
    broker, dead_letters = Broker(), []

    dispatch = dispatcher(broker, Waits(), dead_letters, max_message_bytes=200_000)

    assert dispatch([huge]) is None  # finished: its lane is free for the next records
    assert broker.calls == []
    [(record, error)] = dead_letters
    assert record == huge
    assert isinstance(error, TooLargeForBroker)
    assert "BROKER_MAX_MESSAGE_BYTES=200000" in str(error)


def test_a_dead_letter_that_fails_is_retried_until_it_is_sent():
    failures, sent, stopping = [OSError("kafka away")], [], Waits()

    def dead_letter(record, error):
        if failures:
            raise failures.pop()
        sent.append(record)

    huge = ReceivedRecord("x" * 200_000, "arena-1", "arena.events", 0, 8)
    dispatch = ProjectionDispatcher(Broker(), stopping, dead_letter, max_message_bytes=100_000)

    assert dispatch([huge]) is None
    assert sent == [huge]
    assert stopping.waited == [FIRST_PAUSE_SECONDS]
