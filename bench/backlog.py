"""A backlog of pending outbox rows for the relay measurements (the relay benchmark's in-process
runs, the pipeline's relay drain): events recorded by the real domain, COPYed in at once, so that
their envelopes have the shape and size commands give them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
import psycopg

from arena.domain.actions import ActionType
from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.model import Arena, Player
from harness.resources import Run

COPY_SQL = (
    "COPY outbox (event_id, event_type, aggregate_id, aggregate_version, envelope) FROM STDIN"
)
ACTIONS: list[tuple[ActionType, dict[str, Any]]] = [
    (ActionType.SPAWN_ORGANISM, {"kind": "BACTERIA", "position": {"x": 12, "y": 40}}),
    (ActionType.SET_TEMPERATURE, {"temperature": {"value": 31.5}}),
    (ActionType.ADD_NUTRIENTS, {"area": {"x": 8, "y": 8, "width": 4, "height": 4}, "amount": 2}),
]


def outbox_rows(count: int, arenas: int) -> Iterator[tuple[uuid.UUID, str, uuid.UUID, int, str]]:
    """`count` events of `arenas` arenas as the real domain records them, ready for COPY.

    Per arena: ArenaCreated (v1), ArenaStarted (v2), then ActionSubmitted, so envelopes have their
    real shape and size. Rows go round-robin over the arenas, so each arena's versions rise with
    the outbox id, as concurrent commands leave them.
    """
    now = datetime.now(UTC)
    quota = [count // arenas + (1 if index < count % arenas else 0) for index in range(arenas)]
    live: list[tuple[Arena, Player, int]] = []
    for index, wanted in enumerate(quota):
        if wanted:
            arena, creator = Arena.create(
                name=f"Bench dish {index}",
                creator_display_name="Ada",
                config=ArenaConfig(),
                now=now,
            )
            live.append((arena, creator.player, wanted))
    for version in range(1, max(quota) + 1):
        for arena, admin, wanted in live:
            if version > wanted:
                continue
            if version == 2:
                arena.transition("start", admin, now)
            elif version > 2:
                action_type, payload = ACTIONS[version % len(ACTIONS)]
                arena.submit_action(admin, action_type, payload, None, now)
            (recorded,) = arena.collect_events()
            request_id = str(uuid.uuid4())
            envelope = EventEnvelope.wrap(
                recorded, correlation_id=request_id, causation_id=request_id
            )
            yield (
                uuid.UUID(envelope.event_id),
                envelope.event_type,
                uuid.UUID(envelope.aggregate_id),
                envelope.aggregate_version,
                json.dumps(envelope.to_dict()),
            )


def load_outbox(run: Run, count: int, arenas: int, label: str) -> tuple[float, float]:
    """COPY `count` pending events into the outbox; answers (seconds, mean envelope bytes)."""
    started = time.perf_counter()
    envelope_bytes = 0
    with (
        psycopg.connect(run.dsn) as connection,
        connection.cursor() as cursor,
        click.progressbar(length=count, label=label) as bar,
        cursor.copy(COPY_SQL) as copy,
    ):
        for number, row in enumerate(outbox_rows(count, arenas), 1):
            copy.write_row(row)
            envelope_bytes += len(row[4])
            if number % 1000 == 0:
                bar.update(1000)
        bar.update(count % 1000)
    with psycopg.connect(run.dsn, autocommit=True) as connection:
        connection.execute("ANALYZE outbox")  # a live outbox has statistics; a fresh load has not
    return time.perf_counter() - started, envelope_bytes / count


def pending_rows(run: Run) -> int:
    """Outbox rows not yet published, anywhere in the run's database."""
    with psycopg.connect(run.dsn) as connection:
        query = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        (count,) = connection.execute(query).fetchone() or (0,)
        return int(count)
