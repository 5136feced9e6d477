"""An arena's life as the benchmarks and the chaos matrix drive it over HTTP: the commands in
order (`SCRIPT`, one event each, so commands/s and events/s are the same number), and the request
each one sends (`command_request`) for a `Session`, one arena taken through them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.arenas import COMMANDS_ONLY

API = "/api/v1/arenas"

SCRIPT = (
    "create",
    "join",
    "start",
    "spawn",
    "nutrients",
    "temperature",
    "pause",
    "config",
    "resume",
    "antibiotic",
    "spawn-as-player",
    "stop",
)
ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "spawn": ("SPAWN_ORGANISM", {"kind": "BACTERIA", "position": {"x": 12, "y": 40}}),
    "nutrients": (
        "ADD_NUTRIENTS",
        {"area": {"x": 8, "y": 8, "width": 4, "height": 4}, "amount": 2.5},
    ),
    "temperature": ("SET_TEMPERATURE", {"temperature": {"value": 31.5}}),
    "antibiotic": (
        "DROP_ANTIBIOTIC",
        {"area": {"x": 20, "y": 20, "width": 8, "height": 2}, "kind": "A", "concentration": 0.4},
    ),
    "spawn-as-player": ("SPAWN_ORGANISM", {"kind": "FUNGI", "position": {"x": 3, "y": 9}}),
}
MIX = "per arena: create, join, start, 3 actions, pause, config, resume, 2 actions, stop"


@dataclass(slots=True)
class Session:
    """One arena taken through SCRIPT, one command at a time, so its commands never race."""

    number: int
    arena_id: str | None = None
    admin_token: str | None = None
    player_token: str | None = None
    step: int = 0


def command_request(
    session: Session, kind: str
) -> tuple[str, str, dict[str, Any] | None, str | None]:
    """(method, path, body, token) of the session's next command."""
    arena = f"{API}/{session.arena_id}"
    if kind == "create":
        body = {
            "name": f"Bench dish {session.number}",
            "displayName": "Ada",
            "config": COMMANDS_ONLY,
        }
        return "POST", API, body, None
    if kind == "join":
        return "POST", f"{arena}/players", {"displayName": "Bea"}, None
    if kind in ("start", "pause", "resume", "stop"):
        return "POST", f"{arena}/{kind}", None, session.admin_token
    if kind == "config":
        changes = {"mutationRate": 0.05, "temperature": {"value": 25.0}}
        return "PATCH", f"{arena}/config", changes, session.admin_token
    action_type, payload = ACTIONS[kind]
    token = session.player_token if kind == "spawn-as-player" else session.admin_token
    return "POST", f"{arena}/actions", {"type": action_type, "payload": payload}, token
