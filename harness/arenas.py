"""Arenas as the tests and benchmarks open them: configurations both use, and what the write
model recorded of an arena's ticks."""

from __future__ import annotations

from typing import Any

import psycopg

# Arenas that tick once an hour: their versions are their commands' alone, so a test or a
# benchmark can compare them with the answers; tests/e2e/test_ticks.py drives ticks.
COMMANDS_ONLY: dict[str, Any] = {"tickMillis": 3_600_000}
# Small arenas ticking ten times a second, with a snapshot every ten ticks.
TICKING: dict[str, Any] = {
    "width": 16,
    "height": 16,
    "tickMillis": 100,
    "seed": 42,
    "snapshotEveryTicks": 10,
}


def ticks_recorded(sql: psycopg.Connection, arena_id: str) -> list[int]:
    return [
        tick
        for (tick,) in sql.execute(
            "SELECT (envelope->'payload'->>'tick')::int FROM outbox"
            " WHERE aggregate_id = %s AND event_type = 'TickAdvanced' ORDER BY aggregate_version",
            (arena_id,),
        ).fetchall()
    ]
