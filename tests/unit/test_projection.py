"""project(): each event's change (the typed view, its feed line, what the board history records);
unknown events and schema versions are refused. No Redis."""

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest

from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent, UnknownEvent
from arena.domain.model import Arena, TickOutcome
from arena.readmodel.projection import (
    EVENT_HANDLERS,
    Handled,
    SnapshotRecord,
    TickRecord,
    project,
)
from arena.readmodel.view import ArenaView

NOW = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)


def arena_created():
    arena, creator = Arena.create(
        name="Petri", creator_display_name="Ada", config=ArenaConfig(seed=9), now=NOW
    )
    [event] = arena.collect_events()
    envelope = EventEnvelope.wrap(event, correlation_id="c", causation_id="c")
    return arena, creator, envelope


def test_arena_created_builds_the_whole_view():
    arena, creator, envelope = arena_created()

    change = project(None, envelope)

    assert change.view.to_json() == {
        "id": arena.id,
        "name": "Petri",
        "status": "PENDING",
        "tick": 0,
        "config": ArenaConfig(seed=9).to_dict(),
        "players": [creator.player.snapshot().to_json()],
        "createdAt": NOW.isoformat(),
        "startedAt": None,
        "finishedAt": None,
        "version": 1,
    }
    assert ArenaView.loads(change.view.dumps()) == change.view  # stored as JSON, read back whole
    assert change.history is None
    assert json.loads(change.feed_line)["type"] == "ArenaCreated"


def test_view_version_is_the_envelope_aggregate_version():
    _, _, envelope = arena_created()

    change = project(None, dataclasses.replace(envelope, aggregate_version=7))

    assert change.view.version == 7
    assert json.loads(change.feed_line)["version"] == 7


def test_projecting_arena_created_again_gives_the_same_change():
    _, _, envelope = arena_created()
    first = project(None, envelope)

    assert project(first.view, envelope) == first


def test_a_tick_records_its_entry_and_snapshot_and_leaves_the_board_out_of_the_feed():
    arena, creator, created = arena_created()
    arena.transition("start", creator.player, NOW)
    tick = TickOutcome(
        stats={"organismCount": 1, "births": 0, "deaths": 0, "mutations": 0, "avgFitness": 1.0},
        delta={"tick": 1, "nextOrganismId": 2, "owners": [], "layers": {}},
        board_hash="ab" * 32,
        applied=[],
        rejected=[],
        snapshot="eJwDAAAAAAE=",
    )
    arena.record_tick(tick, NOW + timedelta(seconds=1), max_catch_up=5)
    view = project(None, created).view
    changes = []
    for event in arena.collect_events():
        changes.append(
            project(view, EventEnvelope.wrap(event, correlation_id="c", causation_id="c"))
        )
        view = changes[-1].view

    ticks = [c.history for c in changes if isinstance(c.history, TickRecord)]
    snapshots = [c.history for c in changes if isinstance(c.history, SnapshotRecord)]
    assert [t.tick for t in ticks] == [s.tick for s in snapshots] == [view.tick] == [1]
    assert set(json.loads(ticks[0].entry)) == {"tick", "stats", "delta", "advancedAt"}
    assert json.loads(ticks[0].stats_line)["stats"] == view.stats
    assert snapshots[0].board == base64.b64decode("eJwDAAAAAAE=")
    assert (view.board_hash, view.last_snapshot_tick) == ("ab" * 32, 1)
    for change in changes:
        assert {"delta", "board"}.isdisjoint(json.loads(change.feed_line)["payload"])


def test_unknown_event_type_raises_unknown_event():
    _, _, envelope = arena_created()

    with pytest.raises(UnknownEvent, match="ArenaExploded"):
        project(None, dataclasses.replace(envelope, event_type="ArenaExploded"))


@pytest.mark.parametrize("schema_version", [0, 2, 99])
def test_unknown_schema_version_raises_unknown_event(schema_version):
    _, _, envelope = arena_created()

    with pytest.raises(UnknownEvent, match="schema version"):
        project(None, dataclasses.replace(envelope, schema_version=schema_version))


def test_unknown_event_is_poison_so_it_is_not_retried():
    assert issubclass(UnknownEvent, PoisonEvent)


def test_the_view_is_at_the_events_version_whatever_its_handler_says(monkeypatch):
    """A handler deployed as a fix (`flask dlq replay`) may change fields only."""
    arena, _, created = arena_created()
    arena.join("Bo", NOW)
    [joined] = arena.collect_events()
    monkeypatch.setitem(EVENT_HANDLERS, type(joined), lambda view, event: Handled(view))
    view = project(None, created).view

    change = project(view, EventEnvelope.wrap(joined, correlation_id="c", causation_id="c"))

    assert change.view.version == 2
