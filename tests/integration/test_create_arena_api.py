"""POST /api/v1/arenas against real PostgreSQL: the arena and its outbox row in one transaction."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from flask.testing import FlaskClient

from arena.domain.model import hash_token

pytestmark = pytest.mark.integration


def _counts(sql: psycopg.Connection) -> tuple[int, int, int]:
    row = sql.execute(
        "SELECT (SELECT count(*) FROM arenas), (SELECT count(*) FROM players),"
        " (SELECT count(*) FROM outbox)"
    ).fetchone()
    assert row is not None
    return row


def test_create_writes_arena_creator_and_outbox_event_together(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    response = client.post(
        "/api/v1/arenas",
        json={"name": "Agar plate", "displayName": "Ada", "config": {"width": 32, "seed": 7}},
        headers={"X-Correlation-ID": "corr-123"},
    )

    assert response.status_code == 201
    body = response.get_json()
    arena_id, token = body["id"], body["player"]["token"]
    assert body["version"] == 1
    assert body["player"]["role"] == "ADMIN"
    assert response.headers["Location"].endswith(f"/api/v1/arenas/{arena_id}")

    arena = sql.execute(
        "SELECT name, status, version, config FROM arenas WHERE id = %s", (arena_id,)
    ).fetchone()
    assert arena is not None
    name, status, version, config = arena
    assert (name, status, version) == ("Agar plate", "PENDING", 1)
    assert config["width"] == 32 and config["height"] == 64 and config["seed"] == 7

    players = sql.execute(
        "SELECT id, display_name, role, token_hash FROM players WHERE arena_id = %s", (arena_id,)
    ).fetchall()
    assert [(str(p[0]), p[1], p[2]) for p in players] == [(body["player"]["id"], "Ada", "ADMIN")]
    assert players[0][3] == hash_token(token) != token

    outbox = sql.execute(
        "SELECT event_id, event_type, aggregate_version, envelope, published_at IS NULL"
        " FROM outbox WHERE aggregate_id = %s",
        (arena_id,),
    ).fetchall()
    assert len(outbox) == 1
    event_id, event_type, aggregate_version, envelope, pending = outbox[0]
    assert (event_type, aggregate_version) == ("ArenaCreated", 1)
    assert envelope["eventId"] == str(event_id)
    assert envelope["eventType"] == "ArenaCreated"
    assert envelope["aggregateType"] == "Arena"
    assert envelope["aggregateId"] == arena_id
    assert envelope["aggregateVersion"] == 1
    assert envelope["schemaVersion"] == 1
    assert envelope["correlationId"] == "corr-123"
    uuid.UUID(envelope["causationId"])
    assert envelope["occurredAt"]
    assert envelope["payload"]["name"] == "Agar plate"
    assert envelope["payload"]["config"] == config
    assert envelope["payload"]["creator"]["displayName"] == "Ada"
    assert token not in str(envelope)
    assert pending


def test_omitted_config_gets_every_default_and_a_seed(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    response = client.post("/api/v1/arenas", json={"name": "Defaults", "displayName": "Bo"})

    assert response.status_code == 201
    (config,) = sql.execute(
        "SELECT config FROM arenas WHERE id = %s", (response.get_json()["id"],)
    ).fetchone()
    assert set(config) == {
        "tickMillis",
        "width",
        "height",
        "diffusionRate",
        "mutationRate",
        "maxOrganisms",
        "snapshotEveryTicks",
        "temperature",
        "maxPlayers",
        "seed",
    }
    assert config["temperature"] == {"value": 37.0, "unit": "C"}
    assert isinstance(config["seed"], int)


def test_malformed_json_is_a_400_problem_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    before = _counts(sql)

    response = client.post(
        "/api/v1/arenas", data='{"name": "Broken', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/malformed-json"
    assert problem["status"] == 400
    assert _counts(sql) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"displayName": "Ada"}, "name"),
        ({"name": "ab", "displayName": "Ada"}, "name"),
        ({"name": "x" * 81, "displayName": "Ada"}, "name"),
        ({"name": "Plate"}, "displayName"),
        ({"name": "Plate", "displayName": ""}, "displayName"),
        ({"name": "Plate", "displayName": "Ada", "config": {"width": 0}}, "config.width"),
        ({"name": "Plate", "displayName": "Ada", "config": {"height": 513}}, "config.height"),
        ({"name": "Plate", "displayName": "Ada", "config": {"tickMillis": 0}}, "config.tickMillis"),
        (
            {"name": "Plate", "displayName": "Ada", "config": {"mutationRate": 1.5}},
            "config.mutationRate",
        ),
        (
            {"name": "Plate", "displayName": "Ada", "config": {"temperature": {"unit": "F"}}},
            "config.temperature.unit",
        ),
        (
            {"name": "Plate", "displayName": "Ada", "config": {"temperature": {"value": 151}}},
            "config.temperature.value",
        ),
        ({"name": "Plate", "displayName": "Ada", "config": {"width": "64"}}, "config.width"),
        ({"name": "Plate", "displayName": "Ada", "config": "big"}, "config"),
        ({"name": "Plate", "displayName": "Ada", "colour": "red"}, "colour"),
        (["not", "an", "object"], "body"),
    ],
)
def test_invalid_field_is_a_422_problem_naming_it_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, body: object, field: str
) -> None:
    before = _counts(sql)

    response = client.post("/api/v1/arenas", json=body)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/validation-failed"
    assert field in [error["field"] for error in problem["errors"]]
    assert field in problem["detail"]
    assert _counts(sql) == before


def test_name_of_only_spaces_is_refused_by_the_domain(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    before = _counts(sql)

    response = client.post("/api/v1/arenas", json={"name": "     ", "displayName": "Ada"})

    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == ["name"]
    assert _counts(sql) == before
