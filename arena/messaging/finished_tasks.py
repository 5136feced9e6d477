"""Which projection tasks have finished, so `flask consume` can send a partition's next batch.

Why: the consumer keeps one projection task in flight per Kafka partition (an arena's events
never race), and the broker cannot say when a task is done without a result backend, which would
store every task's result to answer one yes/no. So a task marks itself finished, once it has
applied, ignored, parked or dead-lettered every event it carried, in the read model's Redis
(where it has just written anyway). The consumer reads the marks of its running batches every
time round its loop, and a mark it reads is gone with that read. A mark nobody reads (its
consumer restarted and forgot the batch, which the new one gets again from Kafka) expires after
MARK_SECONDS; that is long, so that no outage that keeps the consumer from reading (RabbitMQ
away for hours while it retries a send) can expire a mark first and leave its lane waiting.

Nothing here guards against lost tasks: the broker (RabbitMQ, durable queues, persistent
messages, late acks, publisher confirms) does not lose them.
"""

from __future__ import annotations

from redis import Redis
from redis.exceptions import RedisError

MARK_SECONDS = 7 * 24 * 3600


class FinishedTasks:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:projection-finished:"

    def mark(self, task_id: str) -> None:
        """Raises if the read model is away: the task must retry, or its lane would wait forever."""
        self._redis.set(self._prefix + task_id, 1, ex=MARK_SECONDS)

    def unfinished(self, task_ids: set[str]) -> set[str]:
        """Which of these tasks have not finished; if the read model is away, all of them. The
        marks found are taken (deleted): the caller forgets those tasks."""
        ordered = list(task_ids)
        taking = self._redis.pipeline(transaction=False)
        for task_id in ordered:
            taking.getdel(self._prefix + task_id)
        try:
            marks = taking.execute()
        except RedisError:
            return task_ids
        return {task_id for task_id, mark in zip(ordered, marks, strict=True) if mark is None}
