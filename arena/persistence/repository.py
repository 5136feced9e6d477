"""The arena repository: the only code that turns aggregates into rows and back.

Saving an arena it loaded is an optimistic-concurrency write: the UPDATE only matches if the row
still has the version the arena was loaded at, so two commands racing on one arena can never both
commit; the loser gets `ConcurrentUpdate` and its unit of work retries from a fresh load.

Statements are fixed SQL text run on the psycopg connection (see `connections.py`): an arena
and its players load in one round trip, and each statement is planned once per connection.
"""

from __future__ import annotations

import itertools
import operator
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from arena.domain.config import ArenaConfig
from arena.domain.errors import NotFound
from arena.domain.model import Arena, ArenaStatus, Player, PlayerRole
from arena.services.unit_of_work import ConcurrentUpdate

# One row per player (one with NULL player columns for an arena without players).
_LOAD = """
SELECT a.id::text, a.name, a.status, a.config, a.created_at, a.started_at, a.finished_at, a.tick,
       a.version, a.next_tick_at, p.id::text, p.display_name, p.role, p.joined_at, p.token_hash
  FROM arenas a LEFT JOIN players p ON p.arena_id = a.id
 WHERE a.id = ANY(%s::uuid[])
 ORDER BY a.id, p.joined_at
"""
_INSERT = """
INSERT INTO arenas
    (name, status, config, created_at, started_at, finished_at, tick, version, next_tick_at, id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_UPDATE = """
UPDATE arenas
   SET name = %s, status = %s, config = %s, created_at = %s, started_at = %s, finished_at = %s,
       tick = %s, version = %s, next_tick_at = %s
 WHERE id = %s AND version = %s
"""
_INSERT_PLAYER = """
INSERT INTO players (id, arena_id, display_name, role, token_hash, joined_at)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_DELETE_PLAYERS = "DELETE FROM players WHERE id = ANY(%s::uuid[])"


@dataclass(frozen=True, slots=True)
class _Loaded:
    """An aggregate as loaded: what a save compares against (version, player ids)."""

    arena: Arena
    version: int
    player_ids: frozenset[str]


class ArenaRepository:
    def __init__(self, connection: psycopg.Connection) -> None:
        self._connection = connection
        self._loaded: dict[str, _Loaded] = {}  # id → the aggregate this unit of work loaded
        self.seen: list[Arena] = []

    def add(self, arena: Arena) -> None:
        self.seen.append(arena)

    def get(self, arena_id: str) -> Arena:
        found = self.get_many([arena_id])
        if not found:
            raise NotFound(f"Arena {arena_id} not found.")
        return found[0]

    def get_many(self, arena_ids: list[str]) -> list[Arena]:
        """The arenas that exist among `arena_ids`, in one round trip. An arena this unit of
        work already holds is handed out again, not reloaded, so its changes are kept."""
        wanted = [canonical for arena_id in arena_ids if (canonical := _canonical_id(arena_id))]
        missing = [arena_id for arena_id in wanted if arena_id not in self._loaded]
        if missing:
            rows = self._connection.execute(_LOAD, (missing,)).fetchall()
            for _, arena_rows in itertools.groupby(rows, key=operator.itemgetter(0)):
                arena = _arena(list(arena_rows))
                players = frozenset(p.id for p in arena.players)
                self._loaded[arena.id] = _Loaded(arena, arena.version, players)
                self.seen.append(arena)
        return [self._loaded[arena_id].arena for arena_id in wanted if arena_id in self._loaded]

    def save_changes(self) -> None:
        """Write every new or changed arena (called by the unit of work before it commits); all
        the UPDATEs go in one pipelined round trip."""
        changed = []
        for arena in self.seen:
            if arena.id not in self._loaded:
                self._connection.execute(_INSERT, (*_arena_values(arena), arena.id))
                self._insert_players(arena, arena.players)
            elif arena.version != self._loaded[arena.id].version:
                changed.append(arena)
        if changed:
            self._update(changed)

    def _update(self, arenas: list[Arena]) -> None:
        with self._connection.cursor() as cursor:
            _execute_each(
                cursor,
                _UPDATE,
                [
                    (*_arena_values(arena), arena.id, self._loaded[arena.id].version)
                    for arena in arenas
                ],
            )
            if cursor.rowcount != len(arenas):
                raise ConcurrentUpdate(
                    f"{len(arenas) - cursor.rowcount} of arenas {', '.join(a.id for a in arenas)}"
                    " changed since this unit of work loaded them"
                )
        for arena in arenas:
            loaded_player_ids = self._loaded[arena.id].player_ids
            gone = sorted(loaded_player_ids - {player.id for player in arena.players})
            if gone:
                self._connection.execute(_DELETE_PLAYERS, (gone,))
            self._insert_players(arena, [p for p in arena.players if p.id not in loaded_player_ids])

    def _insert_players(self, arena: Arena, players: list[Player]) -> None:
        if players:
            with self._connection.cursor() as cursor:
                _execute_each(
                    cursor,
                    _INSERT_PLAYER,
                    [
                        (p.id, arena.id, p.display_name, p.role.value, p.token_hash, p.joined_at)
                        for p in players
                    ],
                )


def _execute_each(cursor: psycopg.Cursor[Any], statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Run `statement` once per row, its rowcount the total: many rows in one pipelined round
    trip; a single row (a command's arena or new player) without the pipeline, which costs more
    CPU to set up than the one statement it would carry."""
    if len(rows) == 1:
        cursor.execute(statement, rows[0])
    else:
        cursor.executemany(statement, rows)


def _canonical_id(arena_id: str) -> str | None:
    """The id in UUID's canonical spelling; anything that is not a UUID names no arena."""
    try:
        return str(uuid.UUID(arena_id))
    except ValueError:
        return None


def _arena(rows: list[tuple[Any, ...]]) -> Arena:
    """An arena from its `_LOAD` rows (one per player)."""
    arena_id, name, status, config, created_at, started_at, finished_at, tick, version = rows[0][:9]
    next_tick_at = rows[0][9]
    return Arena(
        id=arena_id,
        name=name,
        status=ArenaStatus(status),
        config=ArenaConfig.from_dict(config),
        created_at=created_at,
        players=[_player(*row[10:]) for row in rows if row[10] is not None],
        started_at=started_at,
        finished_at=finished_at,
        tick=tick,
        version=version,
        next_tick_at=next_tick_at,
    )


def _arena_values(arena: Arena) -> tuple[Any, ...]:
    """The columns `_INSERT` and `_UPDATE` set, in their order."""
    return (
        arena.name,
        arena.status.value,
        Jsonb(arena.config.to_dict()),
        arena.created_at,
        arena.started_at,
        arena.finished_at,
        arena.tick,
        arena.version,
        arena.next_tick_at,
    )


def _player(
    player_id: str, display_name: str, role: str, joined_at: datetime, token_hash: str
) -> Player:
    return Player(
        id=player_id,
        display_name=display_name,
        role=PlayerRole(role),
        joined_at=joined_at,
        token_hash=token_hash,
    )
