"""The composition root: every long-lived collaborator of every process is built here, once.

The API, `flask consume`, the other CLI commands and the Celery workers all start from
`create_app`, which calls `bootstrap`; code then reaches the collaborators through
`components()`, never by building its own. (The Kafka producers' holder is built here too;
each producer in it is made on first use, after a worker has forked.)
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from celery import Celery
from celery.signals import worker_process_shutdown
from flask import Flask, current_app
from redis import Redis

from arena.extensions import db
from arena.local_secrets import write_once
from arena.messaging.celery_setup import celery_init_app
from arena.messaging.finished_tasks import FinishedTasks
from arena.messaging.publishers import Publishers
from arena.persistence.idempotency_keys import ReplySealer
from arena.persistence.sql_unit_of_work import SqlUnitsOfWork
from arena.readmodel.keys import applied_channel
from arena.readmodel.live import AppliedNotices, StreamSlots
from arena.readmodel.store import ArenaViews
from arena.services.bus import CommandBus
from arena.settings import Settings

EXTENSION = "arena"
REDIS_TIMEOUT_SECONDS = 2
SECRET_BYTES = 32
LOCAL_SECRET = Path("var") / "idempotency.secret"


@dataclass(frozen=True, slots=True)
class Components:
    settings: Settings
    read_model: Redis  # the read model's Redis (queries, projections)
    views: ArenaViews  # the read model: arena views, feeds, indexes, stalls
    notices: AppliedNotices  # wake this process's live streams when a view is written
    stream_slots: StreamSlots  # how many live streams this process may hold at once
    finished_tasks: FinishedTasks  # projection tasks done, for the consumer's lanes
    publishers: Publishers  # this process's Kafka producers (events, DLQ)
    celery: Celery
    bus: CommandBus  # runs commands: one transaction each, outbox rows and the relay's nudge


def bootstrap(app: Flask, settings: Settings) -> Components:
    """Build the collaborators for `app` (its database is already bound) and keep them on it."""
    read_model = _redis(settings.redis_url)
    views = ArenaViews(
        read_model,
        settings.read_model_prefix,
        max_waiters=settings.read_max_waiters,
        history_ticks=settings.read_model_history_ticks,
        history_bytes=settings.read_model_history_bytes,
    )
    parts = Components(
        settings=settings,
        read_model=read_model,
        views=views,
        notices=AppliedNotices(read_model, applied_channel(settings.read_model_prefix)),
        stream_slots=StreamSlots(settings.stream_max_open),
        finished_tasks=FinishedTasks(read_model, settings.read_model_prefix),
        publishers=Publishers(settings),
        celery=celery_init_app(app, settings),
        bus=CommandBus(
            SqlUnitsOfWork(
                lambda: db.engine,
                idempotency_retention=timedelta(seconds=settings.idempotency_retention_seconds),
                sealer=ReplySealer(idempotency_secret(settings)),
                nudge_relay=settings.outbox_nudge,
            )
        ),
    )
    app.extensions[EXTENSION] = parts

    def close_publishers(**_: object) -> None:  # a worker's pool process ends: flush, then go
        parts.publishers.close()

    worker_process_shutdown.connect(close_publishers, weak=False)
    return parts


def components(app: Flask | None = None) -> Components:
    """The collaborators of `app`, or of the app whose context is active."""
    found = (app or current_app).extensions[EXTENSION]
    assert isinstance(found, Components)
    return found


def _redis(url: str) -> Redis:
    return Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )


def idempotency_secret(settings: Settings) -> bytes:
    """IDEMPOTENCY_SECRET (set it wherever more than one machine serves the API), or, for local
    runs, one made once into var/ and shared by every process of this checkout. A process
    refuses to start with one shorter than SECRET_BYTES."""
    if settings.idempotency_secret:
        secret = base64.urlsafe_b64decode(settings.idempotency_secret + "==")
        where, remedy = "IDEMPOTENCY_SECRET", "set a longer one"
    else:
        secret = write_once(LOCAL_SECRET, secrets.token_bytes(SECRET_BYTES))
        where, remedy = str(LOCAL_SECRET), "delete it, and one is made at the next start"
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{where} holds {len(secret)} bytes, fewer than {SECRET_BYTES}: {remedy}")
    return secret
