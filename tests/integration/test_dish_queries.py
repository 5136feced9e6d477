"""The dish's queries over the real read model, fed with the real tick path's events.

Ticks are made by the command bus on PostgreSQL (`AdvanceArenas`, as the tick task sends it, with
the arena made due by hand instead of by waiting); their outbox envelopes are applied to Redis
with `apply_events`, the projection task's call. No workers: the e2e tests run those.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import numpy as np
import pytest

from arena import stored_board
from arena.bootstrap import components
from arena.extensions import db
from arena.readmodel.verify import divergences
from tests.support.api import problem_of
from tests.support.dish import Dish

pytestmark = pytest.mark.integration


def _layer(described: dict[str, Any]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(described["data"]))
    return np.frombuffer(raw, described["dtype"]).reshape(described["shape"])


def test_the_board_the_queries_show_is_the_write_models_at_the_same_tick(dish: Dish) -> None:
    dish.tick(9)
    shown = dish.get("/board").get_json()
    tick, board_hash, stored = dish.written()
    written = stored_board.decode(stored)
    assert (shown["tick"], shown["boardHash"]) == (tick, board_hash) == (9, written.hash())
    assert (shown["width"], shown["height"], shown["encoding"]) == (12, 10, "petri-board/1")
    assert (_layer(shown["layers"]["nutrients"]) == written["nutrients"]).all()
    assert shown["layers"]["nutrients"]["scale"] == 1000
    assert _layer(shown["layers"]["antibiotic"]).shape == (3, 10, 12)
    ids = sorted(o["id"] for o in shown["layers"]["organisms"])
    assert ids == sorted(written["organism_id"][written.occupied()].tolist())
    assert shown["stats"]["organismCount"] == len(ids)


def test_the_projection_only_records_the_board_a_reader_builds_and_keeps(dish: Dish) -> None:
    dish.tick(6)
    with dish.app.app_context():
        views = components().views
        reader_board = views.keys().board(dish.id)
        assert views.redis.get(reader_board) is None  # no board decoded per tick
        shown = dish.get("/board").get_json()
        kept = views.redis.get(reader_board)
    assert kept is not None
    built = stored_board.decode(kept)
    assert (built.tick, built.hash()) == (shown["tick"], shown["boardHash"])
    assert (shown["tick"], shown["boardHash"]) == dish.written()[:2]


def test_a_missing_delta_holds_the_board_before_it_until_the_next_snapshot(dish: Dish) -> None:
    dish.tick(7)  # snapshots at ticks 4 and 8 (snapshotEveryTicks 4)
    with dish.app.app_context():
        views = components().views
        views.redis.hdel(views.keys().ticks(dish.id), "6")
        assert dish.get("/board").get_json()["tick"] == 5
        dish.tick()
        shown = dish.get("/board").get_json()
    assert (shown["tick"], shown["boardHash"]) == dish.written()[:2]
    assert shown["tick"] == 8


def test_any_tick_in_the_history_gives_its_board_and_history_is_deltas_or_boards(
    dish: Dish,
) -> None:
    boards = {}
    for tick in range(1, 11):
        dish.tick()
        boards[tick] = dish.written()[1]
    for tick in (1, 3, 4, 7, 10):  # on and between snapshots (every 4 ticks)
        response = dish.get(f"/snapshots/{tick}")
        assert response.status_code == 200, response.get_data(as_text=True)
        assert (response.get_json()["tick"], response.get_json()["boardHash"]) == (
            tick,
            boards[tick],
        )
    deltas = dish.get("/history", fromTick=2, toTick=6).get_json()
    assert [entry["tick"] for entry in deltas["ticks"]] == [2, 3, 4, 5, 6]
    assert all(set(entry) == {"tick", "stats", "delta", "advancedAt"} for entry in deltas["ticks"])
    full = dish.get("/history", fromTick=5, toTick=8, mode="FULL").get_json()
    assert [(b["tick"], b["boardHash"]) for b in full["ticks"]] == [
        (t, boards[t]) for t in (5, 6, 7, 8)
    ]
    assert dish.get("/history", fromTick=0, toTick=1).get_json()["ticks"][0]["tick"] == 0


def test_history_refuses_bad_ranges_and_says_what_it_keeps(
    dish: Dish, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dish.app.app_context():
        monkeypatch.setattr(components().views, "history_ticks", 5)
    dish.tick(14)
    problem = problem_of(dish.get("/history", fromTick=6, toTick=3), 422, "validation-failed")
    assert [error["field"] for error in problem["errors"]] == ["toTick"]
    widest = problem_of(dish.get("/history", fromTick=0, toTick=5000), 422, "validation-failed")
    assert [error["field"] for error in widest["errors"]] == ["toTick"]
    gone = problem_of(dish.get("/snapshots/1"), 404, "tick-not-kept")
    first, last = gone["firstTick"], gone["lastTick"]
    assert last == 14 and 1 < first <= 10  # at least the last 5 ticks, not all 14
    assert first >= 14 - 5 - 2 * 4  # at most history + 2 x snapshotEveryTicks
    assert dish.get(f"/snapshots/{first}").status_code == 200
    assert dish.get(f"/snapshots/{first - 1}").status_code == 404
    assert dish.get("/snapshots/15").status_code == 404
    problem_of(dish.get("/history", fromTick=1, toTick=4), 404, "tick-not-kept")
    assert dish.get("/history", fromTick=first + 1, toTick=14).status_code == 200


def test_leaderboard_organism_genome_and_stats(dish: Dish) -> None:
    dish.tick(6)
    board = stored_board.decode(dish.written()[2])
    leaders = dish.get("/leaderboard", top=2).get_json()
    assert [entry["rank"] for entry in leaders["entries"]] == [1, 2]
    assert leaders["entries"][0]["fitness"] >= leaders["entries"][1]["fitness"]
    standings = {p["playerId"]: p for p in leaders["players"]}
    owners = [board.owners[o] for o in board["owner"][board.occupied()].tolist()]
    assert {player: standings[player]["organisms"] for player in standings} == {
        player: owners.count(player) for player in set(owners)
    }
    assert {p["displayName"] for p in leaders["players"]} <= {"Ada", "Bob"}

    best = leaders["entries"][0]
    organism = dish.get(f"/organisms/{best['organismId']}").get_json()
    assert (organism["fitness"], organism["kind"]) == (best["fitness"], best["kind"])
    assert set(organism["lineage"]) == {"parentId", "generation", "mutations"}
    genome = dish.get(f"/genomes/{best['genomeSignature']}").get_json()
    assert genome["liveOrganisms"] >= 1 and genome["kind"] == best["kind"]
    assert dish.get("/organisms/999999").status_code == 404
    assert dish.get("/genomes/ffffffffffffffff").status_code == 404

    stats = dish.get("/stats", windowSeconds=3600).get_json()
    recorded = dish.sql.execute(
        "SELECT sum((envelope->'payload'->'stats'->>'births')::int) FROM outbox"
        " WHERE aggregate_id = %s AND event_type = 'TickAdvanced'",
        (dish.id,),
    ).fetchone()[0]
    assert stats["ticksInWindow"] == 6
    assert stats["birthsPerSec"] == pytest.approx(recorded / 3600, abs=1e-4)
    assert stats["organismCount"] == board.organism_count()
    assert sum(g["liveOrganisms"] for g in stats["topGenomes"]) <= board.organism_count()
    problem_of(dish.get("/stats", windowSeconds=0), 422, "validation-failed")


def test_a_redelivered_tick_changes_neither_the_board_nor_its_history(dish: Dish) -> None:
    dish.tick(5)
    before = dish.get("/board").get_json()["boardHash"]
    dish.projected = 0
    dish.project()  # every event again, as after a crash between the view and the board
    assert dish.get("/board").get_json()["boardHash"] == before
    assert json.dumps(dish.get("/history", fromTick=1, toTick=5).get_json()["ticks"])


def test_verify_compares_the_read_models_board_with_the_write_models(dish: Dish) -> None:
    dish.tick(3)
    with dish.app.app_context():
        views = components().views
        assert [d for d in divergences(db.session, views) if d.arena_id == dish.id] == []
        older = stored_board.decode(dish.written()[2])
        older.tick -= 1  # a reader's board gone wrong: the next read starts from it
        older["energy"][:] = 0
        views.redis.set(views.keys().board(dish.id), stored_board.encode(older))
        found = [d for d in divergences(db.session, views) if d.arena_id == dish.id]
    assert [(d.field, d.expected) for d in found] == [("boardHash", dish.written()[1])]


def test_the_pipeline_counts_every_applied_event(dish: Dish) -> None:
    dish.project()

    def applied() -> int:
        return int(dish.client.get("/api/v1/pipeline").get_json()["projections"]["appliedTotal"])

    before, version = applied(), dish.get("").get_json()["version"]
    dish.tick(3)
    assert applied() - before == dish.get("").get_json()["version"] - version
