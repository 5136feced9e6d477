"""Arena.update_config: who and when, partial camelCase changes, every limit at its bounds, events.

Settings can change only while PENDING or PAUSED, by an admin, and the merged config must be
valid; `maxPlayers` can never drop below the number of players present.
"""

import copy
import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from arena.domain.config import ArenaConfig, Temperature
from arena.domain.errors import (
    DomainError,
    IllegalTransition,
    PermissionDenied,
    ValidationFailed,
)
from arena.domain.model import Arena, ArenaStatus

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(minutes=2)
CONFIG = ArenaConfig(width=16, height=8, max_players=4, seed=42)
MAX_SEED = 2**63 - 1

PATH_TO = {
    ArenaStatus.PENDING: [],
    ArenaStatus.RUNNING: ["start"],
    ArenaStatus.PAUSED: ["start", "pause"],
    ArenaStatus.FINISHED: ["stop"],
}


def arena_in(status=ArenaStatus.PENDING, *, others=("Bob",)):
    """An arena in `status` with its admin Ada and the named ordinary players."""
    arena, admin = Arena.create(name="Config", creator_display_name="Ada", config=CONFIG, now=NOW)
    players = [arena.join(name, NOW).player for name in others]
    for command in PATH_TO[status]:
        arena.transition(command, admin.player, NOW)
    return arena, admin.player, players


def update(arena, actor, changes):
    arena.update_config(actor, copy.deepcopy(changes), LATER)


def assert_refused(arena, error, actor, changes):
    """update_config raises `error` and leaves every part of the arena exactly as it was."""
    before = copy.deepcopy(arena)
    with pytest.raises(error) as raised:
        update(arena, actor, changes)
    assert arena == before
    return raised.value


def assert_accepted(changes, expected_config):
    arena, admin, _ = arena_in()
    version = arena.version

    update(arena, admin, changes)

    assert arena.config == expected_config
    assert arena.version == version + 1
    assert arena.events[-1].payload["config"] == expected_config.to_dict()


def assert_rejected_naming(changes, field):
    arena, admin, _ = arena_in()
    error = assert_refused(arena, ValidationFailed, admin, changes)
    assert set(error.field_errors) == {field}


# --- who and when ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [ArenaStatus.PENDING, ArenaStatus.PAUSED])
def test_an_admin_may_change_the_config_while_pending_or_paused(status):
    arena, admin, _ = arena_in(status)

    update(arena, admin, {"tickMillis": 250})

    assert arena.config.tick_millis == 250
    assert arena.status is status


@pytest.mark.parametrize("status", [ArenaStatus.RUNNING, ArenaStatus.FINISHED])
def test_config_changes_are_refused_as_illegal_transition_while_running_or_finished(status):
    arena, admin, _ = arena_in(status)

    assert_refused(arena, IllegalTransition, admin, {"tickMillis": 250})


@pytest.mark.parametrize("status", list(ArenaStatus))
def test_a_non_admin_changing_the_config_is_permission_denied_in_every_status(status):
    arena, _, [bob] = arena_in(status)

    assert_refused(arena, PermissionDenied, bob, {"tickMillis": 250})


def test_empty_changes_are_refused_as_a_validation_failure():
    arena, admin, _ = arena_in()

    assert_refused(arena, ValidationFailed, admin, {})


def test_changing_the_config_changes_nothing_but_config_and_version():
    arena, admin, _ = arena_in(ArenaStatus.PAUSED)
    before = copy.deepcopy(arena)

    update(arena, admin, {"width": 20})

    assert (arena.status, arena.players, arena.tick, arena.started_at, arena.finished_at) == (
        before.status,
        before.players,
        before.tick,
        before.started_at,
        before.finished_at,
    )


# --- the event ------------------------------------------------------------------------------------


def test_config_update_records_one_arena_config_updated_event_with_sorted_names_and_full_config():
    arena, admin, _ = arena_in()
    version = arena.version
    changes = {"tickMillis": 250, "temperature": {"value": 42.0}, "diffusionRate": 0.5}

    update(arena, admin, changes)

    expected = ArenaConfig(
        tick_millis=250,
        width=16,
        height=8,
        diffusion_rate=0.5,
        temperature=Temperature(42.0, "C"),
        max_players=4,
        seed=42,
    )
    assert arena.config == expected
    assert arena.version == version + 1
    event = arena.events[-1]
    assert event.type == "ArenaConfigUpdated"
    assert event.version == arena.version
    assert event.aggregate_id == arena.id
    assert event.occurred_at == LATER
    assert event.payload == {
        "changes": ["diffusionRate", "temperature", "tickMillis"],
        "config": expected.to_dict(),
        "updatedAt": LATER.isoformat(),
    }
    json.dumps(event.payload)


