"""The dish's queries at bounded cost per request (issue 23, item 4), on the real read model: a
FULL history builds at most HISTORY_FULL_MAX_CELLS cells of boards, and boards and histories go
out as they are made."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.http.schemas import HISTORY_FULL_MAX_CELLS
from tests.support import dish as dishes
from tests.support.api import error_fields, problem_of
from tests.support.dish import Dish

pytestmark = pytest.mark.integration


@pytest.fixture
def largest(
    app: Flask, client: FlaskClient, sql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> Dish:
    """A dish of the largest size, 512 x 512."""
    monkeypatch.setattr(dishes, "CONFIG", dishes.CONFIG | {"width": 512, "height": 512})
    return Dish(app, client, sql)


def test_a_full_history_of_the_largest_board_holds_two_boards_a_request(largest: Dish) -> None:
    dish = largest
    hashes = {}
    for _ in range(3):
        dish.tick()
        tick, board_hash, _ = dish.written()
        hashes[tick] = board_hash
    assert HISTORY_FULL_MAX_CELLS // (512 * 512) == 2

    too_many = dish.get("/history", fromTick=1, toTick=3, mode="FULL")

    problem = problem_of(too_many, 422, "validation-failed")
    assert error_fields(problem) == ["toTick"]
    assert "at most 2 ticks of this board in FULL mode" in too_many.get_data(as_text=True)
    full = dish.get("/history", fromTick=2, toTick=3, mode="FULL")
    assert full.status_code == 200 and full.is_streamed
    assert [(b["tick"], b["boardHash"]) for b in full.get_json()["ticks"]] == [
        (2, hashes[2]),
        (3, hashes[3]),
    ]
    deltas = dish.get("/history", fromTick=0, toTick=3)  # DELTA: as wide as HISTORY_MAX_RANGE
    assert deltas.is_streamed and deltas.headers["X-Read-Model-Version"]
    assert [entry["tick"] for entry in deltas.get_json()["ticks"]] == [0, 1, 2, 3]
    board = dish.get("/board")
    assert board.is_streamed and board.headers["Content-Type"] == "application/json"
    assert (board.get_json()["tick"], board.get_json()["boardHash"]) == (3, hashes[3])
