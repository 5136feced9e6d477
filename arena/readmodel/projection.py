"""The projection, pure: (the arena's view, its next event) → the change it makes. No Redis here.

One handler per event class of `arena.domain.events` (a test fails when a class has none). A
handler returns the new view and, for the board's events, the entry the arena's board history
records; `project` adds what every event writes (its feed line, the version reached). The one
writer (arena/readmodel/writer.py) turns changes into Redis writes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
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
from arena.readmodel.view import ArenaView


@dataclass(frozen=True, slots=True)
class TickRecord:
    """A tick in the board history: its entry (stats and delta, by tick) and its stats line."""

    tick: int
    entry: str  # JSON {tick, stats, delta, advancedAt}
    stats_line: str  # JSON {at, stats, tick}, keys sorted: the same text however often written


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """A whole board in the history: the canonical encoding, compressed, as the write model
    stores it."""

    tick: int
    board: bytes


HistoryRecord = TickRecord | SnapshotRecord


@dataclass(frozen=True, slots=True)
class Handled:
    view: ArenaView
    history: HistoryRecord | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What one event does to the read model: the whole new view, a line of the arena's feed,
    and what its board history records, if anything."""

    view: ArenaView
    feed_line: str
    history: HistoryRecord | None


def project(view: ArenaView | None, envelope: EventEnvelope) -> Change:
    """Apply one event to the arena's view; the caller guarantees it is the next version.

    Raises a `PoisonEvent` for an event no handler can read, or one that needs a view there is
    not (anything but `ArenaCreated` first)."""
    event = envelope.event()  # its version is the envelope's aggregate version
    handled = EVENT_HANDLERS[type(event)](view, event)
    changed = handled.view
    if changed.version != event.version:  # a handler that did not say it (`_changed` does)
        changed = replace(changed, version=event.version)
    return Change(changed, _dump(feed_entry(envelope)), handled.history)


# Board data stays out of the feed: the board history has its own keys.
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


def _arena_created(_: ArenaView | None, event: ArenaCreated) -> Handled:
    return Handled(
        ArenaView(
            id=event.arena_id,
            name=event.name,
            status=event.status,
            tick=0,
            config=event.config,
            players=(event.creator.to_json(),),
            created_at=event.created_at.isoformat(),
            version=event.version,
        )
    )


def _player_joined(view: ArenaView | None, event: PlayerJoined) -> Handled:
    players = (*_existing(view).players, event.player.to_json())
    return Handled(_changed(view, event, players=players))


def _player_left(view: ArenaView | None, event: PlayerLeft) -> Handled:
    players = tuple(p for p in _existing(view).players if p["playerId"] != event.player_id)
    return Handled(_changed(view, event, players=players))


def _arena_started(view: ArenaView | None, event: ArenaStarted) -> Handled:
    started_at = event.started_at.isoformat()
    return Handled(
        _changed(view, event, status=event.status, tick=event.tick, started_at=started_at)
    )


def _arena_paused(view: ArenaView | None, event: ArenaPaused | ArenaResumed) -> Handled:
    return Handled(_changed(view, event, status=event.status, tick=event.tick))


def _arena_stopped(view: ArenaView | None, event: ArenaStopped) -> Handled:
    finished_at = event.finished_at.isoformat()
    return Handled(
        _changed(view, event, status=event.status, tick=event.tick, finished_at=finished_at)
    )


def _config_updated(view: ArenaView | None, event: ArenaConfigUpdated) -> Handled:
    return Handled(_changed(view, event, config=event.config))


def _action_submitted(view: ArenaView | None, event: ActionSubmitted) -> Handled:
    return Handled(_changed(view, event))  # the dish changes when the simulation applies it


def _action_settled(view: ArenaView | None, event: ActionApplied | ActionRejected) -> Handled:
    return Handled(_changed(view, event))  # the feed shows it; the board changes with the delta


def _tick_advanced(view: ArenaView | None, event: TickAdvanced) -> Handled:
    advanced_at = event.advanced_at.isoformat()
    entry = {"tick": event.tick, "stats": event.stats, "delta": event.delta}
    stats_line = {"tick": event.tick, "at": advanced_at, "stats": event.stats}
    return Handled(
        _changed(view, event, tick=event.tick, stats=event.stats, board_hash=event.board_hash),
        TickRecord(
            tick=event.tick,
            entry=_dump(entry | {"advancedAt": advanced_at}),
            stats_line=json.dumps(stats_line, sort_keys=True),
        ),
    )


def _snapshot_taken(view: ArenaView | None, event: SnapshotTaken) -> Handled:
    return Handled(
        _changed(view, event, last_snapshot_tick=event.tick),
        SnapshotRecord(tick=event.tick, board=base64.b64decode(event.board)),
    )


def _changed(view: ArenaView | None, event: DomainEvent, **fields: Any) -> ArenaView:
    """The arena's view with `fields` changed, at the event's version."""
    return replace(_existing(view), version=event.version, **fields)


def _existing(view: ArenaView | None) -> ArenaView:
    if view is None:
        raise UnknownEvent("an event other than ArenaCreated arrived for an arena with no view")
    return view


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


EventHandler = Callable[[ArenaView | None, Any], Handled]
EVENT_HANDLERS: dict[type[DomainEvent], EventHandler] = {
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