def test_config_update_event_lists_only_the_settings_whose_value_changed():
    # docs/events.md: "changes: the settings whose value changed, sorted."
    arena, admin, _ = arena_in()

    update(arena, admin, {"width": CONFIG.width, "height": 12, "temperature": {"unit": "C"}})

    assert arena.events[-1].payload["changes"] == ["height"]


@pytest.mark.parametrize(
    "changes",
    [
        {"width": CONFIG.width},
        {"temperature": {"unit": "C"}},
        {"seed": CONFIG.seed, "maxPlayers": CONFIG.max_players},
    ],
    ids=["same_width", "same_temperature_unit", "same_seed_and_max_players"],
)
def test_a_config_update_that_changes_no_value_records_nothing_and_keeps_the_version(changes):
    # docs/events.md: "A request whose values all equal the current ones changes nothing: it
    # records no event and answers the current version."
    arena, admin, _ = arena_in()
    before = copy.deepcopy(arena)

    update(arena, admin, changes)

    assert arena == before


def test_config_update_keeps_the_settings_it_was_not_given():
    arena, admin, _ = arena_in()

    update(arena, admin, {"maxOrganisms": 5})

    assert arena.config.to_dict() == CONFIG.to_dict() | {"maxOrganisms": 5}


# --- temperature may be partial -------------------------------------------------------------------


def test_a_partial_temperature_keeps_the_current_unit():
    arena, admin, _ = arena_in()

    update(arena, admin, {"temperature": {"value": -12.5}})

    assert arena.config.temperature.value == -12.5
    assert arena.config.temperature.unit == "C"
    assert arena.events[-1].payload["config"]["temperature"] == {"value": -12.5, "unit": "C"}


def test_a_temperature_with_only_the_unit_keeps_the_current_value():
    arena, admin, _ = arena_in()
    update(arena, admin, {"temperature": {"value": 20.0}})

    update(arena, admin, {"temperature": {"unit": "C"}})

    assert arena.config.temperature.value == 20.0


def test_a_full_temperature_replaces_the_current_one():
    arena, admin, _ = arena_in()

    update(arena, admin, {"temperature": {"value": 99.0, "unit": "C"}})

    assert arena.config.temperature.value == 99.0


# --- every limit at its bounds --------------------------------------------------------------------

IN_BOUNDS = [
    ("tickMillis", 50),
    ("tickMillis", 3_600_000),
    ("width", 1),
    ("width", 512),
    ("height", 1),
    ("height", 512),
    ("diffusionRate", 0.0),
    ("diffusionRate", 1.0),
    ("mutationRate", 0.0),
    ("mutationRate", 1.0),
    ("maxOrganisms", 1),
    ("maxOrganisms", 512 * 512),
    ("snapshotEveryTicks", 1),
    ("snapshotEveryTicks", 10_000),
    ("maxPlayers", 2),  # exactly the players present (Ada and Bob)
    ("maxPlayers", 1_000),
    ("seed", 0),
    ("seed", MAX_SEED),
]
OUT_OF_BOUNDS = [
    ("tickMillis", 49),
    ("tickMillis", 3_600_001),
    ("width", 0),
    ("width", 513),
    ("height", 0),
    ("height", 513),
    ("diffusionRate", math.nextafter(0.0, -math.inf)),
    ("diffusionRate", math.nextafter(1.0, math.inf)),
    ("mutationRate", math.nextafter(0.0, -math.inf)),
    ("mutationRate", math.nextafter(1.0, math.inf)),
    ("maxOrganisms", 0),
    ("maxOrganisms", 512 * 512 + 1),
    ("snapshotEveryTicks", 0),
    ("snapshotEveryTicks", 10_001),
    ("maxPlayers", 0),
    ("maxPlayers", 1_001),
    ("seed", -1),
    ("seed", MAX_SEED + 1),
]


