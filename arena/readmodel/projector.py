"""Pure projection logic: (current view, next event) → new view. No Redis here.

One handler per event class of `arena.domain.events`; a test fails when a class has none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arena.domain.envelope import EventEnvelope
from arena.domain.events import (
    ActionApplied,
    ActionRejected,
    ActionSubmitted,
    ArenaConfigUpdated,
    ArenaCreated,
    ArenaPaused,
    ArenaResumed,
    ArenaStarted,
    ArenaStopped,
    DomainEvent,
    PlayerJoined,
    PlayerLeft,
    SnapshotTaken,
    TickAdvanced,
    UnknownEvent,
)

View = dict[str, Any]
Handler = Callable[[View | None, Any], View]


def project(view: View | None, envelope: EventEnvelope) -> View:
    """Apply one event to the arena's view; the caller guarantees it is the next version."""
    event = envelope.event()
    new_view = HANDLERS[type(event)](view, event)
    new_view["version"] = event.version
    return new_view


# Board data stays out of the feed: the board has its own keys (arena/readmodel/boards.py).
_NOT_IN_FEED = frozenset({"delta", "board"})


def feed_entry(envelope: EventEnvelope) -> dict[str, Any]:
    """One line of an arena's recent-events feed: the payload as it travelled, but the board."""
    payload = envelope.payload
    if not _NOT_IN_FEED.isdisjoint(payload):
        payload = {key: value for key, value in payload.items() if key not in _NOT_IN_FEED}
    return {
        "version": envelope.aggregate_version,
        "type": envelope.event_type,
        "occurredAt": envelope.occurred_at,
        "eventId": envelope.event_id,
        "payload": payload,
    }


def _arena_created(_: View | None, event: ArenaCreated) -> View:
    return {
        "id": event.arena_id,
        "name": event.name,
        "status": event.status,
        "tick": 0,
        "config": event.config,
        "players": [event.creator.to_json()],
        "createdAt": event.created_at.isoformat(),
        "startedAt": None,
        "finishedAt": None,
    }


def _player_joined(view: View | None, event: PlayerJoined) -> View:
    view = _existing(view)
    return view | {"players": [*view["players"], event.player.to_json()]}


def _player_left(view: View | None, event: PlayerLeft) -> View:
    view = _existing(view)
    remaining = [p for p in view["players"] if p["playerId"] != event.player_id]
    return view | {"players": remaining}


def _arena_started(view: View | None, event: ArenaStarted) -> View:
    changes = {"status": event.status, "tick": event.tick}
    return _existing(view) | changes | {"startedAt": event.started_at.isoformat()}


def _arena_paused(view: View | None, event: ArenaPaused | ArenaResumed) -> View:
    return _existing(view) | {"status": event.status, "tick": event.tick}


def _arena_stopped(view: View | None, event: ArenaStopped) -> View:
    changes = {"status": event.status, "tick": event.tick}
    return _existing(view) | changes | {"finishedAt": event.finished_at.isoformat()}


def _config_updated(view: View | None, event: ArenaConfigUpdated) -> View:
    return _existing(view) | {"config": event.config}


def _action_submitted(view: View | None, _: ActionSubmitted) -> View:
    return dict(_existing(view))  # actions change the dish only when the simulation applies them


def _action_settled(view: View | None, _: ActionApplied | ActionRejected) -> View:
    return dict(_existing(view))  # the feed shows it; the board changes with the tick's delta


def _tick_advanced(view: View | None, event: TickAdvanced) -> View:
    changes = {"tick": event.tick, "stats": event.stats, "boardHash": event.board_hash}
    return _existing(view) | changes


def _snapshot_taken(view: View | None, event: SnapshotTaken) -> View:
    return _existing(view) | {"lastSnapshotTick": event.tick}


def _existing(view: View | None) -> View:
    if view is None:
        raise UnknownEvent("an event other than ArenaCreated arrived for an arena with no view")
    return view


HANDLERS: dict[type[DomainEvent], Handler] = {
    ArenaCreated: _arena_created,
    PlayerJoined: _player_joined,
    PlayerLeft: _player_left,
    ArenaStarted: _arena_started,
    ArenaPaused: _arena_paused,
    ArenaResumed: _arena_paused,
    ArenaStopped: _arena_stopped,
    ArenaConfigUpdated: _config_updated,
    ActionSubmitted: _action_submitted,
    ActionApplied: _action_settled,
    ActionRejected: _action_settled,
    TickAdvanced: _tick_advanced,
    SnapshotTaken: _snapshot_taken,
}
