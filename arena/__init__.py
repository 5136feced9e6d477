"""Petri Board Arena: the application factory every process starts from (see `bootstrap`)."""

from __future__ import annotations

from flask import Flask

from arena import telemetry
from arena.extensions import db, migrate
from arena.logs import configure_logging
from arena.process_memory import reuse_large_blocks
from arena.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the Flask app and its components (`arena.bootstrap`) from `settings` or the
    environment."""
    from arena.bootstrap import bootstrap
    from arena.cli import register_commands
    from arena.http import init_http

    # Every table on db.metadata, whatever else imports them: `flask db migrate` compares it.
    from arena.persistence import tables  # noqa: F401

    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    telemetry.configure(settings)
    reuse_large_blocks()
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
    db.init_app(app)
    migrate.init_app(app, db)
    bootstrap(app, settings)
    init_http(app)
    register_commands(app)
    return app