@pytest.mark.parametrize(("name", "value"), IN_BOUNDS)
def test_a_setting_at_its_bound_is_accepted(name, value):
    assert_accepted({name: value}, ArenaConfig.from_dict(CONFIG.to_dict() | {name: value}))


@pytest.mark.parametrize(("name", "value"), OUT_OF_BOUNDS)
def test_a_setting_just_outside_its_bound_is_refused_naming_that_setting(name, value):
    assert_rejected_naming({name: value}, name)


@pytest.mark.parametrize("value", [-50.0, 150.0])
def test_a_temperature_at_its_bound_is_accepted(value):
    arena, admin, _ = arena_in()

    update(arena, admin, {"temperature": {"value": value}})

    assert arena.config.temperature.value == value


@pytest.mark.parametrize(
    "value", [math.nextafter(-50.0, -math.inf), math.nextafter(150.0, math.inf), math.nan]
)
def test_a_temperature_outside_its_bounds_is_refused_naming_temperature_value(value):
    assert_rejected_naming({"temperature": {"value": value}}, "temperature.value")


@pytest.mark.parametrize("unit", ["F", "K", "c"])
def test_a_temperature_unit_other_than_c_is_refused_naming_temperature_unit(unit):
    assert_rejected_naming({"temperature": {"unit": unit}}, "temperature.unit")


def test_max_players_below_the_players_present_is_refused_naming_max_players():
    arena, admin, _ = arena_in(others=("Bob", "Cy"))

    error = assert_refused(arena, ValidationFailed, admin, {"maxPlayers": 2})

    assert set(error.field_errors) == {"maxPlayers"}


def test_max_players_may_drop_to_the_players_present_after_someone_leaves():
    arena, admin, [bob, _] = arena_in(others=("Bob", "Cy"))
    arena.remove_player(bob, bob.id, NOW)

    update(arena, admin, {"maxPlayers": 2})

    assert arena.config.max_players == 2


def test_one_invalid_setting_refuses_the_whole_update():
    arena, admin, _ = arena_in()

    error = assert_refused(arena, ValidationFailed, admin, {"tickMillis": 100, "width": 0})

    assert set(error.field_errors) == {"width"}


def test_every_broken_limit_is_reported_at_once():
    arena, admin, _ = arena_in()

    error = assert_refused(
        arena, ValidationFailed, admin, {"width": 0, "seed": -1, "temperature": {"value": 200.0}}
    )

    assert set(error.field_errors) == {"width", "seed", "temperature.value"}


# --- unknown names and wrong shapes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"colour": "red"},
        {"MaxPlayers": 3},
        {"width": "wide"},
        {"width": None},
        {"temperature": {"kelvin": 300}},
    ],
    ids=["unknown_name", "wrong_case", "string_width", "null_width", "unknown_temperature_key"],
)
def test_an_unknown_setting_or_a_wrongly_typed_value_is_a_validation_failure(changes):
    arena, admin, _ = arena_in()

    assert_refused(arena, ValidationFailed, admin, changes)


@pytest.mark.parametrize("temperature", [None, 40, "hot", [40, "C"]])
def test_a_temperature_that_is_not_an_object_is_a_validation_failure_not_a_crash(temperature):
    arena, admin, _ = arena_in()

    assert_refused(arena, ValidationFailed, admin, {"temperature": temperature})


@pytest.mark.parametrize(
    "changes",
    [{"max_players": 3}, {"tick_millis": 250}, {"maxPlayers": 5, "max_players": 3}],
    ids=["max_players", "tick_millis", "both_spellings"],
)
def test_a_snake_case_setting_name_is_refused_because_settings_are_named_in_camel_case(changes):
    # ArenaConfig.from_dict promises "camelCase form; unknown names are validation failures",
    # but _snake() maps a snake_case name onto itself, so it is silently accepted as an alias.
    arena, admin, _ = arena_in()

    assert_refused(arena, ValidationFailed, admin, changes)


def test_refused_updates_never_raise_anything_but_domain_errors():
    arena, admin, _ = arena_in()
    for changes in [{}, {"width": 0}, {"colour": 1}, {"temperature": {"x": 1}}]:
        with pytest.raises(DomainError):
            update(arena, admin, changes)
