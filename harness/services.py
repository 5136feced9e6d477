"""Helpers for the local services, shared by the tests and the benchmarks: a run's own settings,
the libpq form of the database URL, a connection to the broker, and deleting a run's Celery
queues from the shared broker.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any

from kombu.connection import Connection
from sqlalchemy.engine import make_url

from arena.settings import Settings


def isolated_settings(base: Settings, kind: str, run_id: str, **overrides: Any) -> Settings:
    """`base` with every shared resource (database, read-model prefix, Celery queue, topics,
    consumer group) renamed after a run, so runs on the same services never see each other."""
    database = make_url(base.database_url).set(database=f"arena_{kind}_{run_id}")
    return dataclasses.replace(
        base,
        database_url=database.render_as_string(hide_password=False),
        read_model_prefix=f"{kind}-{run_id}",
        celery_queue=f"arena-{kind}-{run_id}",
        kafka_events_topic=f"arena.events.{kind}-{run_id}",
        kafka_dlq_topic=f"arena.events.dlq.{kind}-{run_id}",
        kafka_consumer_group=f"arena-projections-{kind}-{run_id}",
        **overrides,
    )


def libpq_dsn(settings: Settings) -> str:
    """DATABASE_URL as psycopg takes it: SQLAlchemy's `postgresql+psycopg://` without the driver."""
    url = make_url(settings.database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def broker_connection(broker_url: str, timeout_seconds: float) -> Connection:
    """A kombu connection to the broker at `broker_url`, giving up connecting after
    `timeout_seconds`; it connects on first use."""
    return Connection(broker_url, connect_timeout=timeout_seconds)  # type: ignore[no-untyped-call]


def delete_celery_queues(broker_url: str, names: Collection[str]) -> None:
    """Delete a run's queues from RabbitMQ with whatever they still hold, so no other engineer's
    worker ever sees them, and the direct exchanges Celery declared after them. (Worker and event
    queues are auto-delete: they go with their workers.)"""
    with broker_connection(broker_url, 5) as connection:
        channel = connection.default_channel
        for name in names:
            channel.queue_delete(name)
            channel.exchange_delete(name)
