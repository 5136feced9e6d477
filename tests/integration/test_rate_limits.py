"""Rate limits per client address (RATE_LIMIT_*), counted in the real read-model Redis: creating,
joining and failing to authenticate, each refused past its limit with a 429 problem that says
when to retry, writing nothing; other addresses unaffected; open when the storage is away."""

from __future__ import annotations

import dataclasses
import logging

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from werkzeug.test import TestResponse

from arena import create_app
from arena.http.rate_limits import REFUSALS, Limited
from arena.readmodel.keys import rate_limits_prefix
from arena.settings import Settings
from tests.support.api import (
    ARENAS,
    arena_path,
    bearer,
    create_arena,
    join,
    problem_of,
    snapshot,
    totals,
    transition,
)
from tests.support.clients import client_at, new_address

pytestmark = pytest.mark.integration

LIMIT = 3
WINDOW_SECONDS = 60
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the storage is away
NEW_ARENA = {"name": "Limited dish", "displayName": "Ada"}


@pytest.fixture(scope="module")
def limited_app(settings: Settings, app: Flask) -> Flask:
    """The same services behind an API that allows each address LIMIT of everything a minute."""
    return _app(settings)


def _app(settings: Settings, **overrides: str) -> Flask:
    limited = create_app(
        dataclasses.replace(
            settings,
            rate_limit_create=f"{LIMIT}/minute",
            rate_limit_join=f"{LIMIT}/minute",
            rate_limit_failed_auth=f"{LIMIT}/minute",
            **overrides,
        )
    )
    limited.config["TESTING"] = True
    return limited


def _create(client: FlaskClient) -> TestResponse:
    return client.post(ARENAS, json=NEW_ARENA)


def _join(client: FlaskClient, arena_id: str, name: str) -> TestResponse:
    return client.post(arena_path(arena_id, "/players"), json={"displayName": name})


def _assert_refused(response: TestResponse) -> None:
    """A 429 problem whose Retry-After is a whole number of seconds within the window."""
    problem_of(response, 429, "too-many-requests")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= WINDOW_SECONDS


def test_creates_past_the_limit_are_429_and_write_nothing(
    limited_app: Flask, sql: psycopg.Connection
) -> None:
    client = client_at(limited_app)
    assert [_create(client).status_code for _ in range(LIMIT)] == [201] * LIMIT
    before = totals(sql)

    refused = _create(client)

    _assert_refused(refused)
    assert refused.get_json()["detail"].startswith(REFUSALS[Limited.CREATE])
    assert totals(sql) == before  # no arena, player, outbox row or idempotency record


def test_another_address_still_creates_while_one_is_refused(limited_app: Flask) -> None:
    busy = client_at(limited_app)
    for _ in range(LIMIT):
        _create(busy)
    _assert_refused(_create(busy))

    assert _create(client_at(limited_app)).status_code == 201


