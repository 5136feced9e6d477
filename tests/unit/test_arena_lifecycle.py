"""Arena.transition (start/pause/resume/stop) and the version/event contiguity of the aggregate.

The lifecycle is PENDING → RUNNING ⇄ PAUSED → FINISHED; stop is allowed from PENDING, RUNNING and
PAUSED and nothing leaves FINISHED. Only an ADMIN may transition. Every accepted command bumps the
version by one and records one event carrying that version; a refused command changes nothing.
"""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from arena.domain.actions import ActionType
from arena.domain.config import ArenaConfig
from arena.domain.errors import DomainError, IllegalTransition, PermissionDenied
from arena.domain.model import TRANSITION_COMMANDS, Arena, ArenaStatus

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=1)
CONFIG = ArenaConfig(width=16, height=8, max_players=4, seed=42)

PENDING, RUNNING, PAUSED, FINISHED = (
    ArenaStatus.PENDING,
    ArenaStatus.RUNNING,
    ArenaStatus.PAUSED,
    ArenaStatus.FINISHED,
)

# command → (statuses it is allowed from, target status, event type, time field in the payload)
TABLE = {
    "start": ({PENDING}, RUNNING, "ArenaStarted", "startedAt"),
    "pause": ({RUNNING}, PAUSED, "ArenaPaused", "pausedAt"),
    "resume": ({PAUSED}, RUNNING, "ArenaResumed", "resumedAt"),
    "stop": ({PENDING, RUNNING, PAUSED}, FINISHED, "ArenaStopped", "finishedAt"),
}
PATH_TO = {
    PENDING: [],
    RUNNING: ["start"],
    PAUSED: ["start", "pause"],
    FINISHED: ["stop"],
}
ALL_PAIRS = [(command, status) for command in TABLE for status in ArenaStatus]
LEGAL_PAIRS = [(c, s) for c, s in ALL_PAIRS if s in TABLE[c][0]]
ILLEGAL_PAIRS = [(c, s) for c, s in ALL_PAIRS if s not in TABLE[c][0]]


def arena_in(status, *, when=NOW):
    """A fresh arena driven to `status` by its admin, plus the admin and one ordinary player."""
    arena, admin = Arena.create(
        name="Lifecycle", creator_display_name="Ada", config=CONFIG, now=when
    )
    player = arena.join("Bob", when)
    for command in PATH_TO[status]:
        arena.transition(command, admin.player, when)
    assert arena.status is status
    return arena, admin.player, player.player


def assert_refused(arena, error, command, *args):
    """The command raises `error` and leaves every part of the arena exactly as it was."""
    before = copy.deepcopy(arena)
    with pytest.raises(error):
        command(*args)
    assert arena == before
    assert arena.version == before.version
    assert arena.events == before.events


def test_the_table_covers_every_command_the_aggregate_knows():
    assert set(TRANSITION_COMMANDS) == set(TABLE)


def test_exactly_six_command_status_pairs_are_legal():
    assert set(LEGAL_PAIRS) == {
        ("start", PENDING),
        ("pause", RUNNING),
        ("resume", PAUSED),
        ("stop", PENDING),
        ("stop", RUNNING),
        ("stop", PAUSED),
    }
    assert len(ILLEGAL_PAIRS) == 10


@pytest.mark.parametrize(("command", "status"), LEGAL_PAIRS)
def test_admin_legal_transition_moves_to_the_target_status_and_records_one_event(command, status):
    arena, admin, _ = arena_in(status)
    version = arena.version
    events_before = list(arena.events)
    _, target, event_type, time_field = TABLE[command]

    arena.transition(command, admin, LATER)

    assert arena.status is target
    assert arena.version == version + 1
    assert arena.events[: len(events_before)] == events_before
    [event] = arena.events[len(events_before) :]
    assert event.type == event_type
    assert event.version == arena.version
    assert event.aggregate_id == arena.id
    assert event.occurred_at == LATER
    assert event.payload == {
        "status": target.value,
        "tick": 0,
        time_field: LATER.isoformat(),
    }
    json.dumps(event.payload)


@pytest.mark.parametrize(("command", "status"), ILLEGAL_PAIRS)
def test_admin_illegal_transition_raises_illegal_transition_and_changes_nothing(command, status):
    arena, admin, _ = arena_in(status)

    assert_refused(arena, IllegalTransition, arena.transition, command, admin, LATER)


