"""Commands: what a client asks for, already shape-checked by the HTTP layer.

`actor_token_hash` is the SHA-256 of the caller's bearer token; handlers resolve it to a player of
the arena in question (tokens are scoped to one arena).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arena.domain.actions import ActionType


@dataclass(frozen=True, slots=True)
class CreateArena:
    name: str
    display_name: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JoinArena:
    arena_id: str
    display_name: str


@dataclass(frozen=True, slots=True)
class RemovePlayer:
    arena_id: str
    player_id: str
    actor_token_hash: str


@dataclass(frozen=True, slots=True)
class ChangeStatus:
    arena_id: str
    transition: str  # start | pause | resume | stop
    actor_token_hash: str


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    arena_id: str
    changes: dict[str, Any]
    actor_token_hash: str


@dataclass(frozen=True, slots=True)
class SubmitAction:
    arena_id: str
    action_type: ActionType
    payload: dict[str, Any]
    apply_at_tick: int | None
    actor_token_hash: str


@dataclass(frozen=True, slots=True)
class AdvanceArenas:
    """Sent by the tick engine, not by a client: make the next tick of each of these arenas
    that is due, all in one transaction (a tick's cost is mostly per transaction, not per cell)."""

    arena_ids: tuple[str, ...]
    max_catch_up: int  # ticks behind at which an arena skips ahead instead of catching up


Command = (
    CreateArena
    | JoinArena
    | RemovePlayer
    | ChangeStatus
    | UpdateConfig
    | SubmitAction
    | AdvanceArenas
)
