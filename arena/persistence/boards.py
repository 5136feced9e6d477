"""Each arena's board after its latest tick, and the actions waiting for their tick."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from arena.simulation.board import Board, SealedBoard
from arena.simulation.rules import DueAction

_GET_BOARD = "SELECT board FROM arena_boards WHERE arena_id = %s"
_PUT_BOARD = """
INSERT INTO arena_boards (arena_id, tick, board, board_hash) VALUES (%s, %s, %s, %s)
ON CONFLICT (arena_id) DO UPDATE
   SET tick = EXCLUDED.tick, board = EXCLUDED.board, board_hash = EXCLUDED.board_hash
"""
_ADD_ACTION = """
INSERT INTO pending_actions (action_id, arena_id, player_id, action_type, payload, apply_at_tick)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_DUE_ACTIONS = """
SELECT action_id::text, player_id::text, action_type, payload
  FROM pending_actions
 WHERE arena_id = %s AND apply_at_tick = %s
 ORDER BY seq
"""
_SETTLE_ACTIONS = "DELETE FROM pending_actions WHERE arena_id = %s AND apply_at_tick <= %s"


class SqlBoards:
    """Statements run in the unit of work's transaction: a tick that loses its race keeps none."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def get(self, arena_id: str) -> Board | None:
        row = self._connection.execute(_GET_BOARD, (arena_id,)).fetchone()
        return None if row is None else Board.decode(bytes(row[0]))

    def put(self, arena_id: str, board: SealedBoard) -> None:
        values = (arena_id, board.tick, board.stored, board.hash)
        self._connection.execute(_PUT_BOARD, values)


class SqlPendingActions:
    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def add(self, arena_id: str, action: DueAction, apply_at_tick: int) -> None:
        values = (
            action.action_id,
            arena_id,
            action.player_id,
            action.action_type,
            Jsonb(action.payload),
            apply_at_tick,
        )
        self._connection.execute(_ADD_ACTION, values)

    def due(self, arena_id: str, tick: int) -> list[DueAction]:
        rows = self._connection.execute(_DUE_ACTIONS, (arena_id, tick)).fetchall()
        return [DueAction(*row) for row in rows]

    def settle(self, arena_id: str, through_tick: int) -> None:
        self._connection.execute(_SETTLE_ACTIONS, (arena_id, through_tick))
