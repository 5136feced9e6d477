"""Bearer tokens (401/403, stored only hashed) and Idempotency-Key replays, on real PostgreSQL."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

from tests.support.api import (
    ARENAS,
    Member,
    arena_path,
    arena_row,
    assert_versions_contiguous,
    bearer,
    create_arena,
    drive,
    events,
    idempotency_rows,
    join,
    new_key,
    players,
    problem_of,
    set_temperature,
    sha256,
    snapshot,
    totals,
    transition,
)
from tests.support.idempotency import stored_key_hash

pytestmark = pytest.mark.integration

REPLAYED = "Idempotent-Replayed"


def _running(client: FlaskClient) -> tuple[str, Member, Member]:
    arena_id, admin = create_arena(client)
    player = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, "start")
    return arena_id, admin, player


# --- 401 ----------------------------------------------------------------------------------------

_AUTHENTICATED = {
    # route → (method, path suffix (with {player}), body, path to a status accepting it)
    "remove": ("DELETE", "/players/{player}", None, ()),
    "start": ("POST", "/start", None, ()),
    "pause": ("POST", "/pause", None, ("start",)),
    "resume": ("POST", "/resume", None, ("start", "pause")),
    "stop": ("POST", "/stop", None, ("start",)),
    "config": ("PATCH", "/config", {"tickMillis": 300}, ()),
    "action": ("POST", "/actions", set_temperature(), ("start",)),
}


def _authorization(kind: str, client: FlaskClient, removed: Member) -> dict[str, str]:
    if kind == "missing":
        return {}
    if kind == "another-arena":
        _, stranger = create_arena(client, name="Elsewhere")
        return stranger.auth
    return {
        "no-token": {"Authorization": "Bearer"},
        "empty-token": {"Authorization": "Bearer "},
        "basic": {"Authorization": "Basic YWRhOnNlY3JldA=="},
        "raw-token": {"Authorization": removed.token},
        "unknown-token": bearer("definitely-not-a-token"),
        "removed-player": removed.auth,
    }[kind]


@pytest.mark.parametrize("route", list(_AUTHENTICATED))
@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "no-token",
        "empty-token",
        "basic",
        "raw-token",
        "unknown-token",
        "another-arena",
        "removed-player",
    ],
)
def test_missing_or_invalid_credentials_are_a_401_and_write_nothing(
    client: FlaskClient, sql: psycopg.Connection, route: str, kind: str
) -> None:
    method, suffix, body, path = _AUTHENTICATED[route]
    arena_id, admin = create_arena(client)
    bo = join(client, arena_id, "Bo")
    gone = join(client, arena_id, "Gone")
    left = client.delete(arena_path(arena_id, f"/players/{gone.id}"), headers=gone.auth)
    assert left.status_code == 200
    drive(client, arena_id, admin, *path)
    headers = _authorization(kind, client, gone)
    before = snapshot(sql, arena_id)

    response = client.open(
        arena_path(arena_id, suffix.format(player=bo.id)), method=method, json=body, headers=headers
    )

    problem_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(sql, arena_id) == before


# --- 403 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "path"),
    [("start", ()), ("pause", ("start",)), ("resume", ("start", "pause")), ("stop", ("start",))],
)
def test_a_player_changing_the_status_is_a_403_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, command: str, path: tuple[str, ...]
) -> None:
    arena_id, admin = create_arena(client)
    player = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, *path)
    before = snapshot(sql, arena_id)

    response = transition(client, arena_id, command, player)

    problem_of(response, 403, "forbidden")
    assert "WWW-Authenticate" not in response.headers
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("target", ["admin", "player"])
def test_a_player_removing_another_player_is_a_403_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, target: str
) -> None:
    arena_id, admin = create_arena(client)
    bo = join(client, arena_id, "Bo")
    cy = join(client, arena_id, "Cy")
    victim = admin if target == "admin" else cy
    before = snapshot(sql, arena_id)

    response = client.delete(arena_path(arena_id, f"/players/{victim.id}"), headers=bo.auth)

    problem_of(response, 403, "forbidden")
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("path", [(), ("start", "pause")], ids=["pending", "paused"])
def test_a_player_changing_the_config_is_a_403_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, path: tuple[str, ...]
) -> None:
    arena_id, admin = create_arena(client)
    player = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, *path)
    before = snapshot(sql, arena_id)

    response = client.patch(
        arena_path(arena_id, "/config"), json={"tickMillis": 300}, headers=player.auth
    )

    problem_of(response, 403, "forbidden")
    assert snapshot(sql, arena_id) == before


def test_a_token_is_only_good_for_its_own_arena(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    first, ada = create_arena(client)
    second, bea = create_arena(client, display_name="Bea")
    before = snapshot(sql, first)

    # Bea is an admin, but of the second arena only.
    response = transition(client, first, "start", bea)

    problem_of(response, 401, "unauthorized")
    assert snapshot(sql, first) == before
    assert transition(client, second, "start", bea).status_code == 200
    assert transition(client, first, "start", ada).status_code == 200


# --- tokens are stored hashed only --------------------------------------------------------------


def test_tokens_are_stored_only_as_their_sha256(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = create_arena(client, config={"width": 8})
    bo = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, "start")
    client.post(arena_path(arena_id, "/actions"), json=set_temperature(), headers=bo.auth)

    assert {(row[0], row[3]) for row in players(sql, arena_id)} == {
        (admin.id, sha256(admin.token)),
        (bo.id, sha256(bo.token)),
    }
    for token in (admin.token, bo.token):
        hits = sql.execute(
            "SELECT (SELECT count(*) FROM arenas a WHERE strpos(a::text, %(t)s) > 0)"
            " + (SELECT count(*) FROM players p WHERE strpos(p::text, %(t)s) > 0)"
            " + (SELECT count(*) FROM outbox o WHERE strpos(o::text, %(t)s) > 0)",
            {"t": token},
        ).fetchone()
        assert hits == (0,)


# --- idempotency: replays -----------------------------------------------------------------------


def _send(client: FlaskClient, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.open(path, method=method, json=body, headers=headers)


def test_replayed_create_answers_the_same_arena_and_token_and_creates_nothing(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    key = new_key()
    body = {"name": "Once only", "displayName": "Ada", "config": {"width": 16, "seed": 3}}
    reordered = {"config": {"seed": 3, "width": 16}, "displayName": "Ada", "name": "Once only"}

    first = client.post(ARENAS, json=body, headers={"Idempotency-Key": key})
    after_first = totals(sql)
    again = client.post(ARENAS, json=reordered, headers={"Idempotency-Key": key})

    assert first.status_code == again.status_code == 201
    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    arena_id = first.get_json()["id"]
    assert totals(sql) == after_first
    assert [e.type for e in events(sql, arena_id)] == ["ArenaCreated"]
    # The replayed token is the real one: it works.
    replayed = Member(arena_id, again.get_json()["player"]["token"], "ADMIN", "Ada")
    assert transition(client, arena_id, "start", replayed).status_code == 200


def _replay_cases(client: FlaskClient) -> dict[str, tuple[str, str, Any, dict[str, str], str]]:
    """name → (method, path, body, auth headers, arena id), each on an arena where it succeeds."""
    arena_id, admin, player = _running(client)
    pending_id, pending_admin = create_arena(client)
    paused_id, paused_admin = create_arena(client)
    drive(client, paused_id, paused_admin, "start", "pause")
    return {
        "join": ("POST", arena_path(arena_id, "/players"), {"displayName": "Cy"}, {}, arena_id),
        "leave": (
            "DELETE",
            arena_path(arena_id, f"/players/{player.id}"),
            None,
            player.auth,
            arena_id,
        ),
        "start": ("POST", arena_path(pending_id, "/start"), None, pending_admin.auth, pending_id),
        "resume": ("POST", arena_path(paused_id, "/resume"), None, paused_admin.auth, paused_id),
        "config": (
            "PATCH",
            arena_path(pending_id, "/config"),
            {"temperature": {"value": 25.0}, "tickMillis": 125},
            pending_admin.auth,
            pending_id,
        ),
        "action": (
            "POST",
            arena_path(arena_id, "/actions"),
            {"type": "SPAWN_ORGANISM", "payload": {"position": {"y": 1, "x": 2}, "kind": "FUNGI"}},
            admin.auth,
            arena_id,
        ),
    }


@pytest.mark.parametrize("case", ["join", "leave", "start", "resume", "config", "action"])
def test_same_key_and_request_replays_the_first_reply_and_writes_nothing_more(
    client: FlaskClient, sql: psycopg.Connection, case: str
) -> None:
    method, path, body, auth, arena_id = _replay_cases(client)[case]
    key = new_key()

    first = _send(client, method, path, body, auth | {"Idempotency-Key": key})
    after_first = snapshot(sql, arena_id)
    replies = [_send(client, method, path, body, auth | {"Idempotency-Key": key}) for _ in "ab"]

    assert 200 <= first.status_code < 300
    assert REPLAYED not in first.headers
    for again in replies:
        assert again.status_code == first.status_code
        assert again.headers[REPLAYED] == "true"
        assert again.get_json() == first.get_json()
    assert first.get_json()["version"] == arena_row(sql, arena_id).version
    assert snapshot(sql, arena_id) == after_first
    assert_versions_contiguous(sql, arena_id)


def test_replay_ignores_key_order_and_whitespace_of_the_json_body(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _, player = _running(client)
    key = new_key()
    url = arena_path(arena_id, "/actions")
    headers = player.auth | {"Idempotency-Key": key}

    first = client.post(
        url,
        data='{"type":"ADD_NUTRIENTS","payload":{"area":{"x":1,"y":2,"width":3,"height":1},'
        '"amount":2.5},"applyAtTick":4}',
        content_type="application/json",
        headers=headers,
    )
    after_first = snapshot(sql, arena_id)
    again = client.post(
        url,
        data='{ "applyAtTick": 4,\n "payload": { "amount": 2.5, "area": {"height": 1,'
        ' "width": 3, "y": 2, "x": 1} }, "type": "ADD_NUTRIENTS" }',
        content_type="application/json",
        headers=headers,
    )

    assert first.status_code == 202
    assert again.status_code == 202
    assert again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    assert snapshot(sql, arena_id) == after_first


def test_replay_answers_the_original_version_after_the_arena_moved_on(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin, player = _running(client)
    key = new_key()
    url = arena_path(arena_id, "/actions")
    headers = player.auth | {"Idempotency-Key": key}

    first = client.post(url, json=set_temperature(21), headers=headers)
    drive(client, arena_id, admin, "pause", "resume")
    client.post(url, json=set_temperature(22), headers=player.auth)
    moved_on = snapshot(sql, arena_id)
    again = client.post(url, json=set_temperature(21), headers=headers)

    assert first.get_json()["version"] == 4
    assert again.headers[REPLAYED] == "true"
    assert again.get_json() == first.get_json()
    assert snapshot(sql, arena_id) == moved_on
    assert [e.type for e in events(sql, arena_id)].count("ActionSubmitted") == 2


# --- idempotency: the same key with another request ----------------------------------------------


def test_same_key_with_a_different_request_is_a_422_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _, player = _running(client)
    other_id, _, _ = _running(client)
    key = new_key()
    url = arena_path(arena_id, "/actions")
    first = client.post(
        url, json=set_temperature(21), headers=player.auth | {"Idempotency-Key": key}
    )
    assert first.status_code == 202
    before, other_before = snapshot(sql, arena_id), snapshot(sql, other_id)

    def again(method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
        return _send(client, method, path, body, headers | {"Idempotency-Key": key})

    # All with the player's token: a key is scoped to the token it is sent with (another token's
    # keys, or none, are another scope: tests/integration/test_idempotency_scopes.py).
    mismatches = {
        "body": again("POST", url, set_temperature(22), player.auth),
        "extra field": again("POST", url, {**set_temperature(21), "applyAtTick": 1}, player.auth),
        "another arena": again(
            "POST", arena_path(other_id, "/actions"), set_temperature(21), player.auth
        ),
        "another route": again("POST", arena_path(arena_id, "/pause"), None, player.auth),
        "another method": again(
            "PATCH", arena_path(arena_id, "/config"), {"width": 9}, player.auth
        ),
    }

    for name, response in mismatches.items():
        assert response.status_code == 422, name
        problem_of(response, 422, "idempotency-key-reused")
        assert REPLAYED not in response.headers
    assert snapshot(sql, arena_id) == before
    assert snapshot(sql, other_id) == other_before
    # ... and the key still replays its own request.
    replay = client.post(
        url, json=set_temperature(21), headers=player.auth | {"Idempotency-Key": key}
    )
    assert replay.headers[REPLAYED] == "true"
    assert replay.get_json() == first.get_json()


# --- idempotency: errors are not remembered ------------------------------------------------------


def test_a_refused_request_is_not_remembered_so_its_key_can_be_retried(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = create_arena(client)
    player = join(client, arena_id, "Bo")
    url = arena_path(arena_id, "/actions")
    key = new_key()
    headers = player.auth | {"Idempotency-Key": key}
    records = idempotency_rows(sql)

    too_early = client.post(url, json=set_temperature(), headers=headers)  # still PENDING
    problem_of(too_early, 409, "illegal-transition")
    assert idempotency_rows(sql) == records
    drive(client, arena_id, admin, "start")
    accepted = client.post(url, json=set_temperature(), headers=headers)
    replayed = client.post(url, json=set_temperature(), headers=headers)

    assert accepted.status_code == 202
    assert REPLAYED not in accepted.headers
    assert replayed.headers[REPLAYED] == "true"
    assert replayed.get_json() == accepted.get_json()
    assert idempotency_rows(sql) == records + 1
    assert [e.type for e in events(sql, arena_id)][-1] == "ActionSubmitted"
    assert_versions_contiguous(sql, arena_id)


def test_a_key_first_sent_with_an_invalid_body_works_for_a_corrected_one(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = create_arena(client)
    url = arena_path(arena_id, "/players")
    key = new_key()
    before = snapshot(sql, arena_id)

    invalid = client.post(url, json={"displayName": ""}, headers={"Idempotency-Key": key})
    malformed = client.post(
        url, data="{", content_type="application/json", headers={"Idempotency-Key": key}
    )
    taken = client.post(url, json={"displayName": "ada"}, headers={"Idempotency-Key": key})
    assert snapshot(sql, arena_id) == before
    corrected = client.post(url, json={"displayName": "Bo"}, headers={"Idempotency-Key": key})

    assert (invalid.status_code, malformed.status_code, taken.status_code) == (422, 400, 409)
    assert corrected.status_code == 201
    assert REPLAYED not in corrected.headers
    assert [p[1] for p in players(sql, arena_id)] == ["Ada", "Bo"]


def test_an_expired_key_is_forgotten_and_may_be_used_again(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _, player = _running(client)
    url = arena_path(arena_id, "/actions")
    key = new_key()
    headers = player.auth | {"Idempotency-Key": key}
    first = client.post(url, json=set_temperature(21), headers=headers)
    sql.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key_hash = %s",
        (stored_key_hash(key, player.token),),
    )
    records = idempotency_rows(sql)

    other = client.post(url, json=set_temperature(22), headers=headers)
    replay = client.post(url, json=set_temperature(22), headers=headers)
    stale = client.post(url, json=set_temperature(21), headers=headers)

    assert first.status_code == other.status_code == 202
    assert REPLAYED not in other.headers
    assert other.get_json()["version"] == first.get_json()["version"] + 1
    assert replay.headers[REPLAYED] == "true"
    assert replay.get_json() == other.get_json()
    problem_of(stale, 422, "idempotency-key-reused")
    assert idempotency_rows(sql) == records  # the expired record was replaced, not added to
    assert [e.type for e in events(sql, arena_id)][-2:] == ["ActionSubmitted"] * 2


# --- idempotency: what the table holds -----------------------------------------------------------


def test_the_idempotency_table_holds_no_key_and_no_token(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    create_key, join_key = new_key(), new_key()
    opened = client.post(
        ARENAS,
        json={"name": "Sealed", "displayName": "Ada"},
        headers={"Idempotency-Key": create_key},
    )
    arena_id = opened.get_json()["id"]
    joined = client.post(
        arena_path(arena_id, "/players"),
        json={"displayName": "Bo"},
        headers={"Idempotency-Key": join_key},
    )
    secrets = [
        create_key,
        join_key,
        opened.get_json()["player"]["token"],
        joined.get_json()["player"]["token"],
    ]

    for key, reply in ((create_key, opened), (join_key, joined)):
        row = sql.execute(
            "SELECT key_hash, fingerprint, status_code, sealed_body, t::text"
            " FROM idempotency_keys t WHERE key_hash = %s",
            (stored_key_hash(key),),
        ).fetchone()
        assert row is not None
        key_hash, fingerprint, status_code, sealed_body, as_text = row
        assert status_code == reply.status_code
        assert sha256(key) not in as_text  # keyed: a guessable key is not found by hashing it
        assert fingerprint not in (key, sha256(key), key_hash)
        sealed = bytes(sealed_body)
        for secret in secrets:
            assert secret not in as_text
            assert secret.encode() not in sealed
            assert secret.encode().hex() not in as_text
        assert b"token" not in sealed  # sealed, not merely the JSON without the token
    for secret in secrets:
        (leaks,) = sql.execute(
            "SELECT count(*) FROM idempotency_keys t WHERE strpos(t::text, %(s)s) > 0"
            " OR position(convert_to(%(s)s, 'UTF8') IN sealed_body) > 0",
            {"s": secret},
        ).fetchone()
        assert leaks == 0


def test_a_remembered_reply_altered_in_the_database_is_refused_not_replayed(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    key = new_key()
    body = {"name": "Tampered", "displayName": "Ada"}
    first = client.post(ARENAS, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    sql.execute(
        "UPDATE idempotency_keys"  # one bit of the ciphertext flipped
        " SET sealed_body = set_byte(sealed_body, 0, get_byte(sealed_body, 0) # 1)"
        " WHERE key_hash = %s",
        (stored_key_hash(key),),
    )

    again = client.post(ARENAS, json=body, headers={"Idempotency-Key": key})

    problem_of(again, 422, "idempotency-key-reused")
