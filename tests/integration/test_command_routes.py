"""The command routes against real PostgreSQL: what each success commits, and that errors don't.

Every accepted command changes its arena's row(s), bumps `version` by one and writes one outbox
event in the same transaction; every refused one (400, 404, 409, 413, 415, 422) writes nothing:
the arena, its players, its outbox rows and the database totals (idempotency records included)
are the same before and after.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from flask.testing import FlaskClient

from arena.domain.model import hash_token
from tests.support.api import (
    Member,
    arena_path,
    arena_row,
    assert_versions_contiguous,
    create_arena,
    drive,
    error_fields,
    events,
    join,
    last_event,
    new_key,
    players,
    problem_of,
    set_temperature,
    snapshot,
    transition,
)

pytestmark = pytest.mark.integration

WIDTH, HEIGHT = 8, 4  # a small, non-square grid, so x/y and width/height mix-ups show
GRID = {"width": WIDTH, "height": HEIGHT}
MAX_BODY_BYTES = 64 * 1024


def _arena(client: FlaskClient, *, config: dict[str, Any] | None = None) -> tuple[str, Member]:
    return create_arena(client, config={**GRID, **(config or {})})


def _running(client: FlaskClient) -> tuple[str, Member, Member]:
    """A RUNNING arena with its admin and one PLAYER."""
    arena_id, admin = _arena(client)
    player = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, "start")
    return arena_id, admin, player


# --- join ---------------------------------------------------------------------------------------


def test_join_adds_a_player_and_records_player_joined(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = _arena(client)

    response = client.post(
        arena_path(arena_id, "/players"),
        json={"displayName": "  Bo  "},
        headers={"X-Correlation-ID": "corr-join"},
    )

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"player", "version"}
    assert body["version"] == 2
    player = body["player"]
    assert player["role"] == "PLAYER"
    uuid.UUID(player["id"])
    assert len(player["token"]) >= 32
    assert players(sql, arena_id) == [
        (admin.id, "Ada", "ADMIN", hash_token(admin.token)),
        (player["id"], "Bo", "PLAYER", hash_token(player["token"])),
    ]
    assert arena_row(sql, arena_id).version == 2
    event = last_event(sql, arena_id)
    assert (event.version, event.type) == (2, "PlayerJoined")
    assert event.payload["playerId"] == player["id"]
    assert event.payload["displayName"] == "Bo"
    assert event.payload["role"] == "PLAYER"
    assert event.payload["joinedAt"] == event.envelope["occurredAt"]
    assert event.envelope["correlationId"] == "corr-join"
    assert event.envelope["causationId"] != events(sql, arena_id)[0].envelope["causationId"]
    assert player["token"] not in str(event.envelope)
    assert_versions_contiguous(sql, arena_id)


@pytest.mark.parametrize("status_path", [(), ("start",), ("start", "pause")])
def test_join_is_accepted_until_the_arena_finishes(
    client: FlaskClient, sql: psycopg.Connection, status_path: tuple[str, ...]
) -> None:
    arena_id, admin = _arena(client)
    drive(client, arena_id, admin, *status_path)

    response = client.post(arena_path(arena_id, "/players"), json={"displayName": "Late"})

    assert response.status_code == 201
    assert last_event(sql, arena_id).type == "PlayerJoined"
    assert_versions_contiguous(sql, arena_id)


def test_joiner_of_an_arena_without_admin_becomes_its_admin(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = _arena(client)
    left = client.delete(arena_path(arena_id, f"/players/{admin.id}"), headers=admin.auth)
    assert left.status_code == 200
    assert players(sql, arena_id) == []

    newcomer = join(client, arena_id, "Cy")
    second = join(client, arena_id, "Di")

    assert (newcomer.role, second.role) == ("ADMIN", "PLAYER")
    assert [(p[1], p[2]) for p in players(sql, arena_id)] == [("Cy", "ADMIN"), ("Di", "PLAYER")]
    assert [e.payload["role"] for e in events(sql, arena_id)[-2:]] == ["ADMIN", "PLAYER"]
    # ... and the new admin governs the arena.
    assert transition(client, arena_id, "start", newcomer).status_code == 200


def test_a_display_name_is_free_again_once_its_player_left(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = _arena(client)
    bo = join(client, arena_id, "Bo")
    left = client.delete(arena_path(arena_id, f"/players/{bo.id}"), headers=bo.auth)
    rejoined = client.post(arena_path(arena_id, "/players"), json={"displayName": "BO"})

    assert (left.status_code, rejoined.status_code) == (200, 201)
    assert [p[1] for p in players(sql, arena_id)] == ["Ada", "BO"]


# --- leave / remove -----------------------------------------------------------------------------


def test_player_leaves_on_its_own(client: FlaskClient, sql: psycopg.Connection) -> None:
    arena_id, admin = _arena(client)
    bo = join(client, arena_id, "Bo")

    response = client.delete(arena_path(arena_id, f"/players/{bo.id}"), headers=bo.auth)

    assert response.status_code == 200
    assert response.get_json() == {"version": 3}
    assert [p[0] for p in players(sql, arena_id)] == [admin.id]
    assert arena_row(sql, arena_id).version == 3
    event = last_event(sql, arena_id)
    assert (event.version, event.type) == (3, "PlayerLeft")
    assert event.payload["playerId"] == bo.id
    assert event.payload["displayName"] == "Bo"
    assert event.payload["removedBy"] is None
    assert event.payload["leftAt"] == event.envelope["occurredAt"]


@pytest.mark.parametrize("status_path", [(), ("start",), ("start", "pause")])
def test_admin_removes_a_player(
    client: FlaskClient, sql: psycopg.Connection, status_path: tuple[str, ...]
) -> None:
    arena_id, admin = _arena(client)
    bo = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, *status_path)
    version = arena_row(sql, arena_id).version

    response = client.delete(arena_path(arena_id, f"/players/{bo.id}"), headers=admin.auth)

    assert response.status_code == 200
    assert response.get_json() == {"version": version + 1}
    assert [p[0] for p in players(sql, arena_id)] == [admin.id]
    event = last_event(sql, arena_id)
    assert (event.version, event.type) == (version + 1, "PlayerLeft")
    assert event.payload["playerId"] == bo.id
    assert event.payload["removedBy"] == admin.id
    # The removed player's token no longer opens the arena.
    denied = client.post(arena_path(arena_id, "/actions"), json=set_temperature(), headers=bo.auth)
    problem_of(denied, 401, "unauthorized")


def test_the_lone_admin_can_leave_an_arena_it_is_alone_in(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = _arena(client)

    response = client.delete(arena_path(arena_id, f"/players/{admin.id}"), headers=admin.auth)

    assert response.status_code == 200
    assert response.get_json() == {"version": 2}
    assert players(sql, arena_id) == []
    assert last_event(sql, arena_id).type == "PlayerLeft"


# --- lifecycle ----------------------------------------------------------------------------------

_LIFECYCLE = [
    # (path to the starting status, transition, new status, event type, timestamp field)
    ((), "start", "RUNNING", "ArenaStarted", "startedAt"),
    (("start",), "pause", "PAUSED", "ArenaPaused", "pausedAt"),
    (("start", "pause"), "resume", "RUNNING", "ArenaResumed", "resumedAt"),
    ((), "stop", "FINISHED", "ArenaStopped", "finishedAt"),
    (("start",), "stop", "FINISHED", "ArenaStopped", "finishedAt"),
    (("start", "pause"), "stop", "FINISHED", "ArenaStopped", "finishedAt"),
]


@pytest.mark.parametrize(
    ("path", "command", "status", "event_type", "time_field"),
    _LIFECYCLE,
    ids=[f"{'-'.join(p) or 'pending'}-{c}" for p, c, *_ in _LIFECYCLE],
)
def test_transition_changes_status_and_records_its_event(
    client: FlaskClient,
    sql: psycopg.Connection,
    path: tuple[str, ...],
    command: str,
    status: str,
    event_type: str,
    time_field: str,
) -> None:
    arena_id, admin = _arena(client)
    drive(client, arena_id, admin, *path)
    version = len(path) + 1

    response = transition(client, arena_id, command, admin)

    assert response.status_code == 200
    assert response.get_json() == {"status": status, "version": version + 1}
    row = arena_row(sql, arena_id)
    assert (row.status, row.version, row.tick) == (status, version + 1, 0)
    assert row.started == (status == "RUNNING" or "start" in path)
    assert row.finished == (status == "FINISHED")
    event = last_event(sql, arena_id)
    assert (event.version, event.type) == (version + 1, event_type)
    assert event.payload == {
        "status": status,
        "tick": 0,
        time_field: event.envelope["occurredAt"],
    }
    assert_versions_contiguous(sql, arena_id)


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status_path", [(), ("start", "pause")])
def test_patch_config_merges_the_changes_and_records_the_whole_config(
    client: FlaskClient, sql: psycopg.Connection, status_path: tuple[str, ...]
) -> None:
    arena_id, admin = _arena(client, config={"seed": 11})
    drive(client, arena_id, admin, *status_path)
    version = len(status_path) + 1
    before = arena_row(sql, arena_id).config

    response = client.patch(
        arena_path(arena_id, "/config"),
        json={"tickMillis": 250, "temperature": {"value": 42.5}, "diffusionRate": 0.5},
        headers=admin.auth,
    )

    assert response.status_code == 200
    assert response.get_json() == {"version": version + 1}
    expected = before | {
        "tickMillis": 250,
        "temperature": {"value": 42.5, "unit": "C"},
        "diffusionRate": 0.5,
    }
    row = arena_row(sql, arena_id)
    assert row.config == expected
    assert row.version == version + 1
    assert row.status == ("PENDING" if not status_path else "PAUSED")
    event = last_event(sql, arena_id)
    assert (event.version, event.type) == (version + 1, "ArenaConfigUpdated")
    assert event.payload["config"] == expected
    assert event.payload["changes"] == ["diffusionRate", "temperature", "tickMillis"]
    assert_versions_contiguous(sql, arena_id)


def test_patch_event_lists_only_the_settings_whose_value_changed(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    # docs/events.md, ArenaConfigUpdated.changes: "The settings whose value changed, sorted."
    arena_id, admin = _arena(client)

    response = client.patch(
        arena_path(arena_id, "/config"), json={"width": 16, "height": HEIGHT}, headers=admin.auth
    )

    assert response.status_code == 200
    event = last_event(sql, arena_id)
    assert event.type == "ArenaConfigUpdated"
    assert event.payload["changes"] == ["width"]


@pytest.mark.parametrize(
    "changes",
    [{"width": WIDTH}, {"width": WIDTH, "height": HEIGHT}, {"temperature": {"unit": "C"}}],
)
def test_patch_changing_nothing_answers_the_same_version_and_records_nothing(
    client: FlaskClient, sql: psycopg.Connection, changes: dict[str, Any]
) -> None:
    arena_id, admin = _arena(client)
    before = snapshot(sql, arena_id)

    response = client.patch(arena_path(arena_id, "/config"), json=changes, headers=admin.auth)

    assert response.status_code == 200
    assert response.get_json() == {"version": 1}
    assert snapshot(sql, arena_id) == before


# --- actions ------------------------------------------------------------------------------------

_ACTIONS = [
    pytest.param(
        {"type": "ADD_NUTRIENTS", "payload": {"area": GRID | {"x": 0, "y": 0}, "amount": 2}},
        {"area": GRID | {"x": 0, "y": 0}, "amount": 2.0},
        id="nutrients-whole-grid",
    ),
    pytest.param(
        {
            "type": "ADD_NUTRIENTS",
            "payload": {
                "area": {"x": WIDTH - 1, "y": HEIGHT - 1, "width": 1, "height": 1},
                "amount": 0.25,
            },
        },
        {"area": {"x": WIDTH - 1, "y": HEIGHT - 1, "width": 1, "height": 1}, "amount": 0.25},
        id="nutrients-last-cell",
    ),
    pytest.param(
        {
            "type": "DROP_ANTIBIOTIC",
            "payload": {
                "area": {"x": 2, "y": 1, "width": WIDTH - 2, "height": HEIGHT - 1},
                "kind": "B",
                "concentration": 0.75,
            },
        },
        {
            "area": {"x": 2, "y": 1, "width": WIDTH - 2, "height": HEIGHT - 1},
            "kind": "B",
            "concentration": 0.75,
        },
        id="antibiotic-to-the-corner",
    ),
    pytest.param(
        {"type": "SET_TEMPERATURE", "payload": {"temperature": {"value": 30}}},
        {"temperature": {"value": 30.0, "unit": "C"}},
        id="temperature-default-unit",
    ),
    pytest.param(
        {"type": "SET_TEMPERATURE", "payload": {"temperature": {"value": -50, "unit": "C"}}},
        {"temperature": {"value": -50.0, "unit": "C"}},
        id="temperature-lowest",
    ),
    pytest.param(
        {"type": "SET_TEMPERATURE", "payload": {"temperature": {"value": 150.0}}},
        {"temperature": {"value": 150.0, "unit": "C"}},
        id="temperature-highest",
    ),
    pytest.param(
        {"type": "SPAWN_ORGANISM", "payload": {"kind": "FUNGI", "position": {"x": 0, "y": 0}}},
        {"kind": "FUNGI", "position": {"x": 0, "y": 0}},
        id="spawn-origin",
    ),
    pytest.param(
        {
            "type": "SPAWN_ORGANISM",
            "payload": {"kind": "PHAGE", "position": {"x": WIDTH - 1, "y": HEIGHT - 1}},
        },
        {"kind": "PHAGE", "position": {"x": WIDTH - 1, "y": HEIGHT - 1}},
        id="spawn-far-corner",
    ),
]


@pytest.mark.parametrize(("body", "recorded_payload"), _ACTIONS)
def test_player_submits_an_action_for_the_next_tick(
    client: FlaskClient,
    sql: psycopg.Connection,
    body: dict[str, Any],
    recorded_payload: dict[str, Any],
) -> None:
    arena_id, _, player = _running(client)
    before = arena_row(sql, arena_id)
    roster = players(sql, arena_id)

    response = client.post(arena_path(arena_id, "/actions"), json=body, headers=player.auth)

    assert response.status_code == 202
    accepted = response.get_json()
    assert set(accepted) == {"actionId", "applyAtTick", "version"}
    uuid.UUID(accepted["actionId"])
    assert accepted["applyAtTick"] == 1
    assert accepted["version"] == 4
    after = arena_row(sql, arena_id)
    assert after.version == 4
    assert (after.status, after.tick, after.config) == (before.status, before.tick, before.config)
    assert players(sql, arena_id) == roster
    event = last_event(sql, arena_id)
    assert (event.version, event.type) == (4, "ActionSubmitted")
    assert event.payload["actionId"] == accepted["actionId"]
    assert event.payload["playerId"] == player.id
    assert event.payload["type"] == body["type"]
    assert event.payload["applyAtTick"] == 1
    assert event.payload["payload"] == recorded_payload
    assert event.payload["submittedAt"] == event.envelope["occurredAt"]
    assert_versions_contiguous(sql, arena_id)


def test_admin_submits_an_action_at_a_chosen_tick_while_paused(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin, _ = _running(client)
    drive(client, arena_id, admin, "pause")

    response = client.post(
        arena_path(arena_id, "/actions"),
        json={**set_temperature(20), "applyAtTick": 7},
        headers=admin.auth,
    )

    assert response.status_code == 202
    assert response.get_json()["applyAtTick"] == 7
    event = last_event(sql, arena_id)
    assert (event.type, event.payload["applyAtTick"], event.payload["playerId"]) == (
        "ActionSubmitted",
        7,
        admin.id,
    )
    assert arena_row(sql, arena_id).status == "PAUSED"


def test_default_and_explicit_apply_at_tick_follow_the_current_tick(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _, player = _running(client)
    sql.execute("UPDATE arenas SET tick = 5 WHERE id = %s", (arena_id,))  # as the simulation would
    url = arena_path(arena_id, "/actions")

    default = client.post(url, json=set_temperature(), headers=player.auth)
    before = snapshot(sql, arena_id)
    current = client.post(url, json={**set_temperature(), "applyAtTick": 5}, headers=player.auth)
    after_current = snapshot(sql, arena_id)
    following = client.post(url, json={**set_temperature(), "applyAtTick": 6}, headers=player.auth)

    assert default.status_code == 202
    assert default.get_json()["applyAtTick"] == 6
    assert error_fields(problem_of(current, 422, "validation-failed")) == ["applyAtTick"]
    assert after_current == before
    assert following.status_code == 202
    assert following.get_json()["applyAtTick"] == 6


# === errors: each writes nothing ================================================================


def _routes(arena_id: str, player_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every command route on an arena, with a valid body where it takes one."""
    return [
        ("POST", arena_path(arena_id, "/players"), {"displayName": "Newcomer"}),
        ("DELETE", arena_path(arena_id, f"/players/{player_id}"), None),
        ("POST", arena_path(arena_id, "/start"), None),
        ("POST", arena_path(arena_id, "/pause"), None),
        ("POST", arena_path(arena_id, "/resume"), None),
        ("POST", arena_path(arena_id, "/stop"), None),
        ("PATCH", arena_path(arena_id, "/config"), {"tickMillis": 300}),
        ("POST", arena_path(arena_id, "/actions"), set_temperature()),
    ]


