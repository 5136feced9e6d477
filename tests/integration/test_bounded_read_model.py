"""The read model's cost per arena is bounded whatever the arena's settings (issue 23, item 4):
its board history, in ticks and in bytes, and its feed of events."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.readmodel import history
from arena.readmodel.store import FEED_LENGTH
from tests.support import dish as dishes
from tests.support.api import problem_of
from tests.support.dish import Dish, seeded_dish

pytestmark = pytest.mark.integration

HISTORY = 5


@pytest.fixture
def rare_snapshots(
    app: Flask, client: FlaskClient, sql: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> Dish:
    """A dish whose write model snapshots every 10,000 ticks (the most allowed), with a read
    model that keeps the last 5 ticks."""
    monkeypatch.setattr(dishes, "CONFIG", dishes.CONFIG | {"snapshotEveryTicks": 10_000})
    with app.app_context():
        monkeypatch.setattr(components().views, "history_ticks", HISTORY)
    return seeded_dish(app, client, sql)


def test_the_history_stays_bounded_when_the_write_models_snapshots_are_rare(
    rare_snapshots: Dish,
) -> None:
    dish = rare_snapshots
    kept_deltas = []
    for _ in range(33):
        dish.tick()
        with dish.app.app_context():
            views = components().views
            kept_deltas.append(views.redis.hlen(views.keys().ticks(dish.id)))
    assert max(kept_deltas) <= 2 * HISTORY  # not one delta per tick since tick 1
    shown = dish.get("/board").get_json()
    assert (shown["tick"], shown["boardHash"]) == dish.written()[:2]
    gone = problem_of(dish.get("/snapshots/1"), 404, "tick-not-kept")
    assert gone["lastTick"] == 33 and 33 - 2 * HISTORY <= gone["firstTick"] <= 33 - HISTORY
    full = dish.get("/history", fromTick=33 - HISTORY + 1, toTick=33, mode="FULL").get_json()
    assert [board["tick"] for board in full["ticks"]] == list(range(29, 34))
    assert full["ticks"][-1]["boardHash"] == dish.written()[1]


def test_a_redelivered_tick_writes_the_same_snapshot_of_the_read_models_own(
    rare_snapshots: Dish,
) -> None:
    dish = rare_snapshots
    for _ in range(2 * HISTORY):
        dish.tick()  # projected one tick at a time, as a quiet pipeline does
    with dish.app.app_context():
        views = components().views
        own = views.redis.hgetall(views.keys().snapshots(dish.id))
        dish.projected = 0
        dish.project()  # every event again
        assert views.redis.hgetall(views.keys().snapshots(dish.id)) == own
    assert sorted(int(tick) for tick in own) == [HISTORY, 2 * HISTORY]
    assert dish.get(f"/snapshots/{HISTORY + 1}").get_json()["tick"] == HISTORY + 1


def test_the_feed_of_events_keeps_only_the_latest(dish: Dish) -> None:
    dish.tick(FEED_LENGTH + 5)
    with dish.app.app_context():
        views = components().views
        assert views.redis.llen(views.keys().feed(dish.id)) == FEED_LENGTH


def test_its_own_snapshots_come_every_hundred_ticks_if_the_history_is_longer(
    rare_snapshots: Dish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scaled down: OWN_SNAPSHOT_EVERY_TICKS 3 in a history of 12 ticks (100 in 1,000)."""
    dish = rare_snapshots
    monkeypatch.setattr(history, "OWN_SNAPSHOT_EVERY_TICKS", 3)
    with dish.app.app_context():
        views = components().views
        monkeypatch.setattr(views, "history_ticks", 12)
        kept_deltas = []
        for _ in range(30):
            dish.tick()
            kept_deltas.append(views.redis.hlen(views.keys().ticks(dish.id)))
        snapshots = sorted(int(t) for t in views.redis.hkeys(views.keys().snapshots(dish.id)))
    assert max(kept_deltas) <= 12 + 2 * 3
    assert snapshots and all(tick % 3 == 0 for tick in snapshots) and snapshots[-1] == 30
    assert dish.get("/snapshots/19").get_json()["tick"] == 19


def _history_bytes(dish: Dish) -> int:
    """What the arena's deltas and snapshots take, as the projection counts them."""
    with dish.app.app_context():
        views = components().views
        keys = views.keys()
        return sum(
            views.redis.hstrlen(key, field)
            for key in (keys.ticks(dish.id), keys.snapshots(dish.id))
            for field in views.redis.hkeys(key)
        )


def test_the_history_stays_within_its_bytes_however_many_ticks_it_may_keep(
    rare_snapshots: Dish, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scaled down: a 12 x 10 dish whose ticks take more than READ_MODEL_HISTORY_BYTES long
    before READ_MODEL_HISTORY_TICKS of them are made, as a busy 512 x 512 one's would."""
    dish = rare_snapshots
    budget = 16 * 1024
    with dish.app.app_context():
        views = components().views
        monkeypatch.setattr(views, "history_ticks", 1000)
        monkeypatch.setattr(views, "history_bytes", budget)
    kept = []
    for _ in range(60):
        dish.tick()
        kept.append(_history_bytes(dish))
    assert max(kept) <= budget
    with dish.app.app_context():
        views = components().views
        kept_deltas = views.redis.hlen(views.keys().ticks(dish.id))
    assert kept_deltas < 30  # bounded by its bytes, not by 1,000 ticks
    shown = dish.get("/board").get_json()
    assert (shown["tick"], shown["boardHash"]) == dish.written()[:2]
    gone = problem_of(dish.get("/snapshots/1"), 404, "tick-not-kept")
    first = gone["firstTick"]
    assert gone["lastTick"] == 60 and 1 < first < 60
    assert dish.get(f"/snapshots/{first}").get_json()["tick"] == first
    deltas = dish.get("/history", fromTick=first + 1, toTick=60, mode="DELTA").get_json()
    assert [entry["tick"] for entry in deltas["ticks"]] == list(range(first + 1, 61))
