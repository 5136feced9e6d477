"""The tick scheduler's leases: which running arenas are due a tick, each claimed by one task.

A claim sets `tick_lease_until`; the task that makes the arena's ticks clears it when done. A
task that dies (or a message the broker loses) only delays the arena until the lease runs out,
and then the next scheduling pass claims it again: never two tick tasks for one arena at once,
never an arena left behind. Ticks are safe to run twice anyway (the version check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
RETURNING id::text, (config->>'width')::int * (config->>'height')::int
"""
_RELEASE = "UPDATE arenas SET tick_lease_until = NULL WHERE id = ANY(%s::uuid[])"


@dataclass(frozen=True, slots=True)
class Claim:
    """A due arena claimed for one tick task, and the cells of its board (what a tick costs)."""

    arena_id: str
    cells: int


def claim_due(
    connection: psycopg.Connection[Any], *, limit: int, lease_seconds: float
) -> list[Claim]:
    rows = connection.execute(_CLAIM_DUE, {"limit": limit, "lease_seconds": lease_seconds})
    claimed = [Claim(arena_id, cells) for arena_id, cells in rows.fetchall()]
    connection.commit()
    return claimed


def release(connection: psycopg.Connection[Any], arena_ids: Sequence[str]) -> None:
    connection.execute(_RELEASE, (list(arena_ids),))
    connection.commit()


def batches(claims: Sequence[Claim], cells_per_batch: int) -> list[list[str]]:
    """The claimed arenas in groups of at most `cells_per_batch` cells, in claim order (the
    most overdue first); an arena larger than that is a group of its own."""
    grouped: list[list[str]] = []
    cells = cells_per_batch
    for claim in claims:
        if cells + claim.cells > cells_per_batch:
            grouped.append([])
            cells = 0
        grouped[-1].append(claim.arena_id)
        cells += claim.cells
    return grouped
