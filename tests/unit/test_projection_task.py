"""The projection task's failure path, without services: an unexpected error in the read side is
retried with the whole batch, and once the batch has failed for long enough, each event goes to
the DLQ with that error as its reason; the lane is marked finished either way."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import Retry

from arena.messaging.records import ReceivedRecord
from tasks import projections

EVENTS = [
    dataclasses.asdict(
        ReceivedRecord(value="{}", key=f"arena-{n}", topic="t", partition=n, offset=7)
    )
    for n in range(2)
]


class Broken(RuntimeError):
    """A bug in the read side, not a poison event nor the store away."""


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    seen: dict[str, list[Any]] = {"retries": [], "dead_letters": [], "finished": []}

    def broken(*_: object) -> None:
        raise Broken("the projection fell over")

    def dead_letter(
        _views: object, _dlq: object, received: ReceivedRecord, error: Exception, **_: object
    ) -> None:
        seen["dead_letters"].append((received.key, error))

    def retry(exc: Exception, countdown: float, kwargs: dict[str, Any] | None = None) -> Retry:
        seen["retries"].append((type(exc), countdown, kwargs))
        return Retry(exc=exc, when=countdown)

    parts = SimpleNamespace(
        views=object(),
        settings=SimpleNamespace(kafka_dlq_topic="dlq"),
        publishers=SimpleNamespace(dead_letters=lambda: object(), discard=lambda topic: None),
        finished_tasks=SimpleNamespace(mark=seen["finished"].append),
    )
    monkeypatch.setattr(projections, "components", lambda: parts)
    monkeypatch.setattr(projections, "project_batch", broken)
    monkeypatch.setattr(projections, "apply_one", broken)
    monkeypatch.setattr(projections, "dead_letter", dead_letter)
    monkeypatch.setattr(projections.project_events, "retry", retry)
    return seen


def test_an_unexpected_error_retries_the_whole_batch(seen: dict[str, list[Any]]) -> None:
    with pytest.raises(Retry):
        projections.project_events.run(EVENTS)

    [(reason, countdown, kwargs)] = seen["retries"]
    assert reason is Broken
    assert 0 < countdown <= projections.MAX_RETRY_SECONDS
    assert kwargs is not None and kwargs["events"] == EVENTS
    assert seen["dead_letters"] == [] and seen["finished"] == []  # its lane stays busy


def test_an_unexpected_error_that_outlasts_the_retries_is_dead_lettered_with_its_reason(
    seen: dict[str, list[Any]],
) -> None:
    long_ago = datetime.now(UTC) - timedelta(seconds=projections.RETRY_FOR_SECONDS + 1)

    outcomes = projections.project_events.run(EVENTS, first_failure_at=long_ago.isoformat())

    assert outcomes == {"dead-lettered": 2}
    assert [key for key, _ in seen["dead_letters"]] == ["arena-0", "arena-1"]
    assert all(isinstance(error, Broken) for _, error in seen["dead_letters"])
    assert seen["retries"] == []
    assert len(seen["finished"]) == 1
