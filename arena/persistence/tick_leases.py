"""The tick scheduler's leases: which running arenas are due a tick, each claimed by one task.

A claim sets `tick_lease_until`; the task that makes the arena's ticks clears it when done. A
task that dies (or a message the broker loses) only delays the arena until the lease runs out,
and then the next scheduling pass claims it again: never two tick tasks for one arena at once,
never an arena left behind. Ticks are safe to run twice anyway (the version check).
"""

from __future__ import annotations

from typing import Any

import psycopg

_CLAIM_DUE = """
UPDATE arenas SET tick_lease_until = now() + make_interval(secs => %(lease_seconds)s)
 WHERE id IN (SELECT id FROM arenas
               WHERE status = 'RUNNING' AND next_tick_at <= now()
                 AND (tick_lease_until IS NULL OR tick_lease_until < now())
               ORDER BY next_tick_at
               LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id::text
"""
_RELEASE = "UPDATE arenas SET tick_lease_until = NULL WHERE id = %s"


def claim_due(
    connection: psycopg.Connection[Any], *, limit: int, lease_seconds: float
) -> list[str]:
    rows = connection.execute(_CLAIM_DUE, {"limit": limit, "lease_seconds": lease_seconds})
    claimed = [arena_id for (arena_id,) in rows.fetchall()]
    connection.commit()
    return claimed


def release(connection: psycopg.Connection[Any], arena_id: str) -> None:
    connection.execute(_RELEASE, (arena_id,))
    connection.commit()
