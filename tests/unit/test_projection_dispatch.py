"""ProjectionDispatcher: a batch goes to one task, and a broker outage delays it (with backoff)
instead of dropping it, until a stop is asked for."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from kombu.exceptions import OperationalError

from arena.messaging.celery import PROJECT_TASK
from arena.messaging.dispatch import FIRST_PAUSE_SECONDS, MAX_PAUSE_SECONDS, ProjectionDispatcher
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

    def __init__(self, outages: int = 0) -> None:
        self.outages = outages
        self.calls: list[tuple[str, Any]] = []

    def send_task(self, name: str, *, args: list[Any], task_id: str) -> None:
        if self.outages:
            self.outages -= 1
            raise OperationalError("broker away")
        self.calls.append(("send", (name, args, task_id)))


class Waits(threading.Event):
    """A stop event whose waits return at once and are written down."""

    def __init__(self) -> None:
        super().__init__()
        self.waited: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waited.append(timeout or 0.0)
        return self.is_set()


def test_the_batch_goes_to_one_task_named_by_the_id_it_answers():
    broker = Broker()
    dispatch = ProjectionDispatcher(broker, Waits(), new_task_id=lambda: "task-1")

    assert dispatch(EVENTS) == "task-1"
    assert broker.calls == [("send", (PROJECT_TASK, [[RECORD]], "task-1"))]


def test_a_broker_outage_delays_the_batch_with_backoff_and_loses_nothing():
    broker, stopping = Broker(outages=6), Waits()
    dispatch = ProjectionDispatcher(broker, stopping, new_task_id=lambda: "task-1")

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
        ProjectionDispatcher(broker, stopping)(EVENTS)
