"""Petri Board Arena: the application factory, the composition root of every process."""

from __future__ import annotations

import logging

from flask import Flask
from redis import Redis

from arena.config import Settings
from arena.extensions import db, migrate
from arena.readmodel.store import ArenaViews


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app (and, bound to it, the Celery app) from `settings` or the environment."""
    from arena.cli import register_commands
    from arena.http import init_http
    from tasks.celery_app import celery_init_app

    settings = settings or Settings.from_env()
    _configure_logging(settings.log_level)
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        # No pre-ping: a round trip per checkout, on every command. A connection the server
        # dropped is discarded when it fails (see arena/persistence/connections.py). The pool
        # keeps as many connections as a process has threads using them (gunicorn: 8): with
        # fewer, every burst opened connections past the pool and closed them again, each one a
        # new PostgreSQL backend.
        SQLALCHEMY_ENGINE_OPTIONS={
            "connect_args": {"connect_timeout": 3},
            "pool_size": settings.database_pool_size,
        },
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    app.extensions["settings"] = settings
    db.init_app(app)
    migrate.init_app(app, db)

    redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    app.extensions["redis"] = redis
    app.extensions["arena_views"] = ArenaViews(
        redis, settings.read_model_prefix, max_waiters=settings.read_max_waiters
    )

    init_http(app)
    celery_init_app(app)
    register_commands(app)
    return app


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines drown ours