ROUTE_NAMES = ["join", "remove", "start", "pause", "resume", "stop", "config", "action"]


def _ready_for(client: FlaskClient, route: str) -> tuple[str, Member, Member]:
    """An arena (admin, player) in a status where `route`'s valid request would be accepted,
    so a refusal can only come from what is being tested."""
    arena_id, admin = _arena(client)
    player = join(client, arena_id, "Bo")
    path = {"start": (), "resume": ("start", "pause"), "config": ("start", "pause")}
    drive(client, arena_id, admin, *path.get(route, ("start",)))
    return arena_id, admin, player


@pytest.mark.parametrize("route", range(len(ROUTE_NAMES)), ids=ROUTE_NAMES)
def test_unknown_arena_is_a_404_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, route: int
) -> None:
    arena_id, admin = _arena(client)  # a real token, of another arena
    method, path, body = _routes(str(uuid.uuid4()), admin.id)[route]
    before = snapshot(sql, arena_id)

    response = client.open(path, method=method, json=body, headers=admin.auth)

    problem = problem_of(response, 404, "not-found")
    assert problem["instance"] == path
    assert snapshot(sql, arena_id) == before


def test_an_arena_id_that_is_no_uuid_is_a_404_problem(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    before = snapshot(sql)
    response = client.post(f"{arena_path('not-a-uuid')}/players", json={"displayName": "Bo"})
    problem_of(response, 404, "not-found")
    assert snapshot(sql) == before


@pytest.mark.parametrize("whose", ["nobody", "another-arena", "not-a-uuid"])
def test_removing_an_unknown_player_is_a_404_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, whose: str
) -> None:
    arena_id, admin = _arena(client)
    join(client, arena_id, "Bo")
    _, stranger = _arena(client)
    player_id = {"nobody": str(uuid.uuid4()), "another-arena": stranger.id}.get(whose, "x1")
    before = snapshot(sql, arena_id)

    response = client.delete(arena_path(arena_id, f"/players/{player_id}"), headers=admin.auth)

    problem_of(response, 404, "not-found")
    assert snapshot(sql, arena_id) == before


