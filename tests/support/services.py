"""Helpers for the local services, shared by the tests and the benchmarks (bench/ imports them from
here, as it does tests/support/processes.py; production code must not): a run's own settings, the
libpq form of the database URL, and clearing a run's Celery queues off a shared broker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Collection
from typing import Any

from redis import Redis
from sqlalchemy.engine import make_url

from arena.settings import Settings

_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")  # escaped in a SCAN pattern


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


def forget_celery_queues(broker: Redis, names: Collection[str]) -> None:
    """Remove what kombu's Redis transport keeps for queues and worker nodes whose names contain
    one of `names` (a run's queues, its workers' hostname prefix): every such key (queues, their
    priority lists and ledgers, their exchanges' bindings, the workers' pidbox queues), such
    members of the binding sets all workers share, and the unacked tasks routed to them. Those
    would otherwise be restored by another engineer's worker into a queue nobody reads."""
    if not names:
        return
    patterns = ["*" + _GLOB_SPECIALS.sub(r"\\\1", name) + "*" for name in names]
    keys = {key for pattern in patterns for key in broker.scan_iter(match=pattern, count=1000)}
    if keys:
        broker.delete(*keys)
    encoded = [name.encode() for name in names]
    for binding in broker.scan_iter(match="_kombu.binding.*", count=1000):
        if broker.type(binding) == b"set":
            ours = [m for m in broker.smembers(binding) if any(n in m for n in encoded)]
            if ours:
                broker.srem(binding, *ours)
    unacked = []
    for tag, raw in broker.hscan_iter("unacked", count=1000):
        with contextlib.suppress(ValueError, IndexError, TypeError):
            routing_key = str(json.loads(raw)[2])  # kombu stores [message, exchange, routing key]
            if any(name in routing_key for name in names):
                unacked.append(tag)
    if unacked:
        broker.hdel("unacked", *unacked)
        broker.zrem("unacked_index", *unacked)
