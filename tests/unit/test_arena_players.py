"""Arena.join, Arena.remove_player and token lookup: names, capacity, roles, leaving and removal."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from arena.domain.config import ArenaConfig
from arena.domain.errors import (
    Conflict,
    IllegalTransition,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from arena.domain.model import Arena, ArenaStatus, PlayerRole, hash_token

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
CONFIG = ArenaConfig(width=16, height=8, max_players=4, seed=42)

PATH_TO = {
    ArenaStatus.PENDING: [],
    ArenaStatus.RUNNING: ["start"],
    ArenaStatus.PAUSED: ["start", "pause"],
    ArenaStatus.FINISHED: ["stop"],
}
OPEN_STATUSES = [ArenaStatus.PENDING, ArenaStatus.RUNNING, ArenaStatus.PAUSED]


def new_arena(config=CONFIG, creator_name="Ada"):
    arena, creator = Arena.create(
        name="Players", creator_display_name=creator_name, config=config, now=NOW
    )
    return arena, creator.player


def arena_in(status, *, others=("Bob", "Cy")):
    """An arena in `status` with its admin Ada and the named ordinary players."""
    arena, admin = new_arena()
    players = [arena.join(name, NOW).player for name in others]
    for command in PATH_TO[status]:
        arena.transition(command, admin, NOW)
    return arena, admin, players


def assert_refused(arena, error, command, *args):
    """The command raises `error` and leaves every part of the arena exactly as it was."""
    before = copy.deepcopy(arena)
    with pytest.raises(error) as raised:
        command(*args)
    assert arena == before
    return raised.value


# --- join -----------------------------------------------------------------------------------------


def test_join_admits_a_player_with_the_player_role_and_records_player_joined():
    arena, _ = new_arena()
    version = arena.version

    newcomer = arena.join("Bob", LATER)

    player = newcomer.player
    assert player.role is PlayerRole.PLAYER
    assert player.display_name == "Bob"
    assert player.joined_at == LATER
    assert arena.players[-1] is player
    assert len(arena.players) == 2
    assert arena.version == version + 1
    event = arena.events[-1]
    assert event.type == "PlayerJoined"
    assert event.version == arena.version
    assert event.occurred_at == LATER
    assert event.payload == {
        "playerId": player.id,
        "displayName": "Bob",
        "role": "PLAYER",
        "joinedAt": LATER.isoformat(),
    }
    json.dumps(event.payload)


def test_the_creator_is_the_only_admin_and_joiners_are_players():
    _, admin, players = arena_in(ArenaStatus.PENDING)

    assert admin.role is PlayerRole.ADMIN
    assert [p.role for p in players] == [PlayerRole.PLAYER, PlayerRole.PLAYER]


def test_joined_player_token_is_only_stored_as_a_hash_and_not_in_the_event():
    arena, _ = new_arena()

    newcomer = arena.join("Bob", NOW)

    assert newcomer.player.token_hash == hash_token(newcomer.token)
    text = json.dumps(arena.events[-1].payload)
    assert newcomer.token not in text
    assert newcomer.player.token_hash not in text


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_join_is_allowed_until_the_arena_is_finished(status):
    arena, _, _ = arena_in(status)

    newcomer = arena.join("Dee", NOW)

    assert newcomer.player in arena.players


def test_join_on_a_finished_arena_is_an_illegal_transition_and_changes_nothing():
    arena, _, _ = arena_in(ArenaStatus.FINISHED)

    assert_refused(arena, IllegalTransition, arena.join, "Dee", NOW)


@pytest.mark.parametrize(
    "display_name", ["a", "b" * 40, "  Dee  ", "\tDee\n", " " + "c" * 40 + " "]
)
def test_join_accepts_a_display_name_of_1_to_40_characters_after_strip_and_stores_it_stripped(
    display_name,
):
    arena, _ = new_arena()

    newcomer = arena.join(display_name, NOW)

    assert newcomer.player.display_name == display_name.strip()
    assert arena.events[-1].payload["displayName"] == display_name.strip()


@pytest.mark.parametrize("display_name", ["", " ", "\t\n", "b" * 41, " " + "c" * 41 + " "])
def test_join_refuses_a_display_name_outside_1_to_40_characters_naming_display_name(
    display_name,
):
    arena, _ = new_arena()

    error = assert_refused(arena, ValidationFailed, arena.join, display_name, NOW)

    assert set(error.field_errors) == {"displayName"}


@pytest.mark.parametrize("taken", ["Ada", "ada", "ADA", "  aDa ", "Bob", "BOB", " bob"])
def test_join_refuses_a_display_name_already_used_in_the_arena_ignoring_case_as_conflict(taken):
    arena, _, _ = arena_in(ArenaStatus.PENDING, others=("Bob",))

    assert_refused(arena, Conflict, arena.join, taken, NOW)


def test_the_same_display_name_may_be_used_in_another_arena():
    first, _ = new_arena(creator_name="Ada")
    second, _ = new_arena(creator_name="Bob")

    first.join("Bob", NOW)
    second.join("Ada", NOW)


def test_a_display_name_becomes_free_again_when_its_player_leaves():
    arena, _, [bob, _] = arena_in(ArenaStatus.PENDING)
    arena.remove_player(bob, bob.id, NOW)

    newcomer = arena.join("BOB", NOW)

    assert newcomer.player.display_name == "BOB"


def test_join_is_allowed_while_below_max_players_and_refused_as_conflict_once_full():
    arena, _ = new_arena(ArenaConfig(max_players=3, seed=1))
    arena.join("Bob", NOW)
    arena.join("Cy", NOW)  # the third and last seat
    assert len(arena.players) == 3

    assert_refused(arena, Conflict, arena.join, "Dee", NOW)


def test_an_arena_with_max_players_1_admits_nobody_but_its_creator():
    arena, _ = new_arena(ArenaConfig(max_players=1, seed=1))

    assert_refused(arena, Conflict, arena.join, "Bob", NOW)


def test_a_seat_freed_by_a_leaving_player_can_be_taken_again():
    arena, _ = new_arena(ArenaConfig(max_players=2, seed=1))
    bob = arena.join("Bob", NOW).player
    assert_refused(arena, Conflict, arena.join, "Cy", NOW)

    arena.remove_player(bob, bob.id, NOW)

    assert arena.join("Cy", NOW).player.display_name == "Cy"


def test_each_joined_player_gets_its_own_id_and_token():
    arena, admin = new_arena()

    bob = arena.join("Bob", NOW)
    cy = arena.join("Cy", NOW)

    assert len({admin.id, bob.player.id, cy.player.id}) == 3
    assert bob.token != cy.token


# --- token lookup ---------------------------------------------------------------------------------


def test_player_with_token_hash_finds_the_player_the_token_was_issued_to():
    arena, creator = Arena.create(name="Tokens", creator_display_name="Ada", config=CONFIG, now=NOW)
    bob = arena.join("Bob", NOW)
    cy = arena.join("Cy", NOW)

    assert arena.player_with_token_hash(hash_token(creator.token)) is creator.player
    assert arena.player_with_token_hash(hash_token(bob.token)) is bob.player
    assert arena.player_with_token_hash(hash_token(cy.token)) is cy.player


def test_player_with_token_hash_returns_none_for_an_unknown_token_or_a_raw_token():
    arena, _ = new_arena()
    bob = arena.join("Bob", NOW)

    assert arena.player_with_token_hash(hash_token("not a token")) is None
    assert arena.player_with_token_hash(bob.token) is None  # the raw token is not its hash


def test_a_token_from_another_arena_is_not_recognised():
    first, _ = new_arena()
    second, _ = new_arena()
    bob = first.join("Bob", NOW)

    assert second.player_with_token_hash(hash_token(bob.token)) is None


def test_a_removed_players_token_no_longer_finds_anyone():
    arena, admin = new_arena()
    bob = arena.join("Bob", NOW)
    arena.remove_player(admin, bob.player.id, NOW)

    assert arena.player_with_token_hash(hash_token(bob.token)) is None


def test_player_by_id_raises_not_found_for_an_unknown_id():
    arena, admin = new_arena()

    assert arena.player(admin.id) is admin
    with pytest.raises(NotFound):
        arena.player("no-such-player")


# --- leaving and removal --------------------------------------------------------------------------


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_a_player_may_leave_and_player_left_has_no_remover(status):
    arena, _, [bob, cy] = arena_in(status)
    version = arena.version

    arena.remove_player(bob, bob.id, LATER)

    assert bob not in arena.players
    assert cy in arena.players
    assert arena.version == version + 1
    event = arena.events[-1]
    assert event.type == "PlayerLeft"
    assert event.version == arena.version
    assert event.occurred_at == LATER
    assert event.payload == {
        "playerId": bob.id,
        "displayName": "Bob",
        "role": "PLAYER",
        "removedBy": None,
        "leftAt": LATER.isoformat(),
    }
    json.dumps(event.payload)


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_an_admin_may_remove_another_player_and_player_left_names_the_admin(status):
    arena, admin, [bob, _] = arena_in(status)

    arena.remove_player(admin, bob.id, LATER)

    assert bob not in arena.players
    assert arena.events[-1].payload == {
        "playerId": bob.id,
        "displayName": "Bob",
        "role": "PLAYER",
        "removedBy": admin.id,
        "leftAt": LATER.isoformat(),
    }


def test_a_non_admin_removing_another_player_is_permission_denied():
    arena, _, [bob, cy] = arena_in(ArenaStatus.RUNNING)

    assert_refused(arena, PermissionDenied, arena.remove_player, bob, cy.id, NOW)


def test_a_non_admin_removing_the_admin_is_permission_denied():
    arena, admin, [bob, _] = arena_in(ArenaStatus.PENDING)

    assert_refused(arena, PermissionDenied, arena.remove_player, bob, admin.id, NOW)


@pytest.mark.parametrize("actor_index", [0, 1], ids=["by_admin", "by_player"])
def test_removing_an_unknown_player_is_not_found(actor_index):
    arena, admin, [bob, _] = arena_in(ArenaStatus.PENDING)
    actor = [admin, bob][actor_index]

    assert_refused(arena, NotFound, arena.remove_player, actor, "no-such-player", NOW)


def test_removing_a_player_twice_is_not_found_the_second_time():
    arena, admin, [bob, _] = arena_in(ArenaStatus.PENDING)
    arena.remove_player(admin, bob.id, NOW)

    assert_refused(arena, NotFound, arena.remove_player, admin, bob.id, NOW)


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_the_last_admin_cannot_leave_while_other_players_remain(status):
    arena, admin, _ = arena_in(status)

    assert_refused(arena, Conflict, arena.remove_player, admin, admin.id, NOW)


def test_the_last_admin_cannot_leave_while_even_one_other_player_remains():
    arena, admin, [_] = arena_in(ArenaStatus.PENDING, others=("Bob",))

    assert_refused(arena, Conflict, arena.remove_player, admin, admin.id, NOW)


def test_the_last_admin_may_leave_once_alone():
    arena, admin, [bob, cy] = arena_in(ArenaStatus.PAUSED)
    arena.remove_player(admin, bob.id, NOW)
    arena.remove_player(cy, cy.id, NOW)

    arena.remove_player(admin, admin.id, LATER)

    assert arena.players == []
    assert arena.events[-1].payload == {
        "playerId": admin.id,
        "displayName": "Ada",
        "role": "ADMIN",
        "removedBy": None,
        "leftAt": LATER.isoformat(),
    }


def test_whoever_joins_an_arena_left_without_players_becomes_its_admin():
    # docs/events.md: PlayerJoined role is "PLAYER" (or "ADMIN" when the arena had no admin).
    arena, admin, _ = arena_in(ArenaStatus.PENDING, others=())
    arena.remove_player(admin, admin.id, NOW)

    newcomer = arena.join("Bob", LATER).player

    assert newcomer.role is PlayerRole.ADMIN
    assert arena.events[-1].payload["role"] == "ADMIN"
    arena.transition("start", newcomer, LATER)  # the arena stays governable
    assert arena.status is ArenaStatus.RUNNING


def test_the_next_joiner_after_the_new_admin_is_an_ordinary_player():
    arena, admin, _ = arena_in(ArenaStatus.PENDING, others=())
    arena.remove_player(admin, admin.id, NOW)
    arena.join("Bob", NOW)

    assert arena.join("Cy", NOW).player.role is PlayerRole.PLAYER


def test_an_admin_may_leave_while_another_admin_remains():
    arena, admin, [bob, _] = arena_in(ArenaStatus.PENDING)
    bob.role = PlayerRole.ADMIN  # no command promotes yet; a second admin is set up by hand

    arena.remove_player(admin, admin.id, NOW)

    assert admin not in arena.players
    assert [p for p in arena.players if p.role is PlayerRole.ADMIN] == [bob]


def test_an_admin_may_remove_another_admin():
    arena, admin, [bob, _] = arena_in(ArenaStatus.PENDING)
    bob.role = PlayerRole.ADMIN

    arena.remove_player(admin, bob.id, NOW)

    assert arena.events[-1].payload["removedBy"] == admin.id


@pytest.mark.parametrize("remover", ["self", "admin"])
def test_nobody_leaves_or_is_removed_from_a_finished_arena(remover):
    arena, admin, [bob, _] = arena_in(ArenaStatus.FINISHED)
    actor = bob if remover == "self" else admin

    assert_refused(arena, IllegalTransition, arena.remove_player, actor, bob.id, NOW)


def test_the_admin_cannot_leave_a_finished_arena_even_when_alone():
    arena, admin, _ = arena_in(ArenaStatus.FINISHED, others=())

    assert_refused(arena, IllegalTransition, arena.remove_player, admin, admin.id, NOW)


def test_join_and_leave_events_carry_contiguous_versions():
    arena, admin = new_arena()
    bob = arena.join("Bob", NOW).player
    cy = arena.join("Cy", NOW).player
    arena.remove_player(bob, bob.id, NOW)
    arena.remove_player(admin, cy.id, NOW)

    assert [e.type for e in arena.events] == [
        "ArenaCreated",
        "PlayerJoined",
        "PlayerJoined",
        "PlayerLeft",
        "PlayerLeft",
    ]
    assert [e.version for e in arena.events] == [1, 2, 3, 4, 5]
    assert arena.version == 5