_ILLEGAL_TRANSITIONS = [
    ((), "pause"),
    ((), "resume"),
    (("start",), "start"),
    (("start",), "resume"),
    (("start", "pause"), "start"),
    (("start", "pause"), "pause"),
    (("stop",), "start"),
    (("stop",), "pause"),
    (("stop",), "resume"),
    (("stop",), "stop"),
]


@pytest.mark.parametrize(
    ("path", "command"),
    _ILLEGAL_TRANSITIONS,
    ids=[f"{'-'.join(p) or 'pending'}-{c}" for p, c in _ILLEGAL_TRANSITIONS],
)
def test_illegal_transition_is_a_409_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, path: tuple[str, ...], command: str
) -> None:
    arena_id, admin = _arena(client)
    drive(client, arena_id, admin, *path)
    before = snapshot(sql, arena_id)

    response = transition(client, arena_id, command, admin)

    problem_of(response, 409, "illegal-transition")
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("path", [("start",), ("stop",)], ids=["running", "finished"])
def test_config_change_outside_pending_or_paused_is_a_409_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, path: tuple[str, ...]
) -> None:
    arena_id, admin = _arena(client)
    drive(client, arena_id, admin, *path)
    before = snapshot(sql, arena_id)

    response = client.patch(
        arena_path(arena_id, "/config"), json={"tickMillis": 300}, headers=admin.auth
    )

    problem_of(response, 409, "illegal-transition")
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("path", [(), ("stop",)], ids=["pending", "finished"])
def test_action_outside_running_or_paused_is_a_409_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, path: tuple[str, ...]
) -> None:
    arena_id, admin = _arena(client)
    drive(client, arena_id, admin, *path)
    before = snapshot(sql, arena_id)

    response = client.post(
        arena_path(arena_id, "/actions"), json=set_temperature(), headers=admin.auth
    )

    problem_of(response, 409, "illegal-transition")
    assert snapshot(sql, arena_id) == before


