"""The dish comes alive on the real pipeline: beat schedules ticks, a worker makes them, and
their events reach the read model, whose board matches the write model's, tick for tick."""

from __future__ import annotations

from typing import Any

import psycopg
from flask.testing import FlaskClient

from tests.e2e.conftest import Pipeline
from tests.support.api import arena_path, create_arena, drive, join
from tests.support.waiting import wait_until

DEADLINE_SECONDS = 60
TICKING = {"width": 16, "height": 16, "tickMillis": 100, "seed": 42, "snapshotEveryTicks": 10}


def _view(client: FlaskClient, arena_id: str, **query: Any) -> dict[str, Any]:
    response = client.get(arena_path(arena_id), query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _act(client: FlaskClient, arena_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        arena_path(arena_id, "/actions"), headers={"Authorization": f"Bearer {token}"}, json=body
    )
    assert response.status_code == 202, response.get_data(as_text=True)
    return response.get_json()


def _spawn(kind: str, x: int, y: int) -> dict[str, Any]:
    return {"type": "SPAWN_ORGANISM", "payload": {"kind": kind, "position": {"x": x, "y": y}}}


def _written_board(sql: psycopg.Connection, arena_id: str) -> tuple[int, str]:
    row = sql.execute(
        "SELECT tick, board_hash FROM arena_boards WHERE arena_id = %s", (arena_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_a_running_arena_ticks_and_its_board_matches_the_write_model(
    client: FlaskClient, sql: psycopg.Connection, pipeline: Pipeline
) -> None:
    arena_id, ada = create_arena(client, name="Living dish", config=TICKING)
    bob = join(client, arena_id, "Bob")
    drive(client, arena_id, ada, "start")
    everywhere = {"area": {"x": 0, "y": 0, "width": 16, "height": 16}, "amount": 8.0}
    _act(client, arena_id, ada.token, {"type": "ADD_NUTRIENTS", "payload": everywhere})
    placed = [_act(client, arena_id, bob.token, _spawn("BACTERIA", x, 8)) for x in (2, 6, 10)]
    taken = _act(client, arena_id, ada.token, _spawn("FUNGI", 6, 8))  # Bob's cell: rejected
    _act(client, arena_id, ada.token, _spawn("PHAGE", 14, 14))

    def ticked_past_a_snapshot() -> bool:
        pipeline.assert_running()
        response = client.get(arena_path(arena_id))  # 404 until the first event is projected
        return response.status_code == 200 and response.get_json()["tick"] >= 15

    wait_until(ticked_past_a_snapshot, deadline_seconds=DEADLINE_SECONDS, what="15 ticks")
    paused = client.post(arena_path(arena_id, "/pause"), headers=ada.auth)
    assert paused.status_code == 200
    version = paused.get_json()["version"]

    view = _view(client, arena_id, minVersion=version)
    board = client.get(arena_path(arena_id, "/board"), query_string={"minVersion": version})
    assert board.status_code == 200, board.get_data(as_text=True)
    shown = board.get_json()
    written_tick, written_hash = _written_board(sql, arena_id)
    assert (view["status"], view["tick"], shown["tick"]) == ("PAUSED", written_tick, written_tick)
    assert shown["boardHash"] == written_hash == view["boardHash"]
    assert shown["layers"]["organisms"], "the dish is empty"
    owners = {organism["owner"] for organism in shown["layers"]["organisms"]}
    assert owners <= {ada.id, bob.id}
    assert view["stats"]["organismCount"] == len(shown["layers"]["organisms"])
    assert view["lastSnapshotTick"] >= 10

    fates = dict(
        sql.execute(
            "SELECT envelope->'payload'->>'actionId', event_type FROM outbox"
            " WHERE aggregate_id = %s AND event_type IN ('ActionApplied', 'ActionRejected')",
            (arena_id,),
        ).fetchall()
    )
    assert fates[taken["actionId"]] == "ActionRejected"
    assert all(fates[action["actionId"]] == "ActionApplied" for action in placed)
    rows = sql.execute(
        "SELECT event_type, count(*) FROM outbox WHERE aggregate_id = %s GROUP BY event_type",
        (arena_id,),
    ).fetchall()
    counts = dict(rows)
    assert (counts["ActionApplied"], counts["ActionRejected"]) == (5, 1)
    assert counts["TickAdvanced"] == written_tick
    assert counts["SnapshotTaken"] == written_tick // 10

    # Paused: no tick is due, and resuming continues from the same tick and board.
    assert sql.execute("SELECT next_tick_at FROM arenas WHERE id = %s", (arena_id,)).fetchone() == (
        None,
    )
    drive(client, arena_id, ada, "resume")

    def ticked_on() -> bool:
        pipeline.assert_running()
        return _written_board(sql, arena_id)[0] > written_tick

    wait_until(ticked_on, deadline_seconds=DEADLINE_SECONDS, what="ticks after the resume")
    ticks = [
        tick
        for (tick,) in sql.execute(
            "SELECT (envelope->'payload'->>'tick')::int FROM outbox"
            " WHERE aggregate_id = %s AND event_type = 'TickAdvanced' ORDER BY aggregate_version",
            (arena_id,),
        ).fetchall()
    ]
    assert ticks == list(range(1, len(ticks) + 1))  # no tick lost, none made twice
    drive(client, arena_id, ada, "stop")


def _ticks_recorded(sql: psycopg.Connection, arena_id: str) -> list[int]:
    return [
        tick
        for (tick,) in sql.execute(
            "SELECT (envelope->'payload'->>'tick')::int FROM outbox"
            " WHERE aggregate_id = %s AND event_type = 'TickAdvanced' ORDER BY aggregate_version",
            (arena_id,),
        ).fetchall()
    ]


def test_a_worker_killed_while_arenas_tick_loses_no_tick_and_makes_none_twice(
    client: FlaskClient, sql: psycopg.Connection, pipeline: Pipeline
) -> None:
    arenas = []
    for number in range(3):
        arena_id, admin = create_arena(client, name=f"Killed dish {number}", config=TICKING)
        drive(client, arena_id, admin, "start")
        _act(client, arena_id, admin.token, _spawn("BACTERIA", 3 + number, 3))
        arenas.append((arena_id, admin))

    def ticks_beyond(marks: dict[str, int], more: int) -> bool:
        pipeline.assert_running()
        return all(_written_board(sql, a)[0] >= marks[a] + more for a, _ in arenas if a in marks)

    def written_ticks() -> dict[str, int]:
        return {
            arena_id: tick
            for arena_id, tick in sql.execute(
                "SELECT arena_id::text, tick FROM arena_boards WHERE arena_id = ANY(%s::uuid[])",
                ([a for a, _ in arenas],),
            ).fetchall()
        }

    wait_until(
        lambda: len(written_ticks()) == 3 and ticks_beyond(written_ticks(), 0),
        deadline_seconds=DEADLINE_SECONDS,
        what="three arenas ticking",
    )
    before = written_ticks()
    pipeline.kill("worker")  # SIGKILL: whatever tick it was making is cut off
    pipeline.restart("worker")
    wait_until(
        lambda: ticks_beyond(before, 20),
        deadline_seconds=DEADLINE_SECONDS,
        what=f"20 more ticks each after the kill (logs in {pipeline.logs})",
    )
    versions = {}
    for arena_id, admin in arenas:
        paused = client.post(arena_path(arena_id, "/pause"), headers=admin.auth)
        assert paused.status_code == 200
        versions[arena_id] = paused.get_json()["version"]
    for arena_id, version in versions.items():
        ticks = _ticks_recorded(sql, arena_id)
        assert ticks == list(range(1, len(ticks) + 1)), "a tick lost or made twice"
        board = client.get(arena_path(arena_id, "/board"), query_string={"minVersion": version})
        assert board.status_code == 200, board.get_data(as_text=True)
        assert (board.get_json()["tick"], board.get_json()["boardHash"]) == _written_board(
            sql, arena_id
        )
