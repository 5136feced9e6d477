"""Projection tasks in flight, from dispatch to completion, kept in the broker's Redis.

Why: kombu's Redis transport takes a message off the queue (BRPOP) before it records it as
unacked. A worker killed in between loses that message, and no visibility timeout brings it back;
the consumer has committed its Kafka offset by then, so nothing else would either. So `flask
consume` records each dispatch here before it sends it, the task refreshes its entry whenever it
schedules a retry (a new message) and removes it once it is done, and a beat task sends again
every entry that has been silent for longer than PROJECTION_RESEND_AFTER_SECONDS. A copy sent
for a task that was only slow is harmless: projections ignore what they have already applied.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Events = list[dict[str, Any]]


class ProjectionsInFlight:
    def __init__(
        self,
        redis: Redis,
        namespace: str,
        *,
        resend_after_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._last_seen = f"{namespace}:projections-in-flight"  # task id → last sign of life
        self._events = f"{namespace}:projections-in-flight:events"  # task id → its events
        self._resend_after_seconds = resend_after_seconds
        self._clock = clock

    def record(self, task_id: str, events: Events) -> None:
        """Before the task is sent; raises if the broker's Redis is away (nothing is sent)."""
        with self._redis.pipeline() as pipe:
            pipe.hset(self._events, task_id, json.dumps(events))
            pipe.zadd(self._last_seen, {task_id: self._clock()})
            pipe.execute()

    def alive(self, task_id: str) -> None:
        """The task scheduled a retry: count the silence from now. Best effort, like `done`."""
        self._best_effort(
            "refresh", lambda: self._redis.zadd(self._last_seen, {task_id: self._clock()}, xx=True)
        )

    def done(self, task_id: str) -> None:
        """Applied, ignored as a duplicate, parked or dead-lettered: nothing left to do.

        If this fails, the entry outlives the task and one harmless copy is sent later.
        """

        def forget() -> None:
            with self._redis.pipeline() as pipe:
                pipe.zrem(self._last_seen, task_id)
                pipe.hdel(self._events, task_id)
                pipe.execute()

        self._best_effort("remove", forget)

    def running(self, task_ids: set[str]) -> set[str]:
        """Which of these tasks are not done yet; if the broker's Redis is away, all of them."""
        ordered = list(task_ids)
        try:
            scores = self._redis.zmscore(self._last_seen, ordered)
        except RedisError:
            return task_ids
        return {
            task_id for task_id, score in zip(ordered, scores, strict=True) if score is not None
        }

    def resend_overdue(self, send: Callable[[str, Events], None], limit: int = 500) -> int:
        """Send again (same task id) each task silent for too long; answer how many."""
        silent_since = self._clock() - self._resend_after_seconds
        task_ids = [
            raw.decode()
            for raw in self._redis.zrangebyscore(self._last_seen, "-inf", silent_since, 0, limit)
        ]
        if not task_ids:
            return 0
        found = dict(zip(task_ids, self._redis.hmget(self._events, task_ids), strict=True))
        overdue = {task_id: raw for task_id, raw in found.items() if raw is not None}
        with self._redis.pipeline() as pipe:
            if finished := [task_id for task_id in found if task_id not in overdue]:
                pipe.zrem(self._last_seen, *finished)  # done meanwhile
            if overdue:
                pipe.zadd(self._last_seen, dict.fromkeys(overdue, self._clock()), xx=True)
            pipe.execute()
        for task_id, raw_events in overdue.items():
            send(task_id, json.loads(raw_events))
        return len(overdue)

    def count(self) -> int:
        return int(self._redis.zcard(self._last_seen))

    def _best_effort(self, what: str, operation: Callable[[], object]) -> None:
        try:
            operation()
        except RedisError as error:
            log.warning("could not %s a projection task's in-flight entry (%r)", what, error)
