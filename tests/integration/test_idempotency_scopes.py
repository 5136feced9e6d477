"""Idempotency-Keys are secrets scoped to a credential: a replay answers only the client that made
the request, and a key someone else used never blocks a client (issue 23, item 5).

Create and join carry no credentials and their bodies are public, so their key is the client's
only secret: the server refuses keys too short or too plain to be one. A command with a bearer
token keeps its keys in that token's own namespace.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.api import (
    ARENAS,
    Member,
    arena_path,
    create_arena,
    drive,
    error_fields,
    join,
    new_key,
    problem_of,
    set_temperature,
    snapshot,
)

pytestmark = pytest.mark.integration

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"

# Keys a person picks, or that a client counts up: anyone can guess them.
GUESSABLE = ["1", "~", "retry-1", "join-arena", "a" * 21, "my key for joining it!"]


def _send(client: FlaskClient, path: str, body: Any, key: str) -> TestResponse:
    return client.post(path, json=body, headers={KEY: key})


def _token(response: TestResponse) -> str | None:
    body = response.get_json(silent=True) or {}
    return body.get("player", {}).get("token")


@pytest.mark.parametrize("route", ["create", "join"])
@pytest.mark.parametrize("key", GUESSABLE[:3])
def test_repeating_a_victims_guessable_key_and_body_gets_no_token(
    client: FlaskClient, sql: psycopg.Connection, route: str, key: str
) -> None:
    if route == "create":
        path, body = ARENAS, {"name": f"Public {key}", "displayName": "Ada"}
    else:
        arena_id, _ = create_arena(client, name=f"Open {key}")
        path, body = arena_path(arena_id, "/players"), {"displayName": "Bo"}
    before = snapshot(sql)

    victim = _send(client, path, body, key)
    attacker = _send(client, path, body, key)

    # The guessable key is refused, so nothing is remembered under it for anyone to replay.
    for response in (victim, attacker):
        problem = problem_of(response, 422, "validation-failed")
        assert error_fields(problem) == [KEY]
        assert REPLAYED not in response.headers
        assert _token(response) is None
    assert snapshot(sql) == before


@pytest.mark.parametrize("route", ["create", "join"])
def test_a_clients_secret_key_replays_to_it_and_another_key_gets_a_reply_of_its_own(
    client: FlaskClient, route: str
) -> None:
    if route == "create":
        path, body = ARENAS, {"name": "Public dish", "displayName": "Ada"}
    else:
        arena_id, _ = create_arena(client)
        path, body = arena_path(arena_id, "/players"), {"displayName": "Bo"}
    key = str(uuid.uuid4())

    first = _send(client, path, body, key)
    retry = _send(client, path, body, key)
    other = _send(client, path, body, new_key())  # the same public body, another key

    assert first.status_code == 201
    assert retry.headers[REPLAYED] == "true"
    assert retry.get_json() == first.get_json()
    assert REPLAYED not in other.headers
    assert _token(other) != _token(first)


def test_a_key_used_first_with_a_token_does_not_block_an_anonymous_join(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = create_arena(client)
    drive(client, arena_id, admin, "start")
    key = new_key()
    claimed = client.post(
        arena_path(arena_id, "/actions"), json=set_temperature(), headers=admin.auth | {KEY: key}
    )

    joined = _send(client, arena_path(arena_id, "/players"), {"displayName": "Bo"}, key)
    retry = _send(client, arena_path(arena_id, "/players"), {"displayName": "Bo"}, key)

    assert claimed.status_code == 202
    assert joined.status_code == 201
    assert REPLAYED not in joined.headers
    assert retry.headers[REPLAYED] == "true"
    assert retry.get_json() == joined.get_json()


def _running(client: FlaskClient) -> tuple[str, Member, Member, Member]:
    arena_id, admin = create_arena(client)
    bo, mallory = join(client, arena_id, "Bo"), join(client, arena_id, "Mallory")
    drive(client, arena_id, admin, "start")
    return arena_id, admin, bo, mallory


@pytest.mark.parametrize("body", ["the same", "another"])
def test_a_key_another_player_used_first_does_not_block_a_players_command(
    client: FlaskClient, body: str
) -> None:
    arena_id, _, bo, mallory = _running(client)
    url = arena_path(arena_id, "/actions")
    key = new_key()
    mallorys = set_temperature(21)
    bos = mallorys if body == "the same" else set_temperature(22)
    claimed = client.post(url, json=mallorys, headers=mallory.auth | {KEY: key})

    sent = client.post(url, json=bos, headers=bo.auth | {KEY: key})
    retry = client.post(url, json=bos, headers=bo.auth | {KEY: key})
    mallorys_retry = client.post(url, json=mallorys, headers=mallory.auth | {KEY: key})

    assert claimed.status_code == sent.status_code == 202
    assert REPLAYED not in sent.headers
    assert sent.get_json()["actionId"] != claimed.get_json()["actionId"]
    assert retry.headers[REPLAYED] == "true"
    assert retry.get_json() == sent.get_json()
    assert mallorys_retry.headers[REPLAYED] == "true"
    assert mallorys_retry.get_json() == claimed.get_json()


def test_the_same_key_and_token_with_another_body_is_still_a_422(client: FlaskClient) -> None:
    arena_id, _, bo, _ = _running(client)
    url = arena_path(arena_id, "/actions")
    key = new_key()
    first = client.post(url, json=set_temperature(21), headers=bo.auth | {KEY: key})

    other = client.post(url, json=set_temperature(22), headers=bo.auth | {KEY: key})

    assert first.status_code == 202
    problem_of(other, 422, "idempotency-key-reused")


@pytest.mark.parametrize(
    "key",
    [
        *GUESSABLE,
        "",
        "k" * 256,
        "tab\there-and-long-enough-to-pass",
        "ünïcödé-keys-are-refused-too",
    ],
)
@pytest.mark.parametrize("route", ["create", "join", "action"])
def test_a_key_too_short_or_outside_base64url_is_a_422_naming_the_header(
    client: FlaskClient, sql: psycopg.Connection, key: str, route: str
) -> None:
    arena_id, admin = create_arena(client)
    drive(client, arena_id, admin, "start")
    path, body, auth = {
        "create": (ARENAS, {"name": "Dish", "displayName": "Ada"}, {}),
        "join": (arena_path(arena_id, "/players"), {"displayName": "Bo"}, {}),
        "action": (arena_path(arena_id, "/actions"), set_temperature(), admin.auth),
    }[route]
    before = snapshot(sql, arena_id)

    response = client.post(path, json=body, headers=auth | {KEY: key})

    problem = problem_of(response, 422, "validation-failed")
    assert error_fields(problem) == [KEY]
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize(
    "key",
    [
        str(uuid.uuid4()),
        uuid.uuid4().hex,
        "Aa0_-" * 4 + "zz",  # 22 base64url characters, the shortest accepted
        "k" * 255,
    ],
    ids=["uuid", "uuid-hex", "shortest", "longest"],
)
def test_a_uuid_or_22_to_255_base64url_characters_is_accepted(
    client: FlaskClient, key: str
) -> None:
    arena_id, _ = create_arena(client)
    url = arena_path(arena_id, "/players")

    first = _send(client, url, {"displayName": "Bo"}, key)
    retry = _send(client, url, {"displayName": "Bo"}, key)

    assert first.status_code == 201
    assert retry.headers[REPLAYED] == "true"
    assert retry.get_json() == first.get_json()


def test_every_command_documents_the_key_as_a_secret_of_22_or_more_base64url_characters(
    client: FlaskClient,
) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    commands = [
        operation
        for path, item in spec["paths"].items()
        if path.startswith(ARENAS)
        for method, operation in item.items()
        if method in {"post", "patch", "delete"}
    ]

    assert len(commands) >= 8
    for operation in commands:
        (header,) = [p for p in operation["parameters"] if p["name"] == KEY]
        assert header["in"] == "header"
        assert header["schema"] == {
            "type": "string",
            "minLength": 22,
            "maxLength": 255,
            "pattern": "^[A-Za-z0-9_-]+$",
        }
        assert "secret" in header["description"]
        assert "scoped to the bearer token" in header["description"]
