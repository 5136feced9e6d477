"""On RabbitMQ, a worker serving the shared queue takes projections before ticks."""

from __future__ import annotations

import uuid

from flask import Flask
from kombu import Consumer, Message, Queue

from arena.bootstrap import components
from arena.messaging.celery_setup import MAKE_DUE_TICKS_TASK, PROJECT_TASK
from arena.settings import Settings
from harness.services import delete_celery_queues


def test_a_projection_sent_after_ticks_is_taken_before_them(app: Flask, settings: Settings) -> None:
    celery = components(app).celery
    # A queue of this test's own (Celery declares it with priorities, as every queue), so no
    # other test's task is in it.
    name = f"{settings.celery_queue}.priorities-{uuid.uuid4().hex[:6]}"
    for _ in range(3):
        celery.send_task(MAKE_DUE_TICKS_TASK, args=[[]], queue=name)
    celery.send_task(PROJECT_TASK, args=[[]], queue=name)

    taken: list[str] = []

    def take(_body: object, message: Message) -> None:
        taken.append(message.headers["task"])
        message.ack()

    # One at a time, as a worker with prefetch 1 per process asks the broker.
    try:
        with (
            celery.connection_for_read() as connection,
            Consumer(
                connection,
                queues=[Queue(name, no_declare=True)],
                callbacks=[take],
                prefetch_count=1,
            ),
        ):
            while len(taken) < 4:
                connection.drain_events(timeout=30)
    finally:
        delete_celery_queues(settings.celery_broker_url, [name])

    assert taken == [PROJECT_TASK, MAKE_DUE_TICKS_TASK, MAKE_DUE_TICKS_TASK, MAKE_DUE_TICKS_TASK]
