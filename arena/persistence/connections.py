"""Connections for the hot paths: the engine's pooled psycopg connection, used without SQLAlchemy.

Commands run a handful of fixed statements; through SQLAlchemy each one cost more CPU to build
than PostgreSQL spent running it. The command path therefore borrows the driver connection from
the one pool Flask-SQLAlchemy configures (same URL, same size) and runs SQL text that psycopg
prepares server-side after a few uses. A connection the server dropped is discarded, not
returned, so a PostgreSQL restart costs the requests in flight, never the pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import Engine


@contextmanager
def pooled_connection(engine: Engine) -> Iterator[psycopg.Connection]:
    """A pooled psycopg connection, idle (no transaction open) when it goes back."""
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    assert isinstance(connection, psycopg.Connection)
    try:
        yield connection
    except psycopg.OperationalError:
        if connection.broken or connection.closed:
            pooled.invalidate()
        raise
    finally:
        pooled.close()  # back to the pool, which rolls back anything left open
