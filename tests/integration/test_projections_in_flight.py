"""The in-flight ledger sends again the projection tasks the broker lost, and only those."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from arena.bootstrap import components
from arena.messaging.in_flight import Events, ProjectionsInFlight
from arena.settings import Settings

pytestmark = pytest.mark.integration

RESEND_AFTER_SECONDS = 30.0
EVENTS: Events = [{"key": "arena-1", "value": "{}", "topic": "t", "partition": 0, "offset": 7}]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def in_flight(settings: Settings, clock: Clock) -> Iterator[ProjectionsInFlight]:
    broker = Redis.from_url(settings.celery_broker_url)
    namespace = f"in-flight-test-{uuid.uuid4().hex[:8]}"
    yield ProjectionsInFlight(
        broker, namespace, resend_after_seconds=RESEND_AFTER_SECONDS, clock=clock
    )
    for key in broker.scan_iter(match=f"{namespace}:*"):
        broker.delete(key)
    broker.close()


def _resent(in_flight: ProjectionsInFlight) -> list[tuple[str, Events]]:
    sent: list[tuple[str, Events]] = []
    in_flight.resend_overdue(lambda task_id, events: sent.append((task_id, events)))
    return sent


def test_a_task_silent_for_too_long_is_sent_again_with_its_events(
    in_flight: ProjectionsInFlight, clock: Clock
) -> None:
    in_flight.record("task-1", EVENTS)
    clock.now += RESEND_AFTER_SECONDS + 1

    assert _resent(in_flight) == [("task-1", EVENTS)]


def test_a_task_is_not_sent_again_before_its_time(
    in_flight: ProjectionsInFlight, clock: Clock
) -> None:
    in_flight.record("task-1", EVENTS)
    clock.now += RESEND_AFTER_SECONDS - 1

    assert _resent(in_flight) == []


def test_a_task_that_runs_again_is_alive(in_flight: ProjectionsInFlight, clock: Clock) -> None:
    in_flight.record("task-1", EVENTS)
    clock.now += RESEND_AFTER_SECONDS - 1
    in_flight.alive("task-1")  # e.g. a retry
    clock.now += RESEND_AFTER_SECONDS - 1

    assert _resent(in_flight) == []


def test_a_copy_sent_again_waits_a_full_period_before_the_next(
    in_flight: ProjectionsInFlight, clock: Clock
) -> None:
    in_flight.record("task-1", EVENTS)
    clock.now += RESEND_AFTER_SECONDS + 1
    assert len(_resent(in_flight)) == 1

    assert _resent(in_flight) == []
    clock.now += RESEND_AFTER_SECONDS + 1
    assert len(_resent(in_flight)) == 1


def test_a_finished_task_is_forgotten(in_flight: ProjectionsInFlight, clock: Clock) -> None:
    in_flight.record("task-1", EVENTS)
    in_flight.record("task-2", EVENTS)
    in_flight.done("task-1")
    clock.now += RESEND_AFTER_SECONDS + 1

    assert [task_id for task_id, _ in _resent(in_flight)] == ["task-2"]
    in_flight.done("task-2")
    assert in_flight.count() == 0


def test_alive_does_not_bring_back_a_finished_task(
    in_flight: ProjectionsInFlight, clock: Clock
) -> None:
    in_flight.record("task-1", EVENTS)
    in_flight.done("task-1")
    in_flight.alive("task-1")  # a duplicate copy of a finished task starts running

    assert in_flight.count() == 0


def test_the_pipeline_endpoint_counts_the_tasks_in_flight(app: Flask, client: FlaskClient) -> None:
    ledger: ProjectionsInFlight = components(app).projections_in_flight
    before = client.get("/api/v1/pipeline").get_json()["projections"]["tasksInFlight"]
    task_id = f"pipeline-test-{uuid.uuid4().hex[:8]}"
    ledger.record(task_id, EVENTS)
    try:
        during = client.get("/api/v1/pipeline").get_json()["projections"]["tasksInFlight"]
    finally:
        ledger.done(task_id)
    after = client.get("/api/v1/pipeline").get_json()["projections"]["tasksInFlight"]

    assert (during - before, after) == (1, before)
