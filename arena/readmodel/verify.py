"""Checking the read model against the write model, arena by arena."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from arena.extensions import AnySession
from arena.persistence.tables import ArenaRow, BoardRow, PlayerRow
from arena.readmodel.boards import empty_board, read_board
from arena.readmodel.store import ArenaViews

CHUNK = 500
ARENAS = ArenaRow.__table__
PLAYERS = PlayerRow.__table__
BOARDS = BoardRow.__table__


@dataclass(frozen=True, slots=True)
class Divergence:
    arena_id: str
    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"arena {self.arena_id}: {self.field} is {self.actual!r}, expected {self.expected!r}"


def divergences(session: AnySession, views: ArenaViews) -> list[Divergence]:
    """Every difference in status, tick, version, players, config and, at the same tick, the
    board (its hash, recomputed from the read model's board); empty when in sync."""
    found: list[Divergence] = []
    keys = views.keys()
    for expected in _chunks(_write_model(session), CHUNK):
        actual = views.get_many([arena["id"] for arena in expected])
        for arena in expected:
            view = actual.get(arena["id"])
            found.extend(_compare(arena, view))
            if view is not None and view["tick"] == arena["tick"] and arena["boardHash"]:
                shown = read_board(views.redis, keys, arena["id"], empty_board(view)).hash()
                if shown != arena["boardHash"]:
                    found.append(Divergence(arena["id"], "boardHash", arena["boardHash"], shown))
    session.rollback()
    return found


def first_missing_versions(found: list[Divergence]) -> dict[str, int]:
    """For each arena whose view lags behind, the first version its view lacks."""
    missing: dict[str, int] = {}
    for divergence in found:
        if divergence.field == "view":
            missing[divergence.arena_id] = 1
        elif divergence.field == "version" and divergence.actual < divergence.expected:
            missing[divergence.arena_id] = divergence.actual + 1
    return missing


def _compare(expected: dict[str, Any], view: dict[str, Any] | None) -> list[Divergence]:
    if view is None:
        return [Divergence(expected["id"], "view", "present", None)]
    actual = {
        "status": view["status"],
        "tick": view["tick"],
        "version": view["version"],
        "config": view["config"],
        "players": sorted((p["playerId"], p["displayName"], p["role"]) for p in view["players"]),
    }
    return [
        Divergence(expected["id"], name, expected[name], actual[name])
        for name in actual
        if actual[name] != expected[name]
    ]


def _write_model(session: AnySession) -> Iterator[dict[str, Any]]:
    players: dict[uuid.UUID, list[tuple[str, str, str]]] = {}
    for row in session.execute(
        select(PLAYERS.c.arena_id, PLAYERS.c.id, PLAYERS.c.display_name, PLAYERS.c.role)
    ):
        players.setdefault(row.arena_id, []).append((str(row.id), row.display_name, row.role))
    boards = {
        row.arena_id: row.board_hash
        for row in session.execute(select(BOARDS.c.arena_id, BOARDS.c.board_hash))
    }
    for row in session.execute(select(ARENAS).order_by(ARENAS.c.created_at)):
        yield {
            "boardHash": boards.get(row.id),
            "id": str(row.id),
            "status": row.status,
            "tick": row.tick,
            "version": row.version,
            "config": row.config,
            "players": sorted(players.get(row.id, [])),
        }


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
