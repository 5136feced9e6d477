"""An older tree's Celery broker. Trees from before RabbitMQ (71078f3 and older), which the
pipeline bench may measure as its baseline (`--baseline-broker-url`), need a Redis broker: its name
in the bench's messages and waits, its address, its CPU row and the clean-up of a run's queues
differ from RabbitMQ's."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection
from urllib.parse import urlsplit

from redis import Redis

from harness.resources import RABBITMQ, QueueRemover, Run

REDIS_BROKER = "Redis broker"
REDIS_SCHEMES = {"redis", "rediss"}
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")  # escaped in a SCAN pattern


def is_redis_broker(broker_url: str) -> bool:
    """Whether the broker is an older tree's Redis rather than RabbitMQ: its name, its CPU row
    and its clean-up differ."""
    return urlsplit(broker_url).scheme in REDIS_SCHEMES


def broker_name(broker_url: str) -> str:
    """What the bench calls the broker in its messages (and `wait_for`)."""
    return REDIS_BROKER if is_redis_broker(broker_url) else RABBITMQ


def broker_address(broker_url: str) -> tuple[str, int]:
    """(host, port) of the broker, with its protocol's default port."""
    url = urlsplit(broker_url)
    return url.hostname or "127.0.0.1", url.port or (6379 if is_redis_broker(broker_url) else 5672)


def queue_remover(run: Run) -> QueueRemover | None:
    """How `drop_resources` takes the run's queues off its broker: None (deleted, as from
    RabbitMQ) unless the broker is an older tree's Redis."""
    url = run.settings.celery_broker_url
    if not is_redis_broker(url):
        return None
    return lambda names: forget_redis_broker_queues(url, {*names, run.worker_prefix})


def forget_redis_broker_queues(broker_url: str, names: Collection[str]) -> None:
    """Clear a run's queues off an older tree's Redis broker (`--baseline-broker-url`), as that
    tree's tests/support/services.py did (`forget_celery_queues`, gone with the Redis broker).

    Removes what kombu's Redis transport keeps for queues and worker nodes whose names contain one
    of `names` (a run's queues, its workers' hostname prefix): every such key (queues, their
    priority lists and in-flight ledgers, their exchanges' bindings, the workers' pidbox queues),
    such members of the binding sets all workers share, and the unacked tasks routed to them.
    Those would otherwise be restored by another engineer's worker into a queue nobody reads."""
    broker = Redis.from_url(broker_url, socket_timeout=5)
    try:
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
                routing_key = str(json.loads(raw)[2])  # kombu keeps [message, exchange, key]
                if any(name in routing_key for name in names):
                    unacked.append(tag)
        if unacked:
            broker.hdel("unacked", *unacked)
            broker.zrem("unacked_index", *unacked)
    finally:
        broker.close()
