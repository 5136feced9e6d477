"""Pure projection logic: (current view, next event) → new view. No Redis here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arena.domain.events import SCHEMA_VERSION, EventEnvelope

View = dict[str, Any]


class UnknownEvent(ValueError):
    """An event type or schema version this projection does not know; retrying cannot help."""


def project(view: View | None, envelope: EventEnvelope) -> View:
    """Apply one event to the arena's view; the caller guarantees it is the next version."""
    if envelope.schema_version != SCHEMA_VERSION:
        raise UnknownEvent(
            f"{envelope.event_type} schema version {envelope.schema_version} is not supported"
        )
    handler = _HANDLERS.get(envelope.event_type)
    if handler is None:
        raise UnknownEvent(f"unknown event type {envelope.event_type!r}")
    new_view = handler(view, envelope.payload)
    new_view["version"] = envelope.aggregate_version
    return new_view


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
        "stalled": False,
    }


_HANDLERS: dict[str, Callable[[View | None, dict[str, Any]], View]] = {
    "ArenaCreated": _arena_created,
}