def test_joining_or_leaving_a_finished_arena_is_a_409_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = _arena(client)
    bo = join(client, arena_id, "Bo")
    drive(client, arena_id, admin, "stop")
    before = snapshot(sql, arena_id)

    joining = client.post(arena_path(arena_id, "/players"), json={"displayName": "Cy"})
    leaving = client.delete(arena_path(arena_id, f"/players/{bo.id}"), headers=bo.auth)
    removing = client.delete(arena_path(arena_id, f"/players/{bo.id}"), headers=admin.auth)

    for response in (joining, leaving, removing):
        problem_of(response, 409, "illegal-transition")
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("name", ["Bo", "bo", "BO", "  Bo ", "ADA"])
def test_taken_display_name_is_a_409_conflict_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, name: str
) -> None:
    arena_id, _ = _arena(client)
    join(client, arena_id, "Bo")
    before = snapshot(sql, arena_id)

    response = client.post(arena_path(arena_id, "/players"), json={"displayName": name})

    assert "taken" in problem_of(response, 409, "conflict")["detail"]
    assert snapshot(sql, arena_id) == before


def test_joining_a_full_arena_is_a_409_conflict_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = _arena(client, config={"maxPlayers": 2})
    join(client, arena_id, "Bo")
    before = snapshot(sql, arena_id)

    response = client.post(arena_path(arena_id, "/players"), json={"displayName": "Cy"})

    assert "full" in problem_of(response, 409, "conflict")["detail"]
    assert snapshot(sql, arena_id) == before


