"""The tick scheduler's leases: which running arenas are due a tick, each claimed by one task.

A claim sets `tick_lease_until`; the task that makes the arena's ticks clears it when done. A
task that dies (or a message the broker loses) only delays the arena until the lease runs out,
and then the next scheduling pass claims it again: never two tick tasks for one arena at once,
never an arena left behind. Ticks are safe to run twice anyway (the version check).

An arena whose tick fails on its own is set aside (`tick_failure`, with the reason and the time):
no pass claims it until an operator resumes it (`flask ticks resume`), so it cannot hold back
the arenas ticked with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_CLAIM_DUE = """
UPDATE arenas SET tick_lease_until = now() + make_interval(secs => %(lease_seconds)s)
 WHERE id IN (SELECT id FROM arenas
               WHERE status = 'RUNNING' AND next_tick_at <= now()
                 AND (tick_lease_until IS NULL OR tick_lease_until < now())
                 AND tick_failure IS NULL
               ORDER BY next_tick_at
               LIMIT %(limit)s
                 FOR UPDATE SKIP LOCKED)
RETURNING id::text, (config->>'width')::int * (config->>'height')::int
"""
_RELEASE = "UPDATE arenas SET tick_lease_until = NULL WHERE id = ANY(%s::uuid[])"
_SET_ASIDE = "UPDATE arenas SET tick_failure = %s, tick_failed_at = now() WHERE id = %s"
# Both read the partial index of set-aside arenas only; LIMIT NULL is no limit.
_SET_ASIDE_ARENAS = """
SELECT id::text, tick_failure, tick_failed_at FROM arenas
 WHERE tick_failure IS NOT NULL
 ORDER BY tick_failed_at
 LIMIT %s
"""
_SET_ASIDE_COUNT = """
SELECT count(*) FROM (SELECT 1 FROM arenas WHERE tick_failure IS NOT NULL LIMIT %s) AS set_aside
"""
_RESUME = """
UPDATE arenas SET tick_failure = NULL, tick_failed_at = NULL
 WHERE tick_failure IS NOT NULL AND (%(arena_id)s::uuid IS NULL OR id = %(arena_id)s::uuid)
RETURNING id::text
"""
REASON_CHARS = 2000  # a failure's message can be a whole board; the start says what it is


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


@dataclass(frozen=True, slots=True)
class SetAside:
    """An arena no pass claims: its tick failed on its own, for `reason`, at `since`."""

    arena_id: str
    reason: str
    since: datetime

    def to_dict(self) -> dict[str, str]:
        return {"arenaId": self.arena_id, "reason": self.reason, "since": self.since.isoformat()}


def set_aside(connection: psycopg.Connection[Any], arena_id: str, reason: str) -> None:
    connection.execute(_SET_ASIDE, (reason[:REASON_CHARS], arena_id))
    connection.commit()


@dataclass(frozen=True, slots=True)
class SetAsideArenas:
    count: int  # how many, up to the count's cap
    first: list[SetAside]  # the longest set aside first

    def to_dict(self) -> dict[str, Any]:
        return {"setAside": self.count, "setAsideArenas": [a.to_dict() for a in self.first]}


def set_aside_arenas(
    connection: psycopg.Connection[Any], *, listed: int | None, counted: int | None
) -> SetAsideArenas:
    """The arenas set aside: up to `counted` of them counted and the first `listed` (None: all)."""
    (count,) = connection.execute(_SET_ASIDE_COUNT, (counted,)).fetchone() or (0,)
    rows = connection.execute(_SET_ASIDE_ARENAS, (listed,)).fetchall()
    connection.rollback()
    return SetAsideArenas(count, [SetAside(*row) for row in rows])


def resume(connection: psycopg.Connection[Any], arena_id: str | None) -> list[str]:
    """Let the next passes claim the arena again (None: every arena set aside); the arenas
    that were set aside. One whose tick still fails is set aside again, with the new reason."""
    rows = connection.execute(_RESUME, {"arena_id": arena_id}).fetchall()
    connection.commit()
    return [resumed for (resumed,) in rows]


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
