"""Small helpers for command-API tests: open arenas, join them, and snapshot what was committed.

Every test opens its own arenas, so snapshots are scoped to one arena; the only global figures are
before/after totals taken within one test (tests of a run execute one at a time).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

ARENAS = "/api/v1/arenas"
PROBLEM = "application/problem+json"


def arena_path(arena_id: str, suffix: str = "") -> str:
    return f"{ARENAS}/{arena_id}{suffix}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_key() -> str:
    return f"test-{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class Member:
    """A player as its client knows it: id, role and its bearer token."""

    id: str
    token: str
    role: str
    name: str

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)


def create_arena(
    client: FlaskClient,
    *,
    name: str = "Test dish",
    display_name: str = "Ada",
    config: dict[str, Any] | None = None,
) -> tuple[str, Member]:
    """Open an arena; answers its id and the creator (an ADMIN)."""
    body: dict[str, Any] = {"name": name, "displayName": display_name}
    if config is not None:
        body["config"] = config
    response = client.post(ARENAS, json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    opened = response.get_json()
    player = opened["player"]
    return opened["id"], Member(player["id"], player["token"], player["role"], display_name)


def join(client: FlaskClient, arena_id: str, display_name: str) -> Member:
    response = client.post(arena_path(arena_id, "/players"), json={"displayName": display_name})
    assert response.status_code == 201, response.get_data(as_text=True)
    player = response.get_json()["player"]
    return Member(player["id"], player["token"], player["role"], display_name.strip())


def transition(client: FlaskClient, arena_id: str, command: str, actor: Member) -> TestResponse:
    return client.post(arena_path(arena_id, f"/{command}"), headers=actor.auth)


def drive(client: FlaskClient, arena_id: str, admin: Member, *commands: str) -> None:
    """Apply transitions that must succeed, e.g. drive(..., "start", "pause")."""
    for command in commands:
        response = transition(client, arena_id, command, admin)
        assert response.status_code == 200, response.get_data(as_text=True)


def set_temperature(value: float = 30.0) -> dict[str, Any]:
    return {"type": "SET_TEMPERATURE", "payload": {"temperature": {"value": value}}}


def problem_of(response: TestResponse, status: int, problem_type: str) -> dict[str, Any]:
    """Assert `response` is an RFC 7807 problem of that status and type; answer its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["type"] == f"/problems/{problem_type}", body
    assert body["status"] == status
    assert body["detail"]
    return body


def error_fields(problem: dict[str, Any]) -> list[str]:
    return [error["field"] for error in problem.get("errors", [])]


# --- what the database holds -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    version: int
    type: str
    envelope: dict[str, Any]

    @property
    def payload(self) -> dict[str, Any]:
        return self.envelope["payload"]


def events(sql: psycopg.Connection, arena_id: str) -> list[Event]:
    rows = sql.execute(
        "SELECT aggregate_version, event_type, envelope FROM outbox"
        " WHERE aggregate_id = %s ORDER BY aggregate_version",
        (arena_id,),
    ).fetchall()
    return [Event(*row) for row in rows]


def last_event(sql: psycopg.Connection, arena_id: str) -> Event:
    return events(sql, arena_id)[-1]


@dataclass(frozen=True, slots=True)
class CommittedArena:
    """An arena's row as the application committed it (`arena_row`)."""

    status: str
    version: int
    tick: int
    config: dict[str, Any]
    started: bool
    finished: bool


def arena_row(sql: psycopg.Connection, arena_id: str) -> CommittedArena | None:
    row = sql.execute(
        "SELECT status, version, tick, config, started_at IS NOT NULL, finished_at IS NOT NULL"
        " FROM arenas WHERE id = %s",
        (arena_id,),
    ).fetchone()
    return None if row is None else CommittedArena(*row)


def players(sql: psycopg.Connection, arena_id: str) -> list[tuple[str, str, str, str]]:
    """(id, display name, role, token hash) of each present player, in join order."""
    rows = sql.execute(
        "SELECT id::text, display_name, role, token_hash FROM players"
        " WHERE arena_id = %s ORDER BY joined_at, id",
        (arena_id,),
    ).fetchall()
    return [tuple(row) for row in rows]


def idempotency_rows(sql: psycopg.Connection) -> int:
    (count,) = sql.execute("SELECT count(*) FROM idempotency_keys").fetchone()
    return count


def totals(sql: psycopg.Connection) -> tuple[int, int, int, int]:
    """(arenas, players, outbox rows, idempotency records) in the whole database."""
    row = sql.execute(
        "SELECT (SELECT count(*) FROM arenas), (SELECT count(*) FROM players),"
        " (SELECT count(*) FROM outbox), (SELECT count(*) FROM idempotency_keys)"
    ).fetchone()
    assert row is not None
    return tuple(row)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a command on one arena could change, plus the database totals."""

    arena: CommittedArena | None
    players: tuple[tuple[str, str, str, str], ...]
    events: tuple[tuple[int, str], ...]
    totals: tuple[int, int, int, int]


def snapshot(sql: psycopg.Connection, arena_id: str | None = None) -> Snapshot:
    if arena_id is None:
        return Snapshot(None, (), (), totals(sql))
    return Snapshot(
        arena_row(sql, arena_id),
        tuple(players(sql, arena_id)),
        tuple((event.version, event.type) for event in events(sql, arena_id)),
        totals(sql),
    )


def assert_versions_contiguous(sql: psycopg.Connection, arena_id: str) -> list[Event]:
    """The outbox holds versions 1..N of the arena, once each, and the arena row is at N."""
    recorded = events(sql, arena_id)
    assert [event.version for event in recorded] == list(range(1, len(recorded) + 1))
    assert all(event.envelope["aggregateVersion"] == event.version for event in recorded)
    row = arena_row(sql, arena_id)
    assert row is not None and row.version == len(recorded)
    return recorded
