"""apply_events on the real read-model Redis: a batch of many arenas' events gives the same views
as applying them one by one, with duplicates, gaps, stalls and concurrent writers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from redis import Redis

from arena.bootstrap import components
from arena.domain.envelope import EventEnvelope
from arena.readmodel import writer
from arena.readmodel.store import ArenaViews
from arena.readmodel.writer import EventOutOfOrder, Outcome, apply_event, apply_events, stall

pytestmark = pytest.mark.integration

AT = "2026-11-25T08:00:00+00:00"


def _event(arena_id: str, version: int) -> EventEnvelope:
    if version == 1:
        event_type = "ArenaCreated"
        payload: dict[str, object] = {
            "arenaId": arena_id,
            "name": f"Batch {arena_id[:8]}",
            "status": "PENDING",
            "config": {"width": 8},
            "createdAt": AT,
            "creator": {"playerId": "p1", "displayName": "Ada", "role": "ADMIN", "joinedAt": AT},
        }
    elif version == 2:
        event_type = "ArenaStarted"
        payload = {"status": "RUNNING", "tick": 0, "startedAt": AT}
    else:
        event_type = "PlayerJoined"
        payload = {"playerId": f"p{version}", "displayName": "Bo", "role": "PLAYER", "joinedAt": AT}
    return EventEnvelope(
        event_type=event_type,
        aggregate_id=arena_id,
        aggregate_version=version,
        occurred_at=AT,
        payload=payload,
        correlation_id="c",
        causation_id="c",
    )


@pytest.fixture
def views(app: Flask) -> ArenaViews:
    return components(app).views


def _new_arena() -> str:
    return str(uuid.uuid4())


def test_a_batch_of_many_arenas_gives_the_views_one_by_one_application_gives(
    views: ArenaViews,
) -> None:
    batched, single = [_new_arena() for _ in range(5)], [_new_arena() for _ in range(5)]
    interleaved = [(n, v) for v in range(1, 5) for n in range(5)]

    results = apply_events(views, [_event(batched[n], v) for n, v in interleaved])
    for n, v in interleaved:
        apply_event(views, _event(single[n], v))

    assert results == [Outcome.APPLIED] * len(interleaved)
    for mine, theirs in zip(batched, single, strict=True):
        view, reference = views.get(mine), views.get(theirs)
        assert view is not None and reference is not None
        assert view["version"] == 4 and view["status"] == "RUNNING"
        assert {k: v for k, v in view.items() if k not in {"id", "name"}} == {
            k: v for k, v in reference.items() if k not in {"id", "name"}
        }
        assert [e["version"] for e in views.feed(mine, 10)] == [4, 3, 2, 1]
    running, _ = views.page(limit=1000, offset=0, status="RUNNING")
    pending, _ = views.page(limit=1000, offset=0, status="PENDING")
    assert set(batched) <= {v["id"] for v in running}
    assert not set(batched) & {v["id"] for v in pending}  # the old status index was left


def test_duplicates_are_no_ops_and_a_gap_waits_without_holding_back_other_arenas(
    views: ArenaViews,
) -> None:
    gapped, healthy = _new_arena(), _new_arena()
    apply_events(views, [_event(gapped, 1), _event(healthy, 1)])

    results = apply_events(
        views,
        [_event(gapped, 1), _event(gapped, 3), _event(gapped, 4), _event(healthy, 2)],
    )

    assert results[0] is Outcome.DUPLICATE
    assert isinstance(results[1], EventOutOfOrder) and isinstance(results[2], EventOutOfOrder)
    assert results[3] is Outcome.APPLIED
    assert views.get(gapped)["version"] == 1  # type: ignore[index]
    assert views.get(healthy)["version"] == 2  # type: ignore[index]


def test_a_rejected_event_stops_its_arena_only_and_later_ones_are_left_to_the_caller(
    views: ArenaViews,
) -> None:
    broken, healthy = _new_arena(), _new_arena()
    unknown = EventEnvelope(
        event_type="NoSuchEvent",
        aggregate_id=broken,
        aggregate_version=2,
        occurred_at=AT,
        payload={},
        correlation_id="c",
        causation_id="c",
    )

    results = apply_events(
        views, [_event(broken, 1), unknown, _event(broken, 3), _event(healthy, 1)]
    )

    assert results[0] is Outcome.APPLIED
    assert isinstance(results[1], ValueError)
    assert results[2] is None
    assert results[3] is Outcome.APPLIED
    assert views.get(broken)["version"] == 1  # type: ignore[index]


def test_a_stalled_arenas_events_are_parked_not_applied(views: ArenaViews) -> None:
    arena_id = _new_arena()
    apply_events(views, [_event(arena_id, 1)])
    stall(views, arena_id, version=2, raw_event="{}", reason="test")

    results = apply_events(views, [_event(arena_id, 3)])

    assert results == [Outcome.PARKED]
    assert views.get(arena_id)["version"] == 1  # type: ignore[index]
    assert [version for _, version in views.parked(arena_id)] == [2, 3]


def test_a_view_changed_after_it_was_read_is_read_again_never_overwritten(
    views: ArenaViews, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker applies version 2 between this batch's read and its write."""
    arena_id = _new_arena()
    apply_events(views, [_event(arena_id, 1)])
    redis: Redis = views.redis
    real_mget = redis.mget
    raced = False

    def mget_then_race(keys: list[str]) -> list[bytes | None]:
        nonlocal raced
        values = real_mget(keys)
        if not raced:
            raced = True
            assert apply_event(views, _event(arena_id, 2)) is Outcome.APPLIED
        return values

    monkeypatch.setattr(redis, "mget", mget_then_race)
    results = apply_events(views, [_event(arena_id, 2), _event(arena_id, 3)])

    assert results == [Outcome.DUPLICATE, Outcome.APPLIED]
    assert [e["version"] for e in views.feed(arena_id, 10)] == [3, 2, 1]  # no line twice


