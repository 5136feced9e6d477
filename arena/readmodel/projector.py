"""Pure projection logic: (current view, next event) → new view. No Redis here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arena.domain.events import SCHEMA_VERSION, EventEnvelope

View = dict[str, Any]


class UnknownEvent(ValueError):
    """An event type or schema version this projection does not know; retrying cannot help."""


class RejectedPayload(ValueError):
    """The event's payload lacks what the projection needs; retrying cannot help."""


def project(view: View | None, envelope: EventEnvelope) -> View:
    """Apply one event to the arena's view; the caller guarantees it is the next version."""
    if envelope.schema_version != SCHEMA_VERSION:
        raise UnknownEvent(
            f"{envelope.event_type} schema version {envelope.schema_version} is not supported"
        )
    handler = _HANDLERS.get(envelope.event_type)
    if handler is None:
        raise UnknownEvent(f"unknown event type {envelope.event_type!r}")
    try:
        new_view = handler(view, envelope.payload)
    except (KeyError, TypeError) as error:
        raise RejectedPayload(f"{envelope.event_type} payload rejected: {error!r}") from error
    new_view["version"] = envelope.aggregate_version
    return new_view


def feed_entry(envelope: EventEnvelope) -> dict[str, Any]:
    """One line of an arena's recent-events feed."""
    return {
        "version": envelope.aggregate_version,
        "type": envelope.event_type,
        "occurredAt": envelope.occurred_at,
        "eventId": envelope.event_id,
        "payload": envelope.payload,
    }


def _arena_created(_: View | None, payload: dict[str, Any]) -> View:
    return {
        "id": payload["arenaId"],
        "name": payload["name"],
        "status": payload["status"],
        "tick": 0,
        "config": payload["config"],
        "players": [payload["creator"]],
        "createdAt": payload["createdAt"],
        "startedAt": None,
        "finishedAt": None,
    }


def _player_joined(view: View | None, payload: dict[str, Any]) -> View:
    view = _existing(view)
    return view | {"players": [*view["players"], payload]}


def _player_left(view: View | None, payload: dict[str, Any]) -> View:
    view = _existing(view)
    remaining = [p for p in view["players"] if p["playerId"] != payload["playerId"]]
    return view | {"players": remaining}


def _status_changed(time_field: str | None) -> Callable[[View | None, dict[str, Any]], View]:
    """Lifecycle events carry the new status, the tick and the time of the change."""

    def apply(view: View | None, payload: dict[str, Any]) -> View:
        changes = {"status": payload["status"], "tick": payload["tick"]}
        if time_field is not None:
            changes[time_field] = payload[time_field]
        return _existing(view) | changes

    return apply


def _config_updated(view: View | None, payload: dict[str, Any]) -> View:
    return _existing(view) | {"config": payload["config"]}


def _action_submitted(view: View | None, _: dict[str, Any]) -> View:
    return dict(_existing(view))  # actions change the dish only when the simulation applies them


def _existing(view: View | None) -> View:
    if view is None:
        raise UnknownEvent("an event other than ArenaCreated arrived for an arena with no view")
    return view


_HANDLERS: dict[str, Callable[[View | None, dict[str, Any]], View]] = {
    "ArenaCreated": _arena_created,
    "PlayerJoined": _player_joined,
    "PlayerLeft": _player_left,
    "ArenaStarted": _status_changed("startedAt"),
    "ArenaPaused": _status_changed(None),
    "ArenaResumed": _status_changed(None),
    "ArenaStopped": _status_changed("finishedAt"),
    "ArenaConfigUpdated": _config_updated,
    "ActionSubmitted": _action_submitted,
}