@pytest.mark.parametrize(("command", "status"), ALL_PAIRS)
def test_non_admin_transition_is_permission_denied_in_every_status_and_changes_nothing(
    command, status
):
    arena, _, player = arena_in(status)

    assert_refused(arena, PermissionDenied, arena.transition, command, player, LATER)


def test_nothing_leaves_finished():
    arena, admin, _ = arena_in(FINISHED)

    for command in TABLE:
        assert_refused(arena, IllegalTransition, arena.transition, command, admin, LATER)
    assert arena.status is FINISHED


def test_start_sets_started_at_and_leaves_finished_at_unset():
    arena, admin, _ = arena_in(PENDING)

    arena.transition("start", admin, LATER)

    assert arena.started_at == LATER
    assert arena.finished_at is None


def test_started_at_is_set_on_the_first_start_only_and_kept_through_pause_resume_and_stop():
    arena, admin, _ = arena_in(PENDING)
    arena.transition("start", admin, NOW)

    arena.transition("pause", admin, NOW + timedelta(seconds=10))
    arena.transition("resume", admin, NOW + timedelta(seconds=20))
    arena.transition("pause", admin, NOW + timedelta(seconds=30))
    arena.transition("resume", admin, NOW + timedelta(seconds=40))
    assert arena.started_at == NOW
    assert arena.finished_at is None

    arena.transition("stop", admin, NOW + timedelta(seconds=50))
    assert arena.started_at == NOW
    assert arena.finished_at == NOW + timedelta(seconds=50)


@pytest.mark.parametrize("status", [PENDING, RUNNING, PAUSED])
def test_stop_sets_finished_at_to_now(status):
    arena, admin, _ = arena_in(status, when=NOW)

    arena.transition("stop", admin, LATER)

    assert arena.finished_at == LATER
    assert arena.events[-1].payload == {
        "status": "FINISHED",
        "tick": 0,
        "finishedAt": LATER.isoformat(),
    }


def test_stopping_a_pending_arena_leaves_started_at_unset():
    arena, admin, _ = arena_in(PENDING)

    arena.transition("stop", admin, LATER)

    assert arena.started_at is None
    assert arena.finished_at == LATER


@pytest.mark.parametrize(("command", "status"), LEGAL_PAIRS)
def test_transition_event_reports_the_current_tick(command, status):
    arena, admin, _ = arena_in(status)
    arena.tick = 0 if status is PENDING else 17

    arena.transition(command, admin, LATER)

    assert arena.events[-1].payload["tick"] == arena.tick
    assert arena.tick == (0 if status is PENDING else 17)


def test_a_full_lifecycle_records_contiguous_versions_and_the_expected_event_types():
    arena, admin, _ = arena_in(PENDING)

    for command in ["start", "pause", "resume", "pause", "stop"]:
        arena.transition(command, admin, LATER)

    assert [event.version for event in arena.events] == list(range(1, arena.version + 1))
    assert [event.type for event in arena.events] == [
        "ArenaCreated",
        "PlayerJoined",
        "ArenaStarted",
        "ArenaPaused",
        "ArenaResumed",
        "ArenaPaused",
        "ArenaStopped",
    ]


def test_versions_continue_after_events_are_collected():
    arena, admin, _ = arena_in(PENDING)
    arena.collect_events()
    version = arena.version

    arena.transition("start", admin, LATER)

    [event] = arena.collect_events()
    assert event.version == version + 1 == arena.version


# --- the version / event contiguity property ------------------------------------------------------

NAMES = ["Bob", "bob", " BOB ", "Cy", "Dee", "Eve", "Fay", "", "   ", "x" * 40, "x" * 41]
CONFIG_CHANGES = [
    {},
    {"maxPlayers": 1},
    {"maxPlayers": 2},
    {"maxPlayers": 6},
    {"width": 0},
    {"width": 4, "height": 4},
    {"tickMillis": 250},
    {"temperature": {"value": 20.0}},
    {"temperature": {"value": 151.0}},
    {"seed": -1},
]
GOOD_AREA = {"x": 0, "y": 0, "width": 2, "height": 2}
ACTIONS = [
    (ActionType.ADD_NUTRIENTS, {"area": GOOD_AREA, "amount": 1.5}),
    (ActionType.ADD_NUTRIENTS, {"area": {**GOOD_AREA, "width": 0}, "amount": 1.5}),
    (ActionType.ADD_NUTRIENTS, {"area": GOOD_AREA}),
    (ActionType.DROP_ANTIBIOTIC, {"area": GOOD_AREA, "kind": "B", "concentration": 0.5}),
    (ActionType.DROP_ANTIBIOTIC, {"area": GOOD_AREA, "kind": "Z", "concentration": 0.5}),
    (ActionType.SET_TEMPERATURE, {"temperature": {"value": 30.0, "unit": "C"}}),
    (ActionType.SET_TEMPERATURE, {"temperature": {"value": 30.0, "unit": "F"}}),
    (ActionType.SPAWN_ORGANISM, {"kind": "FUNGI", "position": {"x": 3, "y": 3}}),
    (ActionType.SPAWN_ORGANISM, {"kind": "FUNGI", "position": {"x": 99, "y": 3}}),
]
# Weighted so that every kind of command is both accepted and refused in a typical run.
OPERATIONS = ["transition", "transition", "join", "remove", "config", "action", "action"]
WEIGHTED_COMMANDS = ["start", "start", "pause", "resume", "resume", "stop"]