def test_a_generation_being_rebuilt_gets_the_live_events_it_can_take(views: ArenaViews) -> None:
    arena_id = _new_arena()
    building = f"test-{uuid.uuid4().hex[:8]}"
    views.start_building(building)
    try:
        apply_events(views, [_event(arena_id, 1), _event(arena_id, 2)])
    finally:
        views.stop_building()
    try:
        rebuilt = views.keys(building)
        raw = views.redis.get(rebuilt.view(arena_id))
        assert raw is not None and b'"version":2' in raw
    finally:
        views.drop(building)


def _paused(arena_id: str, version: int) -> EventEnvelope:
    return EventEnvelope(
        event_type="ArenaPaused",
        aggregate_id=arena_id,
        aggregate_version=version,
        occurred_at=AT,
        payload={"status": "PAUSED", "tick": 0, "pausedAt": AT},
        correlation_id="c",
        causation_id="c",
    )


def _listed(views: ArenaViews, status: str, arena_id: str) -> bool:
    listed, _ = views.page(limit=1000, offset=0, status=status)
    return arena_id in {view["id"] for view in listed}


def test_redelivered_events_repair_the_indexes_a_crash_left_behind(views: ArenaViews) -> None:
    """The indexes across arenas are written after the arena's own write: a crash between the
    two leaves the task unacknowledged, and its redelivered events rewrite them."""
    arena_id = _new_arena()
    apply_events(views, [_event(arena_id, 1), _event(arena_id, 2)])
    keys = views.keys()
    views.redis.zrem(keys.by_status("RUNNING"), arena_id)  # as if the index write never came
    views.redis.zadd(keys.by_status("PENDING"), {arena_id: 0})
    views.redis.zrem(keys.by_created, arena_id)

    assert apply_events(views, [_event(arena_id, 2)]) == [Outcome.DUPLICATE]

    assert _listed(views, "RUNNING", arena_id) and not _listed(views, "PENDING", arena_id)
    assert views.redis.zscore(keys.by_created, arena_id) is not None


def test_a_late_index_write_of_an_older_view_is_corrected(
    views: ArenaViews, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer applies and indexes version 3 (paused) between this batch's write of
    version 2 (running) and its index write, which lands last: the writer reads the view back
    and indexes what it is now."""
    arena_id = _new_arena()
    apply_events(views, [_event(arena_id, 1)])
    real_index = writer._index
    raced = False

    def index_after_a_newer_write(*args: Any) -> None:
        nonlocal raced
        if not raced:
            raced = True
            assert apply_event(views, _paused(arena_id, 3)) is Outcome.APPLIED
        real_index(*args)

    monkeypatch.setattr(writer, "_index", index_after_a_newer_write)
    assert apply_events(views, [_event(arena_id, 2)]) == [Outcome.APPLIED]

    assert views.get(arena_id)["status"] == "PAUSED"  # type: ignore[index]
    assert _listed(views, "PAUSED", arena_id)
    assert not _listed(views, "RUNNING", arena_id)
