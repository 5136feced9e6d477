"""Projection guarantees under load: many arenas, four worker processes.

A burst of commands through the API on 40 arenas (every event type, interleaved across arenas
and partitions) is projected by `celery worker --concurrency=4` with real Kafka, Redis and
PostgreSQL; then `flask verify --wait 60`, the operator's own check, must find nothing to report.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.settings import Settings
from harness.pipeline import Pipeline, running_pipeline
from tests.support.api import arena_path, create_arena, join, set_temperature
from tests.support.load import CommandLoad
from tests.support.reads import read_at_version

pytestmark = pytest.mark.e2e

ARENAS_IN_BURST = 40
VERIFY_WAIT_SECONDS = 60
VERSION_HEADER = "X-Read-Model-Version"


@pytest.fixture(scope="module")
def pipeline(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    logs = tmp_path_factory.mktemp("guarantees-logs")
    with running_pipeline(settings, logs, concurrency=4) as started:
        yield started


def _read(client: FlaskClient, path: str, version: int, pipeline: Pipeline) -> dict:
    """GET with ?minVersion=<the version the command answered>: 200 at exactly that version."""
    pipeline.assert_running()
    response = read_at_version(client, path, version)
    body = response.get_json()
    assert body["version"] == version
    assert response.headers[VERSION_HEADER] == str(version)
    return body


def test_a_command_s_version_is_readable_right_after_it_with_min_version(
    app: Flask, client: FlaskClient, pipeline: Pipeline
) -> None:
    """Read-your-writes: each command's own answer names the version that shows its effect."""
    opened = client.post("/api/v1/arenas", json={"name": "Read my writes", "displayName": "Ada"})
    assert opened.status_code == 201
    arena_id, version = opened.get_json()["id"], opened.get_json()["version"]
    admin_token = opened.get_json()["player"]["token"]
    auth = {"Authorization": f"Bearer {admin_token}"}
    path = arena_path(arena_id)
    assert _read(client, path, version, pipeline)["name"] == "Read my writes"
    # Other clients keep the pipeline busy meanwhile.
    load = CommandLoad(app, name="background", threads=2, arenas=12).start()
    try:
        joined = client.post(arena_path(arena_id, "/players"), json={"displayName": "Bob"})
        players = _read(client, f"{path}/players", joined.get_json()["version"], pipeline)
        assert [p["displayName"] for p in players["players"]] == ["Ada", "Bob"]

        for command, status in (("start", "RUNNING"), ("pause", "PAUSED")):
            answer = client.post(arena_path(arena_id, f"/{command}"), headers=auth).get_json()
            assert _read(client, path, answer["version"], pipeline)["status"] == status

        changed = client.patch(arena_path(arena_id, "/config"), headers=auth, json={"width": 12})
        assert _read(client, path, changed.get_json()["version"], pipeline)["config"]["width"] == 12

        resumed = client.post(arena_path(arena_id, "/resume"), headers=auth).get_json()
        assert _read(client, path, resumed["version"], pipeline)["status"] == "RUNNING"

        accepted = client.post(
            arena_path(arena_id, "/actions"), headers=auth, json=set_temperature()
        )
        feed = _read(client, f"{path}/events", accepted.get_json()["version"], pipeline)
        assert feed["events"][0]["type"] == "ActionSubmitted"
        assert feed["events"][0]["payload"]["actionId"] == accepted.get_json()["actionId"]

        stopped = client.post(arena_path(arena_id, "/stop"), headers=auth).get_json()
        view = _read(client, path, stopped["version"], pipeline)
        assert (view["status"], view["finishedAt"] is not None) == ("FINISHED", True)
    finally:
        load.join()
    assert load.failures == []


def test_a_burst_on_many_arenas_converges_to_the_write_model(
    app: Flask, client: FlaskClient, pipeline: Pipeline
) -> None:
    name = f"burst {uuid.uuid4().hex[:8]}"

    load = CommandLoad(app, name=name, threads=4, arenas=ARENAS_IN_BURST, working_set=5).run()

    assert load.failures == []
    assert len(load.arenas) == ARENAS_IN_BURST
    assert load.commands == ARENAS_IN_BURST * 11 + ARENAS_IN_BURST // 2
    pipeline.assert_running()
    pipeline.assert_verified(VERIFY_WAIT_SECONDS)
    load.assert_views_show_last_answers(client)
    for arena in load.arenas:
        view = client.get(arena_path(arena.id)).get_json()
        assert [p["displayName"] for p in view["players"]] == ["Ada", "Bob"]
        assert view["config"]["width"] == 32
        assert view["config"]["temperature"]["value"] == 25.0
    listed = client.get("/api/v1/arenas", query_string={"q": name, "limit": 100}).get_json()
    assert listed["total"] == ARENAS_IN_BURST
    finished = client.get(
        "/api/v1/arenas", query_string={"q": name, "status": "FINISHED", "limit": 100}
    ).get_json()
    assert finished["total"] == ARENAS_IN_BURST // 2


def test_joins_racing_on_one_arena_all_show_up(
    app: Flask, client: FlaskClient, pipeline: Pipeline
) -> None:
    """Concurrent commands on one arena: the command side serialises them, projections follow."""
    arena_id, _ = create_arena(client, name="Crowded dish", config={"maxPlayers": 20})
    names = [f"Player {n}" for n in range(12)]

    def joiner(chunk: list[str]) -> list[str]:
        own = app.test_client()
        return [join(own, arena_id, display_name).role for display_name in chunk]

    with ThreadPoolExecutor(max_workers=4) as pool:
        roles = [
            role for chunk in pool.map(joiner, [names[n::4] for n in range(4)]) for role in chunk
        ]

    assert roles == ["PLAYER"] * len(names)
    players = _read(client, arena_path(arena_id, "/players"), 1 + len(names), pipeline)
    assert sorted(p["displayName"] for p in players["players"]) == sorted(["Ada", *names])
