"""Helpers for the tests of ticking arenas on the real pipeline."""

from __future__ import annotations

from typing import Any

import psycopg
from flask.testing import FlaskClient

from tests.support.api import arena_path


def act(client: FlaskClient, arena_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        arena_path(arena_id, "/actions"), headers={"Authorization": f"Bearer {token}"}, json=body
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def spawn(kind: str, x: int, y: int) -> dict[str, Any]:
    return {"type": "SPAWN_ORGANISM", "payload": {"kind": kind, "position": {"x": x, "y": y}}}


def written_board(sql: psycopg.Connection, arena_id: str) -> tuple[int, str]:
    row = sql.execute(
        "SELECT tick, board_hash FROM arena_boards WHERE arena_id = %s", (arena_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]