def test_last_admin_leaving_while_others_remain_is_a_409_conflict_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = _arena(client)
    join(client, arena_id, "Bo")
    before = snapshot(sql, arena_id)

    response = client.delete(arena_path(arena_id, f"/players/{admin.id}"), headers=admin.auth)

    assert "last admin" in problem_of(response, 409, "conflict")["detail"]
    assert snapshot(sql, arena_id) == before


# --- 400, 413, 415: the body itself -------------------------------------------------------------

_BODY_ROUTES = ["join", "config", "action"]


@pytest.mark.parametrize("route", _BODY_ROUTES)
@pytest.mark.parametrize("text", ['{"displayName": "Bo', "{bad json}", "[1, 2"])
def test_malformed_json_is_a_400_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, route: str, text: str
) -> None:
    arena_id, admin, player = _ready_for(client, route)
    method, path, _ = _routes(arena_id, player.id)[ROUTE_NAMES.index(route)]
    before = snapshot(sql, arena_id)

    response = client.open(
        path, method=method, data=text, content_type="application/json", headers=admin.auth
    )

    problem_of(response, 400, "malformed-json")
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("route", range(len(ROUTE_NAMES)), ids=ROUTE_NAMES)
def test_body_over_64_kib_is_a_413_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, route: int
) -> None:
    """MAX_BODY_BYTES holds for every route, whether or not it reads its body."""
    arena_id, admin, player = _ready_for(client, ROUTE_NAMES[route])
    method, path, body = _routes(arena_id, player.id)[route]
    padded = {**(body or {}), "padding": "x" * MAX_BODY_BYTES}
    before = snapshot(sql, arena_id)

    response = client.open(path, method=method, json=padded, headers=admin.auth)

    problem_of(response, 413, "payload-too-large")
    assert snapshot(sql, arena_id) == before


