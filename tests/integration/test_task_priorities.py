"""On the real Redis broker, a worker serving the shared queue takes projections before ticks."""

from __future__ import annotations

from flask import Flask
from kombu import Consumer, Message

from arena.bootstrap import components
from arena.messaging.celery import ADVANCE_ARENAS_TASK, PROJECT_TASK
from arena.settings import Settings


def test_a_projection_sent_after_ticks_is_taken_before_them(app: Flask, settings: Settings) -> None:
    celery = components(app).celery
    for _ in range(3):
        celery.send_task(ADVANCE_ARENAS_TASK, args=[[]])
    celery.send_task(PROJECT_TASK, args=[[]])

    taken: list[str] = []

    def take(_body: object, message: Message) -> None:
        taken.append(message.headers["task"])
        message.ack()

    queue = celery.amqp.queues[settings.celery_queue]
    # One at a time, as a worker with prefetch 1 per process asks the broker (BRPOP).
    with (
        celery.connection_for_read() as connection,
        Consumer(connection, queues=[queue], callbacks=[take], prefetch_count=1),
    ):
        while len(taken) < 4:
            connection.drain_events(timeout=5)

    assert taken == [PROJECT_TASK, ADVANCE_ARENAS_TASK, ADVANCE_ARENAS_TASK, ADVANCE_ARENAS_TASK]
