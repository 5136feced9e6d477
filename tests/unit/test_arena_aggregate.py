"""Arena.create: the opened arena, its ArenaCreated event, name rules and the creator's token."""

import hashlib
import json
import unicodedata
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.domain.config import ArenaConfig
from arena.domain.errors import ValidationFailed
from arena.domain.model import Arena, ArenaStatus, PlayerRole, hash_token

NOW = datetime(2025, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
CONFIG = ArenaConfig(width=32, height=16, seed=1234)


def create(name="Petri One", display_name="Ada"):
    return Arena.create(name=name, creator_display_name=display_name, config=CONFIG, now=NOW)


def test_new_arena_is_pending_at_version_1_with_the_creator_as_only_player():
    arena, creator = create()

    assert arena.status is ArenaStatus.PENDING
    assert arena.version == 1
    assert arena.tick == 0
    assert arena.config == CONFIG
    assert arena.created_at == NOW
    assert arena.started_at is None
    assert arena.finished_at is None
    assert arena.players == [creator.player]
    assert uuid.UUID(arena.id)


def test_creator_joins_as_admin_at_creation_time():
    _, creator = create(display_name="Ada")

    assert creator.player.role is PlayerRole.ADMIN
    assert creator.player.display_name == "Ada"
    assert creator.player.joined_at == NOW
    assert uuid.UUID(creator.player.id)


def test_create_records_exactly_one_arena_created_event_with_the_documented_payload():
    arena, creator = create()

    events = arena.collect_events()

    assert len(events) == 1
    [event] = events
    assert event.type == "ArenaCreated"
    assert event.aggregate_id == arena.id
    assert event.version == 1
    assert event.occurred_at == NOW
    assert event.payload == {
        "arenaId": arena.id,
        "name": "Petri One",
        "status": "PENDING",
        "config": CONFIG.to_dict(),
        "createdAt": "2025-01-02T03:04:05.678000+00:00",
        "creator": {
            "playerId": creator.player.id,
            "displayName": "Ada",
            "role": "ADMIN",
            "joinedAt": "2025-01-02T03:04:05.678000+00:00",
        },
    }
    json.dumps(event.payload)  # the payload must be JSON-ready for the outbox


def test_collect_events_hands_the_events_over_only_once():
    arena, _ = create()

    first = arena.collect_events()
    second = arena.collect_events()

    assert len(first) == 1
    assert second == []
    assert arena.events == []
    assert arena.version == 1  # handing events over does not change the version


def test_token_is_returned_once_and_only_its_sha256_hash_is_stored():
    arena, creator = create()
    payload_text = json.dumps(arena.collect_events()[0].payload)

    assert len(creator.token) >= 32
    assert creator.player.token_hash == hashlib.sha256(creator.token.encode()).hexdigest()
    assert creator.player.token_hash == hash_token(creator.token)
    assert creator.token not in payload_text
    assert creator.player.token_hash not in payload_text
    assert creator.token not in repr(arena)
    assert "token" not in json.dumps(creator.player.snapshot().to_json()).lower()


def test_hash_token_is_hex_sha256():
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

    assert hash_token("abc") == expected


def test_each_arena_gets_its_own_id_player_id_and_token():
    first_arena, first_creator = create()
    second_arena, second_creator = create()

    assert first_arena.id != second_arena.id
    assert first_creator.player.id != second_creator.player.id
    assert first_creator.token != second_creator.token


@pytest.mark.parametrize("name", ["abc", "a" * 80, "  abc  ", "\tabc\n", " " + "a" * 80 + " "])
def test_name_of_3_to_80_characters_after_strip_is_accepted_and_stored_stripped(name):
    arena, _ = create(name=name)

    assert arena.name == name.strip()
    assert arena.collect_events()[0].payload["name"] == name.strip()


@pytest.mark.parametrize("name", ["", "ab", "  ab  ", "   ", "a" * 81, " " + "a" * 81])
def test_name_outside_3_to_80_characters_after_strip_is_rejected(name):
    with pytest.raises(ValidationFailed) as raised:
        create(name=name)

    assert set(raised.value.field_errors) == {"name"}


@pytest.mark.parametrize(
    "name", ["ab\x00c", "dish\x1b[31m", "lone \ud83d surrogate", "tab\tinside"]
)
def test_a_name_with_control_characters_or_lone_surrogates_is_rejected(name):
    with pytest.raises(ValidationFailed) as raised:
        create(name=name)

    assert raised.value.field_errors == {"name": "must not contain control characters"}


@pytest.mark.parametrize("display_name", ["a", "b" * 40, "  Ada  "])
def test_display_name_of_1_to_40_characters_after_strip_is_accepted_and_stored_stripped(
    display_name,
):
    _, creator = create(display_name=display_name)

    assert creator.player.display_name == display_name.strip()


@pytest.mark.parametrize("display_name", ["", "   ", "b" * 41])
def test_display_name_outside_1_to_40_characters_after_strip_is_rejected(display_name):
    with pytest.raises(ValidationFailed) as raised:
        create(display_name=display_name)

    assert set(raised.value.field_errors) == {"displayName"}


@settings(database=None)
@given(st.text(max_size=100))
def test_create_accepts_a_name_exactly_when_its_stripped_length_is_3_to_80_and_it_is_text(name):
    text = not any(unicodedata.category(c) in {"Cc", "Cs"} for c in name.strip())
    valid = 3 <= len(name.strip()) <= 80 and text
    if valid:
        arena, _ = create(name=name)
        assert arena.name == name.strip()
    else:
        with pytest.raises(ValidationFailed):
            create(name=name)
