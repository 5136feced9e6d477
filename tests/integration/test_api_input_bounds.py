"""Every number the API takes has documented bounds, checked at the edge (issue 23, item 3).

Whatever is accepted is safe at tick time: an action's amount fits the board's integer fields, a
tick fits its layers, an arena's grid stays the stored board's once it has ticked. A value out of
bounds is a 422 problem naming the field, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import downgrade, upgrade
from psycopg.types.json import Jsonb

from arena.domain.actions import MAX_AMOUNT
from arena.domain.config import (
    MAX_ORGANISMS_RANGE,
    MAX_PLAYERS_RANGE,
    SNAPSHOT_EVERY_TICKS_RANGE,
    TICK_MILLIS_RANGE,
)
from arena.domain.model import MAX_TICK
from arena.http.schemas import MAX_OFFSET, MAX_VERSION
from arena.simulation.board import MAX_ORGANISM_ID, NOBODY
from tests.support.api import (
    ARENAS,
    arena_path,
    arena_row,
    create_arena,
    drive,
    error_fields,
    events,
    problem_of,
    set_temperature,
    snapshot,
)
from tests.support.dish import Dish

pytestmark = pytest.mark.integration

MIGRATIONS = str(Path(__file__).resolve().parents[2] / "migrations")


def _nutrients(amount: object, **area: int) -> dict[str, Any]:
    cells = {"x": 0, "y": 0, "width": 1, "height": 1} | area
    return {"type": "ADD_NUTRIENTS", "payload": {"area": cells, "amount": amount}}


def _antibiotic(concentration: object) -> dict[str, Any]:
    area = {"x": 0, "y": 0, "width": 1, "height": 1}
    payload = {"area": area, "kind": "A", "concentration": concentration}
    return {"type": "DROP_ANTIBIOTIC", "payload": payload}


def _spawn(x: int, y: int) -> dict[str, Any]:
    return {"type": "SPAWN_ORGANISM", "payload": {"kind": "BACTERIA", "position": {"x": x, "y": y}}}


OUT_OF_BOUNDS_CONFIG = [
    ({"tickMillis": 49}, "tickMillis"),
    ({"tickMillis": 3_600_001}, "tickMillis"),
    ({"tickMillis": 3 * 10**14}, "tickMillis"),
    ({"snapshotEveryTicks": 10_001}, "snapshotEveryTicks"),
    ({"maxOrganisms": 512 * 512 + 1}, "maxOrganisms"),
    ({"maxPlayers": 1_001}, "maxPlayers"),
    ({"maxPlayers": 2**15}, "maxPlayers"),
    ({"seed": 2**64}, "seed"),
]


@pytest.mark.parametrize(("config", "field"), OUT_OF_BOUNDS_CONFIG)
def test_an_arena_created_with_a_setting_out_of_bounds_is_a_422_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, config: dict[str, Any], field: str
) -> None:
    before = snapshot(sql)

    response = client.post(ARENAS, json={"name": "Plate", "displayName": "Ada", "config": config})

    problem = problem_of(response, 422, "validation-failed")
    assert error_fields(problem) == [f"config.{field}"]
    assert snapshot(sql) == before


@pytest.mark.parametrize(("changes", "field"), OUT_OF_BOUNDS_CONFIG)
def test_a_setting_changed_out_of_bounds_is_a_422_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, changes: dict[str, Any], field: str
) -> None:
    arena_id, admin = create_arena(client)
    before = snapshot(sql, arena_id)

    response = client.patch(arena_path(arena_id, "/config"), json=changes, headers=admin.auth)

    problem = problem_of(response, 422, "validation-failed")
    assert error_fields(problem) == [field]
    assert snapshot(sql, arena_id) == before


def test_settings_at_their_bounds_are_accepted(client: FlaskClient) -> None:
    for config in (
        {"tickMillis": 50, "snapshotEveryTicks": 1, "maxOrganisms": 1, "maxPlayers": 1},
        {
            "tickMillis": 3_600_000,
            "snapshotEveryTicks": 10_000,
            "maxOrganisms": 512 * 512,
            "maxPlayers": 1_000,
        },
    ):
        create_arena(client, config=config)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (_nutrients(1e16), ["payload.amount"]),
        (_nutrients(MAX_AMOUNT * 1.000001), ["payload.amount"]),
        (_antibiotic(1e16), ["payload.concentration"]),
        ({**set_temperature(), "applyAtTick": 2**63}, ["applyAtTick"]),
        ({**set_temperature(), "applyAtTick": MAX_TICK + 1}, ["applyAtTick"]),
        (_nutrients(1.0, x=2**70), ["payload.area.x"]),
        (_nutrients(1.0, width=2**70), ["payload.area.width"]),
        (_spawn(0, -(2**70)), ["payload.position.y"]),
    ],
)
def test_an_action_out_of_bounds_is_a_422_naming_the_field_and_writes_nothing(
    client: FlaskClient, sql: psycopg.Connection, body: dict[str, Any], fields: list[str]
) -> None:
    arena_id, admin = create_arena(client)
    drive(client, arena_id, admin, "start")
    before = snapshot(sql, arena_id)

    response = client.post(arena_path(arena_id, "/actions"), json=body, headers=admin.auth)

    problem = problem_of(response, 422, "validation-failed")
    assert sorted(error_fields(problem)) == fields
    assert snapshot(sql, arena_id) == before


def test_the_largest_amounts_accepted_tick_and_saturate_the_cell(dish: Dish) -> None:
    for _ in range(2):
        dish.act(dish.ada, _nutrients(MAX_AMOUNT))
        dish.act(dish.ada, _antibiotic(MAX_AMOUNT))
    accepted = dish.act(dish.ada, {**set_temperature(), "applyAtTick": MAX_TICK})

    dish.tick()

    assert accepted["applyAtTick"] == MAX_TICK
    assert dish.get("").get_json()["tick"] == 1


def test_the_grid_of_an_arena_that_has_ticked_cannot_change(
    dish: Dish, sql: psycopg.Connection
) -> None:
    dish.tick()
    drive(dish.client, dish.id, dish.ada, "pause")
    before = snapshot(sql, dish.id)

    for changes in ({"width": 4}, {"height": 20}, {"width": 20, "tickMillis": 1000}):
        response = dish.client.patch(
            arena_path(dish.id, "/config"), json=changes, headers=dish.ada.auth
        )

        problem = problem_of(response, 409, "conflict")
        assert "grid" in problem["detail"]
        assert snapshot(sql, dish.id) == before


def test_an_action_queued_outside_a_grid_shrunk_before_the_first_tick_is_rejected_at_it(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    dish = Dish(app, client, sql)
    spawned = dish.act(dish.bob, _spawn(11, 9))
    fed = dish.act(dish.bob, _nutrients(1.0, x=10, width=2))
    drive(dish.client, dish.id, dish.ada, "pause")
    shrunk = dish.client.patch(
        arena_path(dish.id, "/config"), json={"width": 8, "height": 8}, headers=dish.ada.auth
    )
    assert shrunk.status_code == 200, shrunk.get_data(as_text=True)
    drive(dish.client, dish.id, dish.ada, "resume")

    dish.tick()

    rejected = {
        event.payload["actionId"]: event.payload["reason"]
        for event in events(sql, dish.id)
        if event.type == "ActionRejected"
    }
    assert rejected == {
        spawned["actionId"]: "the cell is outside the board",
        fed["actionId"]: "the area is outside the board",
    }


@pytest.mark.parametrize(
    ("suffix", "query", "field"),
    [
        ("", {"offset": 2**63}, "offset"),
        ("", {"offset": MAX_OFFSET + 1}, "offset"),
        ("/{id}", {"minVersion": MAX_VERSION + 1}, "minVersion"),
        ("/{id}/history", {"fromTick": MAX_TICK + 1, "toTick": MAX_TICK + 1}, "fromTick"),
    ],
)
def test_a_query_number_out_of_bounds_is_a_422_naming_it(
    client: FlaskClient, suffix: str, query: dict[str, int], field: str
) -> None:
    arena_id, _ = create_arena(client)

    response = client.get(ARENAS + suffix.format(id=arena_id), query_string=query)

    problem = problem_of(response, 422, "validation-failed")
    assert field in error_fields(problem)


def test_the_organisms_of_a_player_who_left_become_nobodys(dish: Dish) -> None:
    # Owner indexes held stay one per player present (plus nobody's): joining, spawning and
    # leaving over and over cannot use up the board's 32,768 (docs/simulation.md).
    bob, ada = dish.bob.id, dish.ada.id
    dish.tick()
    late = dish.act(dish.bob, _spawn(0, 0))
    left = dish.client.delete(arena_path(dish.id, f"/players/{bob}"), headers=dish.bob.auth)
    assert left.status_code == 200, left.get_data(as_text=True)

    dish.tick()

    applied = [
        e.payload["actionId"] for e in events(dish.sql, dish.id) if e.type == "ActionApplied"
    ]
    assert late["actionId"] in applied
    shown = dish.get("/board").get_json()["layers"]["organisms"]
    assert {organism["owner"] for organism in shown} == {ada, NOBODY}
    assert [
        organism["owner"] for organism in shown if (organism["x"], organism["y"]) == (0, 0)
    ] == [NOBODY]
    standings = dish.get("/leaderboard").get_json()["players"]
    assert sorted(player["playerId"] for player in standings) == sorted([ada, NOBODY])


@pytest.mark.parametrize(
    ("suffix", "field", "most", "missing"),
    [
        ("/snapshots/{}", "tick", MAX_TICK, "tick-not-kept"),
        ("/organisms/{}", "organism_id", MAX_ORGANISM_ID, "not-found"),
    ],
)
def test_a_path_number_out_of_bounds_is_a_422_naming_it_and_one_at_its_bound_a_404(
    dish: Dish, suffix: str, field: str, most: int, missing: str
) -> None:
    dish.tick()

    for number in (most + 1, 2**64, 10**30):
        problem = problem_of(dish.get(suffix.format(number)), 422, "validation-failed")
        assert error_fields(problem) == [field]
    assert str(most) in problem_of(dish.get(suffix.format(most)), 404, missing)["detail"]


def test_the_openapi_document_states_every_bound(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]

    def bounds(schema: dict[str, Any]) -> tuple[Any, Any]:
        return schema.get("minimum"), schema.get("maximum")

    config = schemas["ArenaConfig"]["properties"]
    assert bounds(config["tickMillis"]) == TICK_MILLIS_RANGE
    assert bounds(config["snapshotEveryTicks"]) == SNAPSHOT_EVERY_TICKS_RANGE
    assert bounds(config["maxOrganisms"]) == MAX_ORGANISMS_RANGE
    assert bounds(config["maxPlayers"]) == MAX_PLAYERS_RANGE
    assert schemas["ConfigChanges"]["properties"] == config
    area = schemas["Area"]["properties"]
    assert [bounds(area[name]) for name in ("x", "y", "width", "height")] == [
        (0, 511),
        (0, 511),
        (1, 512),
        (1, 512),
    ]
    position = schemas["Position"]["properties"]
    assert bounds(position["x"]) == bounds(position["y"]) == (0, 511)
    assert bounds(schemas["AddNutrientsPayload"]["properties"]["amount"]) == (0, MAX_AMOUNT)
    assert schemas["AddNutrientsPayload"]["properties"]["amount"]["exclusiveMinimum"] is True
    concentration = schemas["DropAntibioticPayload"]["properties"]["concentration"]
    assert bounds(concentration) == (0, MAX_AMOUNT)
    assert bounds(schemas["SubmitAction"]["properties"]["applyAtTick"]) == (1, MAX_TICK)
    paths = spec["paths"]
    for path, name, most in (
        ("/api/v1/arenas/{arena_id}/snapshots/{tick}", "tick", MAX_TICK),
        ("/api/v1/arenas/{arena_id}/organisms/{organism_id}", "organism_id", MAX_ORGANISM_ID),
    ):
        # The operation's own parameter overrides the path's (OpenAPI 3, Path Item Object).
        parameters = paths[path]["get"].get("parameters", [])
        [parameter] = [p for p in parameters if p["in"] == "path" and p["name"] == name]
        assert bounds(parameter["schema"]) == (0, most)


def test_a_config_stored_before_the_bounds_is_clamped_into_them_and_its_arena_loads(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, admin = create_arena(client)
    stored = {"tickMillis": 1, "snapshotEveryTicks": 10**6, "maxOrganisms": 10**9, "maxPlayers": 0}
    with app.app_context():
        downgrade(directory=MIGRATIONS, revision="0008")
    try:
        sql.execute(
            "UPDATE arenas SET config = config || %s WHERE id = %s", (Jsonb(stored), arena_id)
        )
    finally:
        with app.app_context():
            upgrade(directory=MIGRATIONS)

    response = client.patch(
        arena_path(arena_id, "/config"), json={"diffusionRate": 0.5}, headers=admin.auth
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    row = arena_row(sql, arena_id)
    assert row is not None
    assert {name: row.config[name] for name in stored} == {
        "tickMillis": 50,
        "snapshotEveryTicks": 10_000,
        "maxOrganisms": 512 * 512,
        "maxPlayers": 1,
    }
