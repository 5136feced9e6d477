"""Re-driving a stalled arena's parked events, in version order, after a fix."""

from __future__ import annotations

from dataclasses import dataclass

from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent
from arena.readmodel.store import ArenaViews
from arena.readmodel.writer import (
    EventOutOfOrder,
    apply_event,
    stall,
    unpark,
    unstall_if_nothing_parked,
)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    arena_id: str
    applied: int
    resumed: bool
    stuck_at_version: int | None = None
    reason: str | None = None


def replay(views: ArenaViews, arena_id: str) -> ReplayResult:
    """Apply every parked event in order; lift the stall once none is left.

    Events parked while this runs are picked up too. If one still fails, the arena stays
    stalled at it, with the new reason, and the rest stay parked.
    """
    applied = 0
    while True:
        parked = views.parked(arena_id)
        if not parked:
            if unstall_if_nothing_parked(views, arena_id):
                return ReplayResult(arena_id, applied, resumed=True)
            continue
        for raw_event, version in parked:
            try:
                apply_event(views, EventEnvelope.from_json(raw_event), replaying=True)
            except (PoisonEvent, EventOutOfOrder) as error:
                reason = f"{type(error).__name__}: {error}"
                stall(views, arena_id, version=version, raw_event=raw_event, reason=reason)
                return ReplayResult(arena_id, applied, False, version, reason)
            unpark(views, arena_id, raw_event)
            applied += 1
