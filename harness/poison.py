"""An arena whose third event no projection knows: the poison of the dead-letter tests and the
chaos matrix."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.model import Arena

UNKNOWN_TYPE = "ArenaRenamed"


def envelope_of(event: Any) -> EventEnvelope:
    return EventEnvelope.wrap(event, correlation_id="dlq-test", causation_id="dlq-test")


def poisoned_arena() -> tuple[Arena, Any, list[EventEnvelope]]:
    """v1 ArenaCreated, v2 PlayerJoined, v3 ArenaRenamed (unknown), v4 ArenaStarted, v5 Paused."""
    now = datetime.now(UTC)
    arena, creator = Arena.create(
        name=f"Synthetic {uuid.uuid4().hex[:6]}",
        creator_display_name="Ada",
        config=ArenaConfig(),
        now=now,
    )
    arena.join("Bob", now)
    created, joined = (envelope_of(event) for event in arena.collect_events())
    renamed = dataclasses.replace(
        joined,
        event_id=str(uuid.uuid4()),
        event_type=UNKNOWN_TYPE,
        aggregate_version=3,
        payload={"name": "Renamed dish", "renamedAt": (now + timedelta(seconds=1)).isoformat()},
    )
    arena.transition("start", creator.player, now + timedelta(seconds=2))
    arena.transition("pause", creator.player, now + timedelta(seconds=3))
    started, paused = (
        dataclasses.replace(envelope_of(event), aggregate_version=event.version + 1)
        for event in arena.collect_events()
    )
    return arena, creator.player, [created, joined, renamed, started, paused]
