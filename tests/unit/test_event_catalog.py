"""The event catalog holds together: every event class is recorded by the domain, survives the
wire unchanged, has a projection handler and a section in docs/events.md; bad payloads are
poison."""

from __future__ import annotations

import inspect
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from arena.domain import events
from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.events import EVENT_TYPES, DomainEvent, PoisonEvent, RejectedPayload
from arena.domain.model import Arena, TickOutcome
from arena.readmodel.projection import EVENT_HANDLERS, project

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def every_kind_of_event() -> list[DomainEvent]:
    """One arena's life, touching every command the aggregate accepts."""
    arena, creator = Arena.create(
        name="Petri", creator_display_name="Ada", config=ArenaConfig(seed=3), now=NOW
    )
    admin = creator.player
    later = iter(NOW + timedelta(seconds=n) for n in range(1, 100))
    bo = arena.join("Bo", next(later)).player
    arena.update_config(admin, {"tickMillis": 250}, next(later))
    for command in ("start", "pause", "resume"):
        arena.transition(command, admin, next(later))
    arena.submit_action(
        bo, "ADD_NUTRIENTS", {"area": {"x": 1, "y": 1, "width": 2, "height": 2}, "amount": 2.5},
        None, next(later),
    )  # fmt: skip
    tick = TickOutcome(
        stats={"organismCount": 1, "births": 0, "deaths": 0, "mutations": 0, "avgFitness": 1.0},
        delta={"tick": 1, "nextOrganismId": 2, "owners": [bo.id], "layers": {}},
        board_hash="ab" * 32,
        applied=["a1"],
        rejected=[("a2", "the cell is occupied")],
        snapshot="eJwDAAAAAAE=",
    )
    arena.record_tick(tick, next(later), max_catch_up=5)
    arena.remove_player(admin, bo.id, next(later))
    arena.transition("stop", admin, next(later))
    return arena.collect_events()


def on_the_wire(event: DomainEvent) -> EventEnvelope:
    envelope = EventEnvelope.wrap(event, correlation_id="c", causation_id="c")
    return EventEnvelope.from_json(json.dumps(envelope.to_dict()))


def test_every_event_class_is_in_the_catalog():
    classes = {
        cls
        for _, cls in inspect.getmembers(events, inspect.isclass)
        if issubclass(cls, DomainEvent) and cls is not DomainEvent
    }

    assert classes == set(EVENT_TYPES.values())
    assert all(name == cls.__name__ for name, cls in EVENT_TYPES.items())


def test_the_domain_records_every_event_type():
    assert {event.type for event in every_kind_of_event()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", every_kind_of_event(), ids=lambda event: event.type)
def test_an_event_comes_off_the_wire_as_the_event_recorded(event):
    assert on_the_wire(event).event() == event


def test_every_event_type_has_a_projection_handler():
    assert set(EVENT_HANDLERS) == set(EVENT_TYPES.values())


def test_every_event_type_has_a_section_in_the_events_doc():
    headings = re.findall(r"^###\s+(.+)$", EVENTS_DOC.read_text(), flags=re.MULTILINE)
    documented = {name.strip() for heading in headings for name in heading.split(",")}

    assert set(EVENT_TYPES) <= documented, set(EVENT_TYPES) - documented


def test_a_whole_life_projects_from_the_wire():
    view = None
    for event in every_kind_of_event():
        view = project(view, on_the_wire(event)).view

    assert view is not None
    assert (view.status, view.version, view.config["tickMillis"]) == ("FINISHED", 13, 250)
    assert [player["displayName"] for player in view.players] == ["Ada"]
    # The tick came 2 s after the resume, 7 periods of 250 ms late: it skipped them.
    assert view.stats is not None
    assert (view.tick, view.stats["ticksSkipped"], view.last_snapshot_tick) == (1, 7, 1)


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("tick", None, "tick is missing"),
        ("tick", True, "tick must be a int"),
        ("tick", "0", "tick must be a int"),
        ("status", 1, "status must be a str"),
        ("startedAt", "yesterday", "startedAt is not an ISO 8601 time"),
    ],
)
def test_a_payload_with_a_missing_or_mistyped_field_is_rejected_as_poison(key, value, complaint):
    started = next(event for event in every_kind_of_event() if event.type == "ArenaStarted")
    envelope = on_the_wire(started)
    payload = dict(envelope.payload)
    if value is None:
        del payload[key]
    else:
        payload[key] = value
    bad = EventEnvelope.from_dict(envelope.to_dict() | {"payload": payload})

    with pytest.raises(RejectedPayload, match=f"ArenaStarted payload rejected: {complaint}"):
        bad.event()
    assert issubclass(RejectedPayload, PoisonEvent)


def test_a_nested_player_is_checked_too():
    created = on_the_wire(every_kind_of_event()[0])
    payload = created.payload | {"creator": {"playerId": "p", "displayName": "Ada"}}

    with pytest.raises(RejectedPayload, match="role is missing"):
        EventEnvelope.from_dict(created.to_dict() | {"payload": payload}).event()


def test_keys_a_schema_does_not_name_are_ignored():
    started = on_the_wire(every_kind_of_event()[3])
    extra = EventEnvelope.from_dict(
        started.to_dict() | {"payload": started.payload | {"newField": 1}}
    )

    assert extra.event() == started.event()


@pytest.mark.parametrize("cls", EVENT_TYPES.values(), ids=lambda cls: cls.__name__)
def test_an_event_reads_its_older_schemas_it_says_it_reads_and_no_newer(cls):
    event = next(event for event in every_kind_of_event() if type(event) is cls)
    wire = on_the_wire(event).to_dict()
    for version in {cls.schema_version, *cls.also_reads_schema_versions}:
        assert EventEnvelope.from_dict(wire | {"schemaVersion": version}).event() == event
    with pytest.raises(PoisonEvent, match="schema version"):
        EventEnvelope.from_dict(wire | {"schemaVersion": cls.schema_version + 1}).event()
    assert all(version < cls.schema_version for version in cls.also_reads_schema_versions)