def test_joins_past_the_limit_are_429_and_write_nothing(
    limited_app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = create_arena(client)
    joiner = client_at(limited_app)
    joined = [_join(joiner, arena_id, f"Bo {n}").status_code for n in range(LIMIT)]
    assert joined == [201] * LIMIT
    before = snapshot(sql, arena_id)

    _assert_refused(_join(joiner, arena_id, "Bo again"))

    assert snapshot(sql, arena_id) == before
    assert _join(client_at(limited_app), arena_id, "Cy").status_code == 201


def test_creates_and_joins_count_apart(limited_app: Flask) -> None:
    client = client_at(limited_app)
    created = [_create(client) for _ in range(LIMIT)]
    arena_id = created[0].get_json()["id"]

    assert _join(client, arena_id, "Bo").status_code == 201


def test_bad_tokens_get_429_but_never_lock_a_valid_token_out_of_their_address(
    limited_app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = create_arena(client)
    shared = new_address()  # a NAT: the guesser and the admin look alike
    guesser = client_at(limited_app, shared)
    start = arena_path(arena_id, "/start")
    failures = [
        guesser.post(start),  # no token at all
        guesser.post(start, headers=bearer("a-guess")),
        guesser.post(start, headers=bearer("another-guess")),
    ]
    assert [response.status_code for response in failures] == [401] * LIMIT
    before = snapshot(sql, arena_id)

    refused = guesser.post(start, headers=bearer("yet-another-guess"))

    _assert_refused(refused)
    assert refused.get_json()["detail"].startswith(REFUSALS[Limited.FAILED_AUTH])
    assert snapshot(sql, arena_id) == before
    # Every command that needs a token answers a failure from there with 429, not only the one
    # guessed at...
    _assert_refused(guesser.patch(arena_path(arena_id, "/config"), json={}))
    # ...while a valid token from the very same address is accepted, on any of them.
    admin_there = client_at(limited_app, shared)
    assert transition(admin_there, arena_id, "start", admin).status_code == 200
    assert transition(admin_there, arena_id, "pause", admin).status_code == 200
    _assert_refused(guesser.post(arena_path(arena_id, "/resume")))  # and the guesser still waits


def test_successful_and_forbidden_commands_do_not_count_as_failed_authentications(
    limited_app: Flask, client: FlaskClient
) -> None:
    arena_id, admin = create_arena(client)
    player = join(client, arena_id, "Bo")
    at = client_at(limited_app)
    config = arena_path(arena_id, "/config")

    for tick_millis in range(300, 300 + 2 * LIMIT):  # past the limit, all authenticated
        assert (
            at.patch(config, json={"tickMillis": tick_millis}, headers=admin.auth).status_code
            == 200
        )
    for _ in range(2 * LIMIT):  # a valid token, not allowed: no guess
        assert transition(at, arena_id, "start", player).status_code == 403
    for _ in range(LIMIT):  # none of the above counted: LIMIT failures are still answered 401
        assert at.post(arena_path(arena_id, "/start")).status_code == 401

    _assert_refused(at.post(arena_path(arena_id, "/start")))


def test_the_counters_live_under_the_read_model_prefix(
    limited_app: Flask, settings: Settings, redis_client: Redis
) -> None:
    address = new_address()
    _create(client_at(limited_app, address))

    keys = list(redis_client.scan_iter(match=f"{rate_limits_prefix(settings.read_model_prefix)}:*"))

    assert any(address in key.decode() for key in keys), keys


def test_the_spec_names_429_with_retry_after_on_exactly_the_limited_operations(
    limited_app: Flask,
) -> None:
    spec = limited_app.test_client().get("/api/v1/openapi.json").get_json()

    limited = {
        f"{method.upper()} {path.removeprefix(ARENAS)}": operation["responses"]["429"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method != "parameters" and "429" in operation["responses"]
    }

    assert set(limited) == {
        "POST ",
        "POST /{arena_id}/players",
        "DELETE /{arena_id}/players/{player_id}",
        "POST /{arena_id}/start",
        "POST /{arena_id}/pause",
        "POST /{arena_id}/resume",
        "POST /{arena_id}/stop",
        "PATCH /{arena_id}/config",
        "POST /{arena_id}/actions",
        # Not rate limits: a cap on the streams a client holds open (arena/http/streams.py).
        "GET /{arena_id}/stream",
        "GET /{arena_id}/stats/stream",
    }
    assert all(response["headers"]["Retry-After"]["required"] for response in limited.values())


def test_without_its_storage_the_limiter_fails_open_and_says_so_once(
    settings: Settings, app: Flask, sql: psycopg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    away = _app(settings, rate_limit_storage_url=NOWHERE)
    client = client_at(away)
    caplog.set_level(logging.WARNING, logger="flask-limiter")
    before = totals(sql)

    created = [_create(client) for _ in range(LIMIT)]

    assert [response.status_code for response in created] == [201] * LIMIT
    assert totals(sql)[0] == before[0] + LIMIT
    warnings = [
        r for r in caplog.records if r.name == "flask-limiter" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    # Meanwhile each process counts in its own memory: the limit still holds there.
    _assert_refused(_create(client))