def run_one(data, arena, actors, command_name):
    """Draw the arguments of one command against the arena's current state and run it."""
    actor = data.draw(st.sampled_from([actors[0], *actors]), label="actor")  # creator favoured
    if command_name == "transition":
        command = data.draw(st.sampled_from(WEIGHTED_COMMANDS), label="command")
        arena.transition(command, actor, NOW)
    elif command_name == "join":
        name = data.draw(st.sampled_from(NAMES), label="name")
        actors.append(arena.join(name, NOW).player)
    elif command_name == "remove":
        ids = [p.id for p in actors] + ["no-such-player"]
        target = data.draw(st.sampled_from(ids), label="target")
        arena.remove_player(actor, target, NOW)
    elif command_name == "config":
        changes = data.draw(st.sampled_from(CONFIG_CHANGES), label="changes")
        arena.update_config(actor, copy.deepcopy(changes), NOW)
    else:
        action_type, payload = data.draw(st.sampled_from(ACTIONS), label="action")
        apply_at = data.draw(st.sampled_from([None, -1, 0, 1, 5]), label="applyAtTick")
        arena.submit_action(actor, action_type, copy.deepcopy(payload), apply_at, NOW)


@settings(
    database=None,
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    data=st.data(),
    start_first=st.booleans(),
    operations=st.lists(st.sampled_from(OPERATIONS), max_size=30),
)
def test_versions_stay_contiguous_and_refused_commands_leave_the_arena_untouched(
    data, start_first, operations
):
    arena, creator = Arena.create(
        name="Property", creator_display_name="Ada", config=CONFIG, now=NOW
    )
    actors = [creator.player]  # every player ever admitted, removed ones included
    accepted = 0
    if start_first:  # most actions need a RUNNING or PAUSED arena
        arena.transition("start", creator.player, NOW)
        accepted += 1

    for operation in operations:
        before = copy.deepcopy(arena)
        try:
            run_one(data, arena, actors, operation)
        except DomainError as refusal:
            event(f"{operation} refused: {type(refusal).__name__}")
            assert arena == before, f"refused {operation} changed the arena"
            continue
        if arena.version == before.version:
            # A config update whose values all equal the current ones is a no-op (no event);
            # nothing else may return without recording.
            assert operation == "config", f"{operation} returned but recorded nothing"
            assert arena == before
            event("config no-op")
            continue
        event(f"{operation} accepted")
        accepted += 1
        assert arena.version == before.version + 1
        assert arena.events[:-1] == before.events
        assert arena.events[-1].version == arena.version

    assert arena.version == 1 + accepted  # ArenaCreated is version 1; refusals and no-ops add none
    assert [recorded.version for recorded in arena.events] == list(range(1, arena.version + 1))
    assert all(recorded.aggregate_id == arena.id for recorded in arena.events)


@settings(database=None, max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(TRANSITION_COMMANDS), st.booleans()),
        max_size=12,
    )
)
def test_transitions_follow_the_table_for_any_sequence_of_commands_and_actors(steps):
    arena, admin, player = arena_in(PENDING)
    expected = PENDING

    for command, by_admin in steps:
        allowed_from, target, *_ = TABLE[command]
        actor = admin if by_admin else player
        before = copy.deepcopy(arena)
        if not by_admin:
            assert_refused(arena, PermissionDenied, arena.transition, command, actor, NOW)
        elif expected not in allowed_from:
            assert_refused(arena, IllegalTransition, arena.transition, command, actor, NOW)
        else:
            arena.transition(command, actor, NOW)
            expected = target
            assert arena.version == before.version + 1
        assert arena.status is expected
