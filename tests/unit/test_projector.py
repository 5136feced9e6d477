"""project(): ArenaCreated builds the arena view; unknown events and schema versions are refused."""

import dataclasses
import json
from datetime import UTC, datetime

import pytest

from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent, UnknownEvent
from arena.domain.model import Arena
from arena.readmodel.projector import project

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

    view = project(None, envelope)

    assert view == {
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
    json.dumps(view)  # the view is stored as JSON


def test_view_version_is_the_envelope_aggregate_version():
    _, _, envelope = arena_created()

    view = project(None, dataclasses.replace(envelope, aggregate_version=7))

    assert view["version"] == 7


def test_projecting_arena_created_again_gives_the_same_view():
    _, _, envelope = arena_created()
    first = project(None, envelope)

    assert project(first, envelope) == first


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
