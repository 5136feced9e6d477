"""The arena repository: the only code that turns aggregates into rows."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from arena.domain.model import Arena, Player
from arena.persistence.tables import ArenaRow, PlayerRow


class ArenaRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self.seen: list[Arena] = []

    def add(self, arena: Arena) -> None:
        self._session.add(_arena_row(arena))
        self._session.add_all(_player_row(arena.id, player) for player in arena.players)
        self.seen.append(arena)


def _arena_row(arena: Arena) -> ArenaRow:
    return ArenaRow(
        id=uuid.UUID(arena.id),
        name=arena.name,
        status=arena.status.value,
        config=arena.config.to_dict(),
        tick=arena.tick,
        version=arena.version,
        created_at=arena.created_at,
        started_at=arena.started_at,
        finished_at=arena.finished_at,
    )


def _player_row(arena_id: str, player: Player) -> PlayerRow:
    return PlayerRow(
        id=uuid.UUID(player.id),
        arena_id=uuid.UUID(arena_id),
        display_name=player.display_name,
        role=player.role.value,
        token_hash=player.token_hash,
        joined_at=player.joined_at,
    )
