"""Command handlers: the application layer between the HTTP adapter and the domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from arena.domain.config import ArenaConfig
from arena.domain.model import Arena
from arena.persistence.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class CreateArena:
    name: str
    display_name: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ArenaOpened:
    arena_id: str
    version: int
    player_id: str
    player_token: str
    player_role: str


def create_arena(uow: UnitOfWork, command: CreateArena) -> ArenaOpened:
    config = ArenaConfig.from_dict(command.config)
    arena, creator = Arena.create(
        name=command.name,
        creator_display_name=command.display_name,
        config=config,
        now=datetime.now(UTC),
    )
    uow.arenas.add(arena)
    uow.commit()
    return ArenaOpened(
        arena_id=arena.id,
        version=arena.version,
        player_id=creator.player.id,
        player_token=creator.token,
        player_role=creator.player.role.value,
    )
