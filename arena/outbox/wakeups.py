"""Waking the relay as soon as a command commits: PostgreSQL LISTEN/NOTIFY.

A command's transaction runs `pg_notify(OUTBOX_CHANNEL, '')` with its outbox rows; PostgreSQL
delivers the notice only if, and when, the transaction commits, and folds repeats into one. A
draining relay listens on its own autocommit connection, so it sleeps without a transaction open
and wakes within a millisecond of a commit. A lost notice costs latency, never an event: the
relay also looks every `IDLE_LOOK_SECONDS`, and beat starts a relay run every second anyway.
"""

from __future__ import annotations

import psycopg
from sqlalchemy.engine import make_url

OUTBOX_CHANNEL = "outbox_pending"
DRAIN_LOCK_BASE = 0x6F7574626F78  # advisory lock keys DRAIN_LOCK_BASE + slot ("outbox")
IDLE_LOOK_SECONDS = 1.0


class OutboxListener:
    """Use as a context manager; `wait` returns True when a commit was notified meanwhile."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._connection = psycopg.connect(
            url.render_as_string(hide_password=False), autocommit=True, connect_timeout=3
        )
        self._connection.execute(f"LISTEN {OUTBOX_CHANNEL}")

    def __enter__(self) -> OutboxListener:
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()

    def take_drain_slot(self, slots: int) -> bool:
        """One of `slots` session advisory locks, held until this listener closes (or its
        process dies: PostgreSQL frees a dead session's locks). Only that many relay runs drain
        at once; the others run one pass and return, so queued relay runs never occupy every
        worker process."""
        for slot in range(slots):
            row = self._connection.execute(
                "SELECT pg_try_advisory_lock(%s)", (DRAIN_LOCK_BASE + slot,)
            ).fetchone()
            if row is not None and row[0]:
                return True
        return False

    def wait(self, timeout_seconds: float) -> bool:
        """Sleep until a notice or the timeout; swallow notices already queued (one claim
        covers every commit before it)."""
        woken = any(True for _ in self._connection.notifies(timeout=timeout_seconds, stop_after=1))
        if woken:
            for _ in self._connection.notifies(timeout=0):
                pass
        return woken
