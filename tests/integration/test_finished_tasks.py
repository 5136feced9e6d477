"""Finished marks on the real read-model Redis: read once, then gone; unread, kept long."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from arena.messaging.finished_tasks import MARK_SECONDS, FinishedTasks
from arena.settings import Settings

pytestmark = pytest.mark.integration


def test_a_mark_is_taken_by_the_read_that_finds_it_and_an_unread_one_outlives_an_outage(
    settings: Settings, redis_client: Redis
) -> None:
    marks = FinishedTasks(redis_client, settings.read_model_prefix)
    done, waiting, forgotten = (f"task-{uuid.uuid4()}" for _ in range(3))
    marks.mark(done)
    marks.mark(forgotten)

    assert marks.unfinished({done, waiting}) == {waiting}
    assert marks.unfinished({done}) == {done}  # taken: nothing of it is left behind
    key = f"{settings.read_model_prefix}:projection-finished:{forgotten}"
    assert redis_client.ttl(key) > MARK_SECONDS - 60 >= 24 * 3600