def test_body_of_exactly_64_kib_is_read(client: FlaskClient, sql: psycopg.Connection) -> None:
    arena_id, _ = _arena(client)
    prefix, suffix = '{"displayName": "', '"}'
    for size, status in ((MAX_BODY_BYTES, 422), (MAX_BODY_BYTES + 1, 413)):
        text = prefix + "y" * (size - len(prefix) - len(suffix)) + suffix
        assert len(text.encode()) == size
        before = snapshot(sql, arena_id)

        response = client.post(
            arena_path(arena_id, "/players"), data=text, content_type="application/json"
        )

        assert response.status_code == status  # 422: read, and refused for its long name
        assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize("route", range(len(ROUTE_NAMES)), ids=ROUTE_NAMES)
@pytest.mark.parametrize(
    ("content_type", "data"),
    [("text/plain", '{"displayName": "Bo"}'), ("application/x-www-form-urlencoded", "a=b")],
    ids=["text", "form"],
)
def test_body_that_is_not_json_is_a_415_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, route: int, content_type: str, data: str
) -> None:
    arena_id, admin, player = _ready_for(client, ROUTE_NAMES[route])
    method, path, _ = _routes(arena_id, player.id)[route]
    before = snapshot(sql, arena_id)

    response = client.open(
        path, method=method, data=data, content_type=content_type, headers=admin.auth
    )

    problem_of(response, 415, "unsupported-media-type")
    assert snapshot(sql, arena_id) == before


# --- 422: every field ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "displayName"),
        ({"displayName": ""}, "displayName"),
        ({"displayName": "   "}, "displayName"),
        ({"displayName": "x" * 41}, "displayName"),
        ({"displayName": 7}, "displayName"),
        ({"displayName": None}, "displayName"),
        ({"displayName": "Bo", "role": "ADMIN"}, "role"),
        (["Bo"], "body"),
        ("Bo", "body"),
    ],
)
def test_invalid_join_is_a_422_naming_the_field_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, body: object, field: str
) -> None:
    arena_id, _ = _arena(client)
    before = snapshot(sql, arena_id)

    response = client.post(arena_path(arena_id, "/players"), json=body)

    problem = problem_of(response, 422, "validation-failed")
    assert error_fields(problem) == [field]
    assert field in problem["detail"]
    assert snapshot(sql, arena_id) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tickMillis": 0}, "tickMillis"),
        ({"tickMillis": 1.5}, "tickMillis"),
        ({"width": 0}, "width"),
        ({"width": 513}, "width"),
        ({"width": "16"}, "width"),
        ({"height": 0}, "height"),
        ({"height": 513}, "height"),
        ({"diffusionRate": -0.01}, "diffusionRate"),
        ({"diffusionRate": 1.01}, "diffusionRate"),
        ({"mutationRate": 1.5}, "mutationRate"),
        ({"maxOrganisms": 0}, "maxOrganisms"),
        ({"snapshotEveryTicks": 0}, "snapshotEveryTicks"),
        ({"maxPlayers": 0}, "maxPlayers"),
        ({"maxPlayers": 1}, "maxPlayers"),  # two players are present
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"temperature": {"value": 150.5}}, "temperature.value"),
        ({"temperature": {"value": -50.5}}, "temperature.value"),
        ({"temperature": {"unit": "F"}}, "temperature.unit"),
        ({"temperature": {"value": 30, "kelvin": 1}}, "temperature.kelvin"),
        ({"temperature": 30}, "temperature"),
        ({"colour": "red"}, "colour"),
        ({}, "body"),
        (["width"], "body"),
    ],
)
def test_invalid_config_change_is_a_422_naming_the_field_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, changes: object, field: str
) -> None:
    arena_id, admin = _arena(client)
    join(client, arena_id, "Bo")
    before = snapshot(sql, arena_id)

    response = client.patch(arena_path(arena_id, "/config"), json=changes, headers=admin.auth)

    problem = problem_of(response, 422, "validation-failed")
    assert error_fields(problem) == [field]
    assert snapshot(sql, arena_id) == before


