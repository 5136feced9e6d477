"""The dish comes alive on the real pipeline: beat schedules ticks, a worker makes them, and
their events reach the read model, whose board matches the write model's, tick for tick."""

from __future__ import annotations

import psycopg
from flask.testing import FlaskClient

from harness.arenas import TICKING, ticks_recorded
from harness.waiting import wait_until
from tests.e2e.conftest import Pipeline
from tests.support.api import arena_path, create_arena, drive, join
from tests.support.reads import read_at_version
from tests.support.ticks import act, spawn, written_board

DEADLINE_SECONDS = 60


def test_a_running_arena_ticks_and_its_board_matches_the_write_model(
    client: FlaskClient, sql: psycopg.Connection, pipeline: Pipeline
) -> None:
    arena_id, ada = create_arena(client, name="Living dish", config=TICKING)
    bob = join(client, arena_id, "Bob")
    drive(client, arena_id, ada, "start")
    everywhere = {"area": {"x": 0, "y": 0, "width": 16, "height": 16}, "amount": 8.0}
    act(client, arena_id, ada.token, {"type": "ADD_NUTRIENTS", "payload": everywhere})
    placed = [act(client, arena_id, bob.token, spawn("BACTERIA", x, 8)) for x in (2, 6, 10)]
    taken = act(client, arena_id, ada.token, spawn("FUNGI", 6, 8))  # Bob's cell: rejected
    act(client, arena_id, ada.token, spawn("PHAGE", 14, 14))

    def ticked_past_a_snapshot() -> bool:
        pipeline.assert_running()
        response = client.get(arena_path(arena_id))  # 404 until the first event is projected
        return response.status_code == 200 and response.get_json()["tick"] >= 15

    wait_until(ticked_past_a_snapshot, deadline_seconds=DEADLINE_SECONDS, what="15 ticks")
    paused = client.post(arena_path(arena_id, "/pause"), headers=ada.auth)
    assert paused.status_code == 200
    version = paused.get_json()["version"]

    view = read_at_version(client, arena_path(arena_id), version).get_json()
    shown = read_at_version(client, arena_path(arena_id, "/board"), version).get_json()
    written_tick, written_hash = written_board(sql, arena_id)
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
        return written_board(sql, arena_id)[0] > written_tick

    wait_until(ticked_on, deadline_seconds=DEADLINE_SECONDS, what="ticks after the resume")
    ticks = ticks_recorded(sql, arena_id)
    assert ticks == list(range(1, len(ticks) + 1))  # no tick lost, none made twice
    drive(client, arena_id, ada, "stop")
