"""Each arena's board after its latest tick, and the actions waiting for their tick."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from arena.simulation.board import Board
from arena.simulation.rules import DueAction
from arena.stored_board import SealedBoard, decode

_GET_BOARDS = "SELECT arena_id::text, board FROM arena_boards WHERE arena_id = ANY(%s::uuid[])"
# Binary parameters (%b): a bytea array sent as text escapes every byte (docs/benchmarks.md,
# "binary array parameters").
_PUT_BOARDS = """
INSERT INTO arena_boards (arena_id, tick, board, board_hash)
SELECT * FROM unnest(%b::uuid[], %b::int[], %b::bytea[], %b::text[])
ON CONFLICT (arena_id) DO UPDATE
   SET tick = EXCLUDED.tick, board = EXCLUDED.board, board_hash = EXCLUDED.board_hash
"""
_ADD_ACTION = """
INSERT INTO pending_actions (action_id, arena_id, player_id, action_type, payload, apply_at_tick)
VALUES (%s, %s, %s, %s, %s, %s)
"""
_DUE_ACTIONS = """
SELECT a.arena_id::text, a.action_id::text, a.player_id::text, a.action_type, a.payload
  FROM pending_actions a
  JOIN unnest(%s::uuid[], %s::int[]) AS due(arena_id, tick)
    ON a.arena_id = due.arena_id AND a.apply_at_tick = due.tick
 ORDER BY a.arena_id, a.seq
"""
_SETTLE_ACTIONS = """
DELETE FROM pending_actions a
 USING unnest(%s::uuid[], %s::int[]) AS settled(arena_id, tick)
 WHERE a.arena_id = settled.arena_id AND a.apply_at_tick <= settled.tick
"""


class SqlBoards:
    """Statements run in the unit of work's transaction: a tick that loses its race keeps none."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def get_many(self, arena_ids: list[str]) -> dict[str, Board]:
        if not arena_ids:
            return {}
        # Binary results: a bytea in text comes as hex, twice its size, encoded and decoded.
        rows = self._connection.execute(_GET_BOARDS, (arena_ids,), binary=True).fetchall()
        return {arena_id: decode(bytes(stored)) for arena_id, stored in rows}

    def put_many(self, boards: dict[str, SealedBoard]) -> None:
        if boards:
            sealed = list(boards.values())
            columns = (
                list(boards),
                [board.tick for board in sealed],
                [board.stored for board in sealed],
                [board.hash for board in sealed],
            )
            self._connection.execute(_PUT_BOARDS, columns)


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

    def due_many(self, ticks: dict[str, int]) -> dict[str, list[DueAction]]:
        if not ticks:
            return {}
        rows = self._connection.execute(_DUE_ACTIONS, (list(ticks), list(ticks.values())))
        due: dict[str, list[DueAction]] = {}
        for arena_id, *action in rows.fetchall():
            due.setdefault(arena_id, []).append(DueAction(*action))
        return due

    def settle_many(self, through_ticks: dict[str, int]) -> None:
        if through_ticks:
            columns = (list(through_ticks), list(through_ticks.values()))
            self._connection.execute(_SETTLE_ACTIONS, columns)