def _area(**overrides: Any) -> dict[str, Any]:
    return {"x": 0, "y": 0, "width": 1, "height": 1} | overrides


def _nutrients(area: dict[str, Any], amount: object = 1.0) -> dict[str, Any]:
    return {"type": "ADD_NUTRIENTS", "payload": {"area": area, "amount": amount}}


def _antibiotic(area: dict[str, Any], kind: object = "A", concentration: object = 0.5) -> dict:
    payload = {"area": area, "kind": kind, "concentration": concentration}
    return {"type": "DROP_ANTIBIOTIC", "payload": payload}


def _spawn(position: dict[str, Any], kind: object = "BACTERIA") -> dict[str, Any]:
    return {"type": "SPAWN_ORGANISM", "payload": {"kind": kind, "position": position}}


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        # the envelope of the action
        ({"payload": {}}, ["type"]),
        ({"type": "GROW", "payload": {}}, ["type"]),
        ({"type": "SET_TEMPERATURE"}, ["payload"]),
        ({"type": "SET_TEMPERATURE", "payload": [1]}, ["payload"]),
        ({**set_temperature(), "applyAtTick": 0}, ["applyAtTick"]),
        ({**set_temperature(), "applyAtTick": -3}, ["applyAtTick"]),
        ({**set_temperature(), "applyAtTick": 2.5}, ["applyAtTick"]),
        ({**set_temperature(), "applyAtTick": "2"}, ["applyAtTick"]),
        ({**set_temperature(), "player": "me"}, ["player"]),
        # areas, at and past the grid's bounds (8 x 4)
        (_nutrients(_area(x=-1)), ["payload.area.x"]),
        (_nutrients(_area(x=WIDTH)), ["payload.area.x", "payload.area.width"]),
        (_nutrients(_area(y=-1)), ["payload.area.y"]),
        (_nutrients(_area(y=HEIGHT)), ["payload.area.y", "payload.area.height"]),
        (_nutrients(_area(x=WIDTH - 1, width=2)), ["payload.area.width"]),
        (_nutrients(_area(width=WIDTH + 1)), ["payload.area.width"]),
        (_nutrients(_area(y=HEIGHT - 1, height=2)), ["payload.area.height"]),
        (_nutrients(_area(height=HEIGHT + 1)), ["payload.area.height"]),
        (_nutrients(_area(width=0)), ["payload.area.width"]),
        (_nutrients(_area(height=0)), ["payload.area.height"]),
        (_nutrients(_area(x=1.5)), ["payload.area.x"]),
        (_nutrients({"x": 0, "y": 0, "width": 1}), ["payload.area.height"]),
        (_nutrients(_area() | {"depth": 1}), ["payload.area.depth"]),
        (_nutrients("everywhere"), ["payload.area"]),
        (_nutrients(_area(), amount=0), ["payload.amount"]),
        (_nutrients(_area(), amount=-1), ["payload.amount"]),
        (_nutrients(_area(), amount=None), ["payload.amount"]),
        ({"type": "ADD_NUTRIENTS", "payload": {"area": _area()}}, ["payload.amount"]),
        (_antibiotic(_area(x=WIDTH - 2, width=3)), ["payload.area.width"]),
        (_antibiotic(_area(), kind="D"), ["payload.kind"]),
        (_antibiotic(_area(), kind="a"), ["payload.kind"]),
        (_antibiotic(_area(), concentration=0), ["payload.concentration"]),
        (_antibiotic(_area(), concentration=-0.5), ["payload.concentration"]),
        (
            {"type": "DROP_ANTIBIOTIC", "payload": {"kind": "A", "concentration": 1}},
            ["payload.area"],
        ),
        # temperatures
        (set_temperature(150.01), ["payload.temperature.value"]),
        (set_temperature(-50.01), ["payload.temperature.value"]),
        (
            {"type": "SET_TEMPERATURE", "payload": {"temperature": {"value": 20, "unit": "K"}}},
            ["payload.temperature.unit"],
        ),
        (
            {"type": "SET_TEMPERATURE", "payload": {"temperature": {"unit": "C"}}},
            ["payload.temperature.value"],
        ),
        ({"type": "SET_TEMPERATURE", "payload": {}}, ["payload.temperature"]),
        ({"type": "SET_TEMPERATURE", "payload": {"temperature": 20}}, ["payload.temperature"]),
        # positions, at and past the grid's bounds
        (_spawn({"x": WIDTH, "y": 0}), ["payload.position.x"]),
        (_spawn({"x": -1, "y": 0}), ["payload.position.x"]),
        (_spawn({"x": 0, "y": HEIGHT}), ["payload.position.y"]),
        (_spawn({"x": 0, "y": -1}), ["payload.position.y"]),
        (_spawn({"x": WIDTH, "y": HEIGHT}), ["payload.position.x", "payload.position.y"]),
        (_spawn({"x": 0}), ["payload.position.y"]),
        (_spawn({"x": 0, "y": 0, "z": 0}), ["payload.position.z"]),
        (_spawn({"x": 0, "y": 0}, kind="VIRUS"), ["payload.kind"]),
        (_spawn({"x": 0, "y": 0}, kind="bacteria"), ["payload.kind"]),
        ({"type": "SPAWN_ORGANISM", "payload": {"kind": "FUNGI"}}, ["payload.position"]),
        # a payload of another type's shape
        ({"type": "SPAWN_ORGANISM", "payload": set_temperature()["payload"]}, None),
    ],
)
def test_invalid_action_is_a_422_naming_the_fields_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, body: object, fields: list[str] | None
) -> None:
    arena_id, _, player = _running(client)
    before = snapshot(sql, arena_id)

    response = client.post(arena_path(arena_id, "/actions"), json=body, headers=player.auth)

    problem = problem_of(response, 422, "validation-failed")
    if fields is not None:
        assert sorted(error_fields(problem)) == sorted(fields)
        assert all(field in problem["detail"] for field in fields)
    else:
        assert all(field.startswith("payload.") for field in error_fields(problem))
    assert snapshot(sql, arena_id) == before


