"""Command handlers: load the aggregate, let it decide, return what the caller needs to know.

Handlers do not commit: the command bus commits, so a handler's changes, its outbox events and the
idempotency record of its reply share one transaction, and a lost race re-runs the whole handler.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from arena.domain.config import ArenaConfig
from arena.domain.errors import Unauthenticated
from arena.domain.model import Arena, Player
from arena.services.commands import (
    ChangeStatus,
    Command,
    CreateArena,
    JoinArena,
    RemovePlayer,
    SubmitAction,
    UpdateConfig,
)
from arena.services.results import (
    ActionAccepted,
    ArenaChanged,
    ArenaOpened,
    PlayerAdmitted,
    Result,
)
from arena.services.unit_of_work import UnitOfWork


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(arena: Arena, token_hash: str) -> Player:
    player = arena.player_with_token_hash(token_hash)
    if player is None:
        raise Unauthenticated("The bearer token is not valid for this arena.")
    return player


def _changed(arena: Arena) -> ArenaChanged:
    return ArenaChanged(arena.id, arena.version, arena.status.value)


def create_arena(uow: UnitOfWork, command: CreateArena) -> ArenaOpened:
    arena, creator = Arena.create(
        name=command.name,
        creator_display_name=command.display_name,
        config=ArenaConfig.from_dict(command.config),
        now=_now(),
    )
    uow.arenas.add(arena)
    return ArenaOpened(arena.id, arena.version, creator)


def join_arena(uow: UnitOfWork, command: JoinArena) -> PlayerAdmitted:
    arena = uow.arenas.get(command.arena_id)
    newcomer = arena.join(command.display_name, _now())
    return PlayerAdmitted(arena.id, arena.version, newcomer)


def remove_player(uow: UnitOfWork, command: RemovePlayer) -> ArenaChanged:
    arena = uow.arenas.get(command.arena_id)
    arena.remove_player(_actor(arena, command.actor_token_hash), command.player_id, _now())
    return _changed(arena)


def change_status(uow: UnitOfWork, command: ChangeStatus) -> ArenaChanged:
    arena = uow.arenas.get(command.arena_id)
    arena.transition(command.transition, _actor(arena, command.actor_token_hash), _now())
    return _changed(arena)


def update_config(uow: UnitOfWork, command: UpdateConfig) -> ArenaChanged:
    arena = uow.arenas.get(command.arena_id)
    arena.update_config(_actor(arena, command.actor_token_hash), command.changes, _now())
    return _changed(arena)


def submit_action(uow: UnitOfWork, command: SubmitAction) -> ActionAccepted:
    arena = uow.arenas.get(command.arena_id)
    action = arena.submit_action(
        _actor(arena, command.actor_token_hash),
        command.action_type,
        command.payload,
        command.apply_at_tick,
        _now(),
    )
    return ActionAccepted(arena.id, arena.version, action.action_id, action.apply_at_tick)


HANDLERS: dict[type[Any], Callable[[UnitOfWork, Any], Result]] = {
    CreateArena: create_arena,
    JoinArena: join_arena,
    RemovePlayer: remove_player,
    ChangeStatus: change_status,
    UpdateConfig: update_config,
    SubmitAction: submit_action,
}


def handler_for(command: Command) -> Callable[[UnitOfWork, Any], Result]:
    return HANDLERS[type(command)]
