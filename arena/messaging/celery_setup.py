"""Celery for every process: its configuration, the task names, and `celery_init_app`.

The names are the contract between the senders in `arena` (beat's schedule, `flask consume`)
and the task bodies in `tasks/`: `arena` sends by name and never imports `tasks`. Workers import
the task modules themselves (`include`), as `celery -A tasks worker` starts.
"""

from __future__ import annotations

import logging

from celery import Celery, Task
from celery.signals import setup_logging
from flask import Flask
from kombu.entity import Queue

from arena.logs import configure_logging
from arena.settings import Settings

TASK_MODULES = ["tasks.outbox", "tasks.projections", "tasks.idempotency_purge", "tasks.ticks"]
# The names tasks are registered and sent by. Kept when a task's module or function is renamed
# (tasks.relay became tasks/outbox.py, tasks.idempotency tasks/idempotency_purge.py, advance_arenas
# make_due_ticks): queued messages, beat and Flower know the tasks by them.
RELAY_TASK = "tasks.relay.publish_outbox"
PROJECT_TASK = "tasks.projections.project_events"
PRUNE_OUTBOX_TASK = "tasks.relay.prune_outbox"
PRUNE_OUTBOX_EVERY_SECONDS = 60.0
PURGE_IDEMPOTENCY_TASK = "tasks.idempotency.purge_expired_keys"
PURGE_IDEMPOTENCY_EVERY_SECONDS = 3600.0
SCHEDULE_TICKS_TASK = "tasks.ticks.schedule_ticks"
MAKE_DUE_TICKS_TASK = "tasks.ticks.advance_arenas"
# AMQP priorities: a queue declared with x-max-priority delivers higher numbers first; a
# message without one counts as 0.
MAX_PRIORITY = 9
PROJECTION_PRIORITY = 5
TICK_PRIORITY = 0

log = logging.getLogger(__name__)

# Celery logs every task received/succeeded and beat every send: with the relay on a one-second
# beat that drowns the lines that matter. Our tasks log what they did; Flower shows every task.
_CHATTY_LOGGERS = ("celery.app.trace", "celery.worker.strategy", "celery.beat")


def relay_queue(settings: Settings) -> str:
    return f"{settings.celery_queue}.relay"


def celery_config(settings: Settings) -> dict[str, object]:
    interval = settings.outbox_relay_interval_seconds
    return {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        # A send returns once RabbitMQ has the message (written to disk: persistent messages on
        # durable queues), or raises: `flask consume` commits its Kafka offsets only after that.
        "broker_transport_options": {"confirm_publish": True},
        # Projections and the relay on queues of their own, so neither waits behind the other;
        # a worker started without -Q serves both (`make run` gives each its own worker).
        # Durable queues (kombu's default) keep their messages over a broker restart.
        "task_default_queue": settings.celery_queue,
        "task_queues": [Queue(settings.celery_queue), Queue(relay_queue(settings))],
        # Every queue Celery declares takes priorities (x-max-priority), for the routes below.
        "task_queue_max_priority": MAX_PRIORITY,
        "task_routes": {
            RELAY_TASK: {"queue": relay_queue(settings)},
            # A worker that serves both takes each projection before the ticks queued ahead of
            # it: under load the ticks fall behind (and skip ahead, recorded), not the read
            # model, and a projection never waits behind a backlog of ticks that make more.
            PROJECT_TASK: {"queue": settings.celery_queue, "priority": PROJECTION_PRIORITY},
            MAKE_DUE_TICKS_TASK: {"queue": settings.celery_queue, "priority": TICK_PRIORITY},
        },
        "task_ignore_result": True,
        # Acked after the task ran: a worker that dies mid-task (SIGKILL, OOM) closes its
        # connection, and RabbitMQ hands what it held to another worker at once (a machine that
        # vanishes is noticed by the heartbeat, within a minute or two). Our tasks are
        # idempotent, so running one again is harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # Lost connection to the broker: it redelivers the unacked tasks, so stop running them
        # here rather than run each twice at once.
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # One message per pool process at a time: a priority only orders what is still queued.
        "worker_prefetch_multiplier": 1,
        # Flower shows tasks from these events.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "beat_schedule": {
            "publish-outbox": {
                "task": RELAY_TASK,
                "schedule": interval,
                # A run drains for OUTBOX_RELAY_DRAIN_SECONDS; the runs beat queued meanwhile
                # expire unless the relay worker is free to start one within a few seconds.
                "options": {"expires": max(5 * interval, 5.0)},
            },
            "prune-published-outbox-rows": {
                "task": PRUNE_OUTBOX_TASK,
                "schedule": PRUNE_OUTBOX_EVERY_SECONDS,
            },
            "purge-expired-idempotency-keys": {
                "task": PURGE_IDEMPOTENCY_TASK,
                "schedule": PURGE_IDEMPOTENCY_EVERY_SECONDS,
            },
            # Finds running arenas whose next tick is due and sends make_due_ticks for them.
            "schedule-ticks": {
                "task": SCHEDULE_TICKS_TASK,
                "schedule": settings.tick_schedule_seconds,
                "options": {"expires": max(2 * settings.tick_schedule_seconds, 1.0)},
            },
        },
    }


class FlaskTask(Task):
    """Runs each task inside the application context of the Flask app that built Celery."""

    def __call__(self, *args: object, **kwargs: object) -> object:
        with self.app.flask_app.app_context():
            return self.run(*args, **kwargs)


def celery_init_app(flask_app: Flask, settings: Settings) -> Celery:
    """Flask's pattern: build only Celery, bound to the app so tasks run in its context."""
    celery_app = Celery(
        flask_app.name,
        task_cls=FlaskTask,
        include=TASK_MODULES,
    )
    celery_app.conf.update(celery_config(settings))
    celery_app.flask_app = flask_app
    celery_app.set_default()

    def our_logging(loglevel: int, **_: object) -> None:
        """A worker or beat logs as every other process (LOG_FORMAT), at its --loglevel."""
        configure_logging(loglevel, settings.log_format)
        if loglevel > logging.DEBUG:
            for name in _CHATTY_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)

    setup_logging.connect(our_logging, weak=False)
    return celery_app