def test_action_checked_against_the_grid_at_submission(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    """A grid made bigger while PAUSED admits cells that were outside it before."""
    arena_id, admin, player = _running(client)
    url = arena_path(arena_id, "/actions")
    spawn = _spawn({"x": WIDTH, "y": HEIGHT})

    refused = client.post(url, json=spawn, headers=player.auth)
    drive(client, arena_id, admin, "pause")
    grown = client.patch(
        arena_path(arena_id, "/config"),
        json={"width": WIDTH + 1, "height": HEIGHT + 1},
        headers=admin.auth,
    )
    accepted = client.post(url, json=spawn, headers=player.auth)

    problem_of(refused, 422, "validation-failed")
    assert grown.status_code == 200
    assert accepted.status_code == 202
    assert [e.type for e in events(sql, arena_id)][-3:] == [
        "ArenaPaused",
        "ArenaConfigUpdated",
        "ActionSubmitted",
    ]


def test_failed_commands_sent_with_an_idempotency_key_leave_no_record(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    """One of each error status, each sent with its own key: none of them writes anything."""
    arena_id, admin, player = _running(client)
    url = arena_path(arena_id, "/actions")
    before = snapshot(sql, arena_id)

    def keyed(headers: dict[str, str]) -> dict[str, str]:
        return headers | {"Idempotency-Key": new_key()}

    replies = [
        client.post(url, data="{", content_type="application/json", headers=keyed(player.auth)),
        client.post(url, json=set_temperature(), headers=keyed({})),
        client.post(arena_path(arena_id, "/start"), headers=keyed(player.auth)),
        client.delete(arena_path(arena_id, f"/players/{uuid.uuid4()}"), headers=keyed(admin.auth)),
        client.post(arena_path(arena_id, "/start"), headers=keyed(admin.auth)),
        client.post(
            arena_path(arena_id, "/players"), json={"displayName": "bo"}, headers=keyed({})
        ),
        client.post(url, json={"padding": "x" * MAX_BODY_BYTES}, headers=keyed(player.auth)),
        client.post(url, data="x", content_type="text/plain", headers=keyed(player.auth)),
        client.post(url, json=_spawn({"x": WIDTH, "y": 0}), headers=keyed(player.auth)),
    ]

    assert [reply.status_code for reply in replies] == [400, 401, 403, 404, 409, 409, 413, 415, 422]
    assert snapshot(sql, arena_id) == before
