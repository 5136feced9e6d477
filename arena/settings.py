"""The one place that reads the environment.

Every process (API, Celery worker/beat, the Kafka consumer, tests) builds a `Settings` from the
environment; defaults point at the local services that `make services` starts on loopback.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from limits import parse_many

from arena.local_secrets import local_credentials

# field name → (environment variable, local default)
_VARIABLES: dict[str, tuple[str, str]] = {
    "database_url": ("DATABASE_URL", "postgresql+psycopg://arena:arena@127.0.0.1:5432/arena"),
    "database_pool_size": ("DATABASE_POOL_SIZE", "10"),
    "redis_url": ("REDIS_URL", ""),
    "read_model_prefix": ("READ_MODEL_PREFIX", "arena"),
    "celery_broker_url": ("CELERY_BROKER_URL", ""),
    "celery_queue": ("CELERY_QUEUE", "arena"),
    "kafka_bootstrap_servers": ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    "kafka_events_topic": ("KAFKA_EVENTS_TOPIC", "arena.events"),
    "kafka_dlq_topic": ("KAFKA_DLQ_TOPIC", "arena.events.dlq"),
    "kafka_events_partitions": ("KAFKA_EVENTS_PARTITIONS", "6"),
    "kafka_replication_factor": ("KAFKA_REPLICATION_FACTOR", "1"),
    "kafka_consumer_group": ("KAFKA_CONSUMER_GROUP", "arena-projections"),
    "kafka_session_timeout_seconds": ("KAFKA_SESSION_TIMEOUT_SECONDS", "10"),
    "outbox_relay_interval_seconds": ("OUTBOX_RELAY_INTERVAL_SECONDS", "1.0"),
    "outbox_relay_drain_seconds": ("OUTBOX_RELAY_DRAIN_SECONDS", "10"),
    "outbox_relay_drainers": ("OUTBOX_RELAY_DRAINERS", "1"),
    "outbox_relay_claims_per_second": ("OUTBOX_RELAY_CLAIMS_PER_SECOND", "100"),
    "outbox_batch_size": ("OUTBOX_BATCH_SIZE", "2000"),
    "outbox_nudge": ("OUTBOX_NUDGE", "true"),
    "outbox_max_attempts": ("OUTBOX_MAX_ATTEMPTS", "12"),
    "outbox_backoff_base_seconds": ("OUTBOX_BACKOFF_BASE_SECONDS", "0.5"),
    "outbox_backoff_max_seconds": ("OUTBOX_BACKOFF_MAX_SECONDS", "60"),
    "outbox_retention_seconds": ("OUTBOX_RETENTION_SECONDS", "3600"),
    "idempotency_retention_seconds": ("IDEMPOTENCY_RETENTION_SECONDS", "86400"),
    "idempotency_secret": ("IDEMPOTENCY_SECRET", ""),
    "max_body_bytes": ("MAX_BODY_BYTES", "65536"),
    "rate_limit_create": ("RATE_LIMIT_CREATE", "30/minute"),
    "rate_limit_join": ("RATE_LIMIT_JOIN", "60/minute"),
    "rate_limit_failed_auth": ("RATE_LIMIT_FAILED_AUTH", "20/minute"),
    "rate_limit_storage_url": ("RATE_LIMIT_STORAGE_URL", ""),
    "read_wait_seconds": ("READ_WAIT_SECONDS", "5"),
    "read_max_waiters": ("READ_MAX_WAITERS", "4"),
    "read_model_history_ticks": ("READ_MODEL_HISTORY_TICKS", "1000"),
    "read_model_history_bytes": ("READ_MODEL_HISTORY_BYTES", "16777216"),
    "flower_url": ("FLOWER_URL", "http://127.0.0.1:5555/"),
    "flower_basic_auth": ("FLOWER_BASIC_AUTH", ""),
    "pipeline_cache_seconds": ("PIPELINE_CACHE_SECONDS", "1.0"),
    "pipeline_deadline_seconds": ("PIPELINE_DEADLINE_SECONDS", "1.0"),
    "pipeline_max_calls": ("PIPELINE_MAX_CALLS", "2"),
    "prometheus_multiproc_dir": ("PROMETHEUS_MULTIPROC_DIR", ""),
    "stream_max_open": ("STREAM_MAX_OPEN", "8"),
    "stream_keepalive_seconds": ("STREAM_KEEPALIVE_SECONDS", "15"),
    "stream_max_per_client": ("STREAM_MAX_PER_CLIENT", "8"),
    "stream_max_seconds": ("STREAM_MAX_SECONDS", "600"),
    "stream_send_timeout_seconds": ("STREAM_SEND_TIMEOUT_SECONDS", "30"),
    "history_max_range_ticks": ("HISTORY_MAX_RANGE_TICKS", "200"),
    "projection_tasks_per_second": ("PROJECTION_TASKS_PER_SECOND", "100"),
    "projection_task_max_bytes": ("PROJECTION_TASK_MAX_BYTES", "16777216"),
    "broker_max_message_bytes": ("BROKER_MAX_MESSAGE_BYTES", "134217728"),
    "tick_schedule_seconds": ("TICK_SCHEDULE_SECONDS", "0.25"),
    "tick_max_catch_up": ("TICK_MAX_CATCH_UP", "5"),
    "tick_lease_seconds": ("TICK_LEASE_SECONDS", "30"),
    "tick_batch_cells": ("TICK_BATCH_CELLS", "65536"),
    "log_level": ("LOG_LEVEL", "INFO"),
    "log_format": ("LOG_FORMAT", "text"),
}


# Left empty, these are the services `make services` runs, with the passwords it made into
# var/credentials (arena/local_secrets.py).
_LOCAL_SERVICES: dict[str, str] = {
    "redis_url": "redis://:{READMODEL_REDIS_PASSWORD}@127.0.0.1:6380/0",
    "celery_broker_url": "amqp://arena:{RABBITMQ_PASSWORD}@127.0.0.1:5672//",
    "flower_basic_auth": "arena:{FLOWER_PASSWORD}",
}


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        raise ValueError(f"not a boolean: {text!r}")
    return value in {"1", "true", "yes", "on"}


# One or more limits per client address, as the `limits` library writes them: "30/minute",
# "5/second;100/hour". Empty: no limit.
RateLimit = str


def _rate_limit(text: str) -> RateLimit:
    """Parsed here so that a typo stops the process at start: Flask-Limiter would only log it on
    the first request and then not limit at all."""
    if text.strip():
        parse_many(text)  # ValueError when it does not parse
    return text


_PARSERS: dict[str, Callable[[str], object]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _flag,
    "RateLimit": _rate_limit,
}


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    database_pool_size: int
    redis_url: str
    read_model_prefix: str
    celery_broker_url: str
    celery_queue: str
    kafka_bootstrap_servers: str
    kafka_events_topic: str
    kafka_dlq_topic: str
    kafka_events_partitions: int
    # Copies of each partition of the events and DLQ topics (one per node of a cluster); a write
    # is acknowledged once a majority holds it (min.insync.replicas: 2 of 3).
    kafka_replication_factor: int
    kafka_consumer_group: str
    kafka_session_timeout_seconds: float
    outbox_relay_interval_seconds: float
    outbox_relay_drain_seconds: float
    outbox_relay_drainers: int
    outbox_relay_claims_per_second: float
    outbox_batch_size: int
    outbox_nudge: bool
    outbox_max_attempts: int
    outbox_backoff_base_seconds: float
    outbox_backoff_max_seconds: float
    outbox_retention_seconds: int
    idempotency_retention_seconds: int
    idempotency_secret: str  # base64url, 32 bytes or more; empty: var/idempotency.secret (local)
    max_body_bytes: int
    rate_limit_create: RateLimit  # per client address: creating arenas
    rate_limit_join: RateLimit  # joining arenas
    rate_limit_failed_auth: RateLimit  # 401s; past it they are 429s (a valid token still passes)
    rate_limit_storage_url: str  # where the counters live; empty: the read model's REDIS_URL
    read_wait_seconds: float
    read_max_waiters: int
    read_model_history_ticks: int
    read_model_history_bytes: int  # an arena's deltas and snapshots, whatever its board's size
    flower_url: str
    flower_basic_auth: str  # user:password Flower asks for (arena/flowerconfig.py)
    pipeline_cache_seconds: float  # the pipeline's state is computed at most this often
    pipeline_deadline_seconds: float  # Kafka's and RabbitMQ's part: answered within, or absent
    pipeline_max_calls: int  # /api/v1/pipeline and /metrics at once per process; past it 503
    prometheus_multiproc_dir: str  # empty: each process counts alone (arena/telemetry.py)
    stream_max_open: int
    stream_keepalive_seconds: float
    stream_max_per_client: int  # open at once per client address, across every API process
    stream_max_seconds: float  # then (less up to a fifth, at random) the stream ends; it reconnects
    stream_send_timeout_seconds: float  # a write left unread this long ends its stream
    history_max_range_ticks: int
    projection_tasks_per_second: float
    projection_task_max_bytes: int  # a task's records as JSON; a larger record goes alone
    broker_max_message_bytes: int  # RabbitMQ's max_message_size: a task above it is refused
    tick_schedule_seconds: float
    tick_max_catch_up: int
    tick_lease_seconds: float
    tick_batch_cells: int
    log_level: str
    log_format: str  # text (for people) or json (one object per line, for machines)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}  # each parsed by its field's own type
        for field in dataclasses.fields(cls):
            variable, default = _VARIABLES[field.name]
            text = env.get(variable, default)
            if not text and field.name in _LOCAL_SERVICES:
                text = _LOCAL_SERVICES[field.name].format_map(local_credentials())
            values[field.name] = _PARSERS[str(field.type)](text)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in another process."""
        return {
            variable: _render(getattr(self, name)) for name, (variable, _) in _VARIABLES.items()
        }


def _render(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
