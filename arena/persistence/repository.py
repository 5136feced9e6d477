"""The arena repository: the only code that turns aggregates into rows and back.

Saving an arena it loaded is an optimistic-concurrency write: the UPDATE only matches if the row
still has the version the arena was loaded at, so two commands racing on one arena can never both
commit; the loser gets `ConcurrentUpdate` and its unit of work retries from a fresh load.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from arena.domain.config import ArenaConfig
from arena.domain.errors import NotFound
from arena.domain.model import Arena, ArenaStatus, Player, PlayerRole
from arena.persistence.errors import ConcurrentUpdate
from arena.persistence.tables import ArenaRow, PlayerRow

ARENAS = ArenaRow.__table__
PLAYERS = PlayerRow.__table__


class ArenaRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._loaded: dict[str, tuple[int, frozenset[str]]] = {}  # id → (version, player ids)
        self.seen: list[Arena] = []

    def add(self, arena: Arena) -> None:
        self.seen.append(arena)

    def get(self, arena_id: str) -> Arena:
        row = self._session.execute(
            select(ARENAS).where(ARENAS.c.id == _uuid_or_none(arena_id))
        ).one_or_none()
        if row is None:
            raise NotFound(f"Arena {arena_id} not found.")
        player_rows = self._session.execute(
            select(PLAYERS).where(PLAYERS.c.arena_id == row.id).order_by(PLAYERS.c.joined_at)
        ).all()
        arena = Arena(
            id=str(row.id),
            name=row.name,
            status=ArenaStatus(row.status),
            config=ArenaConfig.from_dict(row.config),
            created_at=row.created_at,
            players=[_player(player_row) for player_row in player_rows],
            started_at=row.started_at,
            finished_at=row.finished_at,
            tick=row.tick,
            version=row.version,
        )
        self._loaded[arena.id] = (arena.version, frozenset(p.id for p in arena.players))
        self.seen.append(arena)
        return arena

    def save_changes(self) -> None:
        """Write every new or changed arena (called by the unit of work before it commits)."""
        for arena in self.seen:
            if arena.id not in self._loaded:
                self._insert(arena)
            elif arena.version != self._loaded[arena.id][0]:
                self._update(arena)

    def _insert(self, arena: Arena) -> None:
        self._session.execute(insert(ARENAS).values(id=uuid.UUID(arena.id), **_arena_values(arena)))
        self._insert_players(arena, arena.players)

    def _update(self, arena: Arena) -> None:
        loaded_version, loaded_player_ids = self._loaded[arena.id]
        arena_id = uuid.UUID(arena.id)
        result = self._session.execute(
            update(ARENAS)
            .where(ARENAS.c.id == arena_id, ARENAS.c.version == loaded_version)
            .values(**_arena_values(arena))
        )
        if result.rowcount != 1:
            raise ConcurrentUpdate(f"arena {arena.id} changed since version {loaded_version}")
        current_ids = {player.id for player in arena.players}
        gone = [uuid.UUID(player_id) for player_id in loaded_player_ids - current_ids]
        if gone:
            self._session.execute(delete(PLAYERS).where(PLAYERS.c.id.in_(gone)))
        self._insert_players(arena, [p for p in arena.players if p.id not in loaded_player_ids])

    def _insert_players(self, arena: Arena, players: list[Player]) -> None:
        if players:
            self._session.execute(
                insert(PLAYERS), [_player_values(arena.id, player) for player in players]
            )


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _arena_values(arena: Arena) -> dict[str, Any]:
    return {
        "name": arena.name,
        "status": arena.status.value,
        "config": arena.config.to_dict(),
        "tick": arena.tick,
        "version": arena.version,
        "created_at": arena.created_at,
        "started_at": arena.started_at,
        "finished_at": arena.finished_at,
    }


def _player_values(arena_id: str, player: Player) -> dict[str, Any]:
    return {
        "id": uuid.UUID(player.id),
        "arena_id": uuid.UUID(arena_id),
        "display_name": player.display_name,
        "role": player.role.value,
        "token_hash": player.token_hash,
        "joined_at": player.joined_at,
    }


def _player(row: Any) -> Player:
    return Player(
        id=str(row.id),
        display_name=row.display_name,
        role=PlayerRole(row.role),
        joined_at=row.joined_at,
        token_hash=row.token_hash,
    )
