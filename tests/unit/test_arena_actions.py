"""Arena.submit_action: when actions are accepted, applyAtTick, every payload rule at its bounds.

The grid used here is 10 cells wide and 6 high, so x ranges over 0..9 and y over 0..5.
"""

import copy
import json
import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from arena.domain.actions import MAX_AMOUNT, ActionType
from arena.domain.config import ArenaConfig
from arena.domain.errors import IllegalTransition, ValidationFailed
from arena.domain.model import Arena, ArenaStatus

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)
WIDTH, HEIGHT = 10, 6
CONFIG = ArenaConfig(width=WIDTH, height=HEIGHT, seed=42)

PATH_TO = {
    ArenaStatus.PENDING: [],
    ArenaStatus.RUNNING: ["start"],
    ArenaStatus.PAUSED: ["start", "pause"],
    ArenaStatus.FINISHED: ["stop"],
}

AREA = {"x": 1, "y": 1, "width": 2, "height": 2}
VALID = {
    ActionType.ADD_NUTRIENTS: {"area": AREA, "amount": 2.5},
    ActionType.DROP_ANTIBIOTIC: {"area": AREA, "kind": "A", "concentration": 0.25},
    ActionType.SET_TEMPERATURE: {"temperature": {"value": 30.0, "unit": "C"}},
    ActionType.SPAWN_ORGANISM: {"kind": "BACTERIA", "position": {"x": 4, "y": 2}},
}


def arena_in(status=ArenaStatus.RUNNING, *, tick=0):
    """An arena in `status` at `tick`, with its admin and one ordinary player."""
    arena, admin = Arena.create(name="Actions", creator_display_name="Ada", config=CONFIG, now=NOW)
    player = arena.join("Bob", NOW)
    for command in PATH_TO[status]:
        arena.transition(command, admin.player, NOW)
    arena.tick = tick  # the simulation advances the tick; a loaded arena can be at any tick
    return arena, admin.player, player.player


def submit(arena, actor, action_type, payload, apply_at_tick=None):
    return arena.submit_action(actor, action_type, copy.deepcopy(payload), apply_at_tick, LATER)


def assert_refused(arena, error, *args):
    """submit_action raises `error` and leaves every part of the arena exactly as it was."""
    before = copy.deepcopy(arena)
    with pytest.raises(error) as raised:
        submit(arena, *args)
    assert arena == before
    return raised.value


def assert_invalid(payload, action_type, expected_fields):
    arena, _, player = arena_in()
    error = assert_refused(arena, ValidationFailed, player, action_type, payload)
    assert set(error.field_errors) == set(expected_fields)


def assert_valid(payload, action_type):
    arena, _, player = arena_in()
    submit(arena, player, action_type, payload)
    assert arena.events[-1].type == "ActionSubmitted"


# --- when actions are accepted --------------------------------------------------------------------


@pytest.mark.parametrize("status", [ArenaStatus.RUNNING, ArenaStatus.PAUSED])
@pytest.mark.parametrize("action_type", list(ActionType))
def test_actions_are_accepted_while_running_or_paused(status, action_type):
    arena, _, player = arena_in(status)
    version = arena.version

    submit(arena, player, action_type, VALID[action_type])

    assert arena.version == version + 1
    assert arena.status is status


@pytest.mark.parametrize("status", [ArenaStatus.PENDING, ArenaStatus.FINISHED])
@pytest.mark.parametrize("action_type", list(ActionType))
def test_actions_are_refused_as_illegal_transition_while_pending_or_finished(status, action_type):
    arena, _, player = arena_in(status)

    assert_refused(arena, IllegalTransition, player, action_type, VALID[action_type])


def test_both_admins_and_players_may_submit_actions():
    arena, admin, player = arena_in()

    submit(arena, admin, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS])
    submit(arena, player, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS])

    assert [e.payload["playerId"] for e in arena.events[-2:]] == [admin.id, player.id]


@pytest.mark.parametrize("action_type", list(ActionType))
def test_accepted_action_records_one_action_submitted_event_with_the_documented_payload(
    action_type,
):
    arena, _, player = arena_in(tick=3)
    version = arena.version

    submitted = submit(arena, player, action_type, VALID[action_type])

    assert arena.version == version + 1
    assert uuid.UUID(submitted.action_id)
    assert submitted.apply_at_tick == 4
    event = arena.events[-1]
    assert event.type == "ActionSubmitted"
    assert event.version == arena.version
    assert event.aggregate_id == arena.id
    assert event.occurred_at == LATER
    assert event.payload == {
        "actionId": submitted.action_id,
        "playerId": player.id,
        "type": action_type.value,
        "applyAtTick": 4,
        "payload": VALID[action_type],
        "submittedAt": LATER.isoformat(),
    }
    json.dumps(event.payload)


def test_submitting_an_action_changes_neither_status_nor_players_nor_config_nor_tick():
    arena, _, player = arena_in(tick=5)
    before = copy.deepcopy(arena)

    submit(arena, player, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS])

    assert (arena.status, arena.players, arena.config, arena.tick) == (
        before.status,
        before.players,
        before.config,
        before.tick,
    )


def test_each_submitted_action_gets_its_own_id():
    arena, _, player = arena_in()

    first = submit(arena, player, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS])
    second = submit(arena, player, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS])

    assert first.action_id != second.action_id


# --- applyAtTick ----------------------------------------------------------------------------------


@pytest.mark.parametrize("tick", [0, 7])
def test_apply_at_tick_defaults_to_the_next_tick(tick):
    arena, _, player = arena_in(tick=tick)

    submitted = submit(arena, player, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS])

    assert submitted.apply_at_tick == tick + 1
    assert arena.events[-1].payload["applyAtTick"] == tick + 1


@pytest.mark.parametrize("apply_at", [8, 9, 1_000_000])
def test_apply_at_tick_after_the_current_tick_is_accepted(apply_at):
    arena, _, player = arena_in(tick=7)

    submitted = submit(
        arena, player, ActionType.ADD_NUTRIENTS, VALID[ActionType.ADD_NUTRIENTS], apply_at
    )

    assert submitted.apply_at_tick == apply_at
    assert arena.events[-1].payload["applyAtTick"] == apply_at


@pytest.mark.parametrize(("tick", "apply_at"), [(7, 7), (7, 6), (7, 0), (0, 0), (0, -1)])
def test_apply_at_tick_not_after_the_current_tick_is_refused_naming_apply_at_tick(tick, apply_at):
    arena, _, player = arena_in(tick=tick)

    error = assert_refused(
        arena,
        ValidationFailed,
        player,
        ActionType.ADD_NUTRIENTS,
        VALID[ActionType.ADD_NUTRIENTS],
        apply_at,
    )

    assert set(error.field_errors) == {"applyAtTick"}


# --- area (ADD_NUTRIENTS and DROP_ANTIBIOTIC) -----------------------------------------------------

AREA_TYPES = [ActionType.ADD_NUTRIENTS, ActionType.DROP_ANTIBIOTIC]


def with_area(action_type, **area):
    return {**VALID[action_type], "area": {**AREA, **area}}


@pytest.mark.parametrize("action_type", AREA_TYPES)
@pytest.mark.parametrize(
    "area",
    [
        {"x": 0, "y": 0, "width": 1, "height": 1},  # top-left cell
        {"x": WIDTH - 1, "y": HEIGHT - 1, "width": 1, "height": 1},  # bottom-right cell
        {"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT},  # the whole grid
        {"x": 3, "y": 2, "width": WIDTH - 3, "height": HEIGHT - 2},  # touching the far edges
    ],
    ids=["top_left_cell", "bottom_right_cell", "whole_grid", "touching_far_edges"],
)
def test_an_area_inside_the_grid_is_accepted(action_type, area):
    assert_valid(with_area(action_type, **area), action_type)


@pytest.mark.parametrize("action_type", AREA_TYPES)
@pytest.mark.parametrize(
    ("area", "fields"),
    [
        ({"x": -1}, {"payload.area.x"}),
        ({"y": -1}, {"payload.area.y"}),
        ({"width": 0}, {"payload.area.width"}),
        ({"height": 0}, {"payload.area.height"}),
        ({"width": -2}, {"payload.area.width"}),
        ({"x": 3, "width": WIDTH - 2}, {"payload.area.width"}),  # one cell past the right edge
        ({"y": 2, "height": HEIGHT - 1}, {"payload.area.height"}),  # one cell past the bottom
        ({"x": 0, "width": WIDTH + 1}, {"payload.area.width"}),
        ({"y": 0, "height": HEIGHT + 1}, {"payload.area.height"}),
        ({"x": WIDTH, "width": 1}, {"payload.area.x", "payload.area.width"}),
        ({"y": HEIGHT, "height": 1}, {"payload.area.y", "payload.area.height"}),
    ],
    ids=[
        "x_negative",
        "y_negative",
        "width_zero",
        "height_zero",
        "width_negative",
        "right_edge_overrun",
        "bottom_edge_overrun",
        "wider_than_grid",
        "taller_than_grid",
        "x_past_grid",
        "y_past_grid",
    ],
)
def test_an_area_not_inside_the_grid_is_refused_naming_the_offending_fields(
    action_type, area, fields
):
    assert_invalid(with_area(action_type, **area), action_type, fields)


# --- ADD_NUTRIENTS --------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [5e-324, 0.001, 1, MAX_AMOUNT])
def test_add_nutrients_accepts_any_positive_amount_up_to_a_cells_capacity(amount):
    assert_valid({"area": AREA, "amount": amount}, ActionType.ADD_NUTRIENTS)


@pytest.mark.parametrize(
    "amount", [0, 0.0, -0.0, -5e-324, -1, math.nan, math.inf, math.nextafter(MAX_AMOUNT, math.inf)]
)
def test_add_nutrients_refuses_an_amount_not_above_zero_or_past_a_cells_capacity(amount):
    assert_invalid({"area": AREA, "amount": amount}, ActionType.ADD_NUTRIENTS, {"payload.amount"})


# --- DROP_ANTIBIOTIC ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["A", "B", "C"])
def test_drop_antibiotic_accepts_kinds_a_b_and_c(kind):
    payload = {"area": AREA, "kind": kind, "concentration": 1.0}
    assert_valid(payload, ActionType.DROP_ANTIBIOTIC)


@pytest.mark.parametrize("kind", ["D", "a", "", "AB", "BACTERIA"])
def test_drop_antibiotic_refuses_any_other_kind(kind):
    payload = {"area": AREA, "kind": kind, "concentration": 1.0}
    assert_invalid(payload, ActionType.DROP_ANTIBIOTIC, {"payload.kind"})


@pytest.mark.parametrize("concentration", [5e-324, 0.5, 100])
def test_drop_antibiotic_accepts_any_positive_concentration(concentration):
    payload = {"area": AREA, "kind": "C", "concentration": concentration}
    assert_valid(payload, ActionType.DROP_ANTIBIOTIC)


@pytest.mark.parametrize("concentration", [0, -5e-324, -1, math.nan])
def test_drop_antibiotic_refuses_a_concentration_not_above_zero(concentration):
    payload = {"area": AREA, "kind": "C", "concentration": concentration}
    assert_invalid(payload, ActionType.DROP_ANTIBIOTIC, {"payload.concentration"})


def test_drop_antibiotic_reports_every_broken_rule_at_once():
    payload = {"area": {**AREA, "width": 0}, "kind": "Z", "concentration": 0}
    assert_invalid(
        payload,
        ActionType.DROP_ANTIBIOTIC,
        {"payload.area.width", "payload.kind", "payload.concentration"},
    )


# --- SET_TEMPERATURE ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [-50, -50.0, 0, 37.5, 150, 150.0])
def test_set_temperature_accepts_celsius_values_from_minus_50_to_150(value):
    assert_valid({"temperature": {"value": value, "unit": "C"}}, ActionType.SET_TEMPERATURE)


@pytest.mark.parametrize(
    "value",
    [math.nextafter(-50.0, -math.inf), -51, math.nextafter(150.0, math.inf), 151, math.nan],
)
def test_set_temperature_refuses_values_outside_minus_50_to_150(value):
    payload = {"temperature": {"value": value, "unit": "C"}}
    assert_invalid(payload, ActionType.SET_TEMPERATURE, {"payload.temperature.value"})


@pytest.mark.parametrize("unit", ["F", "K", "c", ""])
def test_set_temperature_refuses_a_unit_other_than_c(unit):
    payload = {"temperature": {"value": 20.0, "unit": unit}}
    assert_invalid(payload, ActionType.SET_TEMPERATURE, {"payload.temperature.unit"})


def test_set_temperature_event_carries_the_canonical_temperature_only():
    arena, _, player = arena_in()

    submit(
        arena,
        player,
        ActionType.SET_TEMPERATURE,
        {"temperature": {"value": 21.5, "unit": "C"}},
    )

    assert arena.events[-1].payload["payload"] == {"temperature": {"value": 21.5, "unit": "C"}}


# --- SPAWN_ORGANISM -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["BACTERIA", "FUNGI", "PHAGE"])
def test_spawn_organism_accepts_bacteria_fungi_and_phage(kind):
    assert_valid({"kind": kind, "position": {"x": 0, "y": 0}}, ActionType.SPAWN_ORGANISM)


@pytest.mark.parametrize("kind", ["VIRUS", "bacteria", "", "A"])
def test_spawn_organism_refuses_any_other_kind(kind):
    payload = {"kind": kind, "position": {"x": 0, "y": 0}}
    assert_invalid(payload, ActionType.SPAWN_ORGANISM, {"payload.kind"})


@pytest.mark.parametrize(
    "position",
    [
        {"x": 0, "y": 0},
        {"x": WIDTH - 1, "y": 0},
        {"x": 0, "y": HEIGHT - 1},
        {"x": WIDTH - 1, "y": HEIGHT - 1},
    ],
    ids=["top_left", "top_right", "bottom_left", "bottom_right"],
)
def test_spawn_organism_accepts_every_corner_of_the_grid(position):
    assert_valid({"kind": "PHAGE", "position": position}, ActionType.SPAWN_ORGANISM)


@pytest.mark.parametrize(
    ("position", "fields"),
    [
        ({"x": -1, "y": 0}, {"payload.position.x"}),
        ({"x": WIDTH, "y": 0}, {"payload.position.x"}),
        ({"x": 0, "y": -1}, {"payload.position.y"}),
        ({"x": 0, "y": HEIGHT}, {"payload.position.y"}),
        ({"x": WIDTH, "y": HEIGHT}, {"payload.position.x", "payload.position.y"}),
    ],
    ids=["x_below_0", "x_at_width", "y_below_0", "y_at_height", "both_outside"],
)
def test_spawn_organism_refuses_a_position_outside_the_grid(position, fields):
    assert_invalid({"kind": "PHAGE", "position": position}, ActionType.SPAWN_ORGANISM, fields)


def test_grid_bounds_follow_the_current_config():
    arena, admin, player = arena_in(ArenaStatus.PAUSED)
    corner = {"kind": "FUNGI", "position": {"x": WIDTH - 1, "y": HEIGHT - 1}}
    arena.update_config(admin, {"width": WIDTH - 1}, NOW)

    error = assert_refused(arena, ValidationFailed, player, ActionType.SPAWN_ORGANISM, corner)

    assert set(error.field_errors) == {"payload.position.x"}


# --- malformed payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action_type", "payload"),
    [
        (ActionType.ADD_NUTRIENTS, {}),
        (ActionType.ADD_NUTRIENTS, {"area": AREA}),
        (ActionType.ADD_NUTRIENTS, {"amount": 1}),
        (ActionType.ADD_NUTRIENTS, {"area": {"x": 0, "y": 0, "width": 1}, "amount": 1}),
        (ActionType.ADD_NUTRIENTS, {"area": None, "amount": 1}),
        (ActionType.DROP_ANTIBIOTIC, {}),
        (ActionType.DROP_ANTIBIOTIC, {"area": AREA, "concentration": 1}),
        (ActionType.DROP_ANTIBIOTIC, {"area": AREA, "kind": "A"}),
        (ActionType.DROP_ANTIBIOTIC, {"kind": "A", "concentration": 1}),
        (ActionType.SET_TEMPERATURE, {}),
        (ActionType.SET_TEMPERATURE, {"temperature": None}),
        (ActionType.SPAWN_ORGANISM, {}),
        (ActionType.SPAWN_ORGANISM, {"kind": "FUNGI"}),
        (ActionType.SPAWN_ORGANISM, {"position": {"x": 0, "y": 0}}),
        (ActionType.SPAWN_ORGANISM, {"kind": "FUNGI", "position": {"x": 0}}),
        (ActionType.SPAWN_ORGANISM, {"kind": "FUNGI", "position": [0, 0]}),
    ],
)
def test_a_payload_missing_keys_or_of_the_wrong_shape_is_a_validation_failure_on_payload(
    action_type, payload
):
    assert_invalid(payload, action_type, {"payload"})


@pytest.mark.parametrize(
    ("action_type", "payload", "field"),
    [
        (ActionType.ADD_NUTRIENTS, {"area": AREA, "amount": "lots"}, "payload.amount"),
        (ActionType.ADD_NUTRIENTS, {"area": AREA, "amount": None}, "payload.amount"),
        (ActionType.ADD_NUTRIENTS, {"area": {**AREA, "x": "1"}, "amount": 1}, "payload.area.x"),
        (
            ActionType.DROP_ANTIBIOTIC,
            {"area": AREA, "kind": ["A"], "concentration": 1},
            "payload.kind",
        ),
        (
            ActionType.SPAWN_ORGANISM,
            {"kind": "FUNGI", "position": {"x": "0", "y": 0}},
            "payload.position.x",
        ),
        (ActionType.SET_TEMPERATURE, {"temperature": {"value": "hot", "unit": "C"}}, None),
    ],
    ids=["amount_text", "amount_null", "area_x_text", "kind_list", "position_x_text", "temp_text"],
)
def test_a_wrongly_typed_value_is_a_validation_failure_not_a_crash(action_type, payload, field):
    arena, _, player = arena_in()

    error = assert_refused(arena, ValidationFailed, player, action_type, payload)

    # Either the whole payload or the offending field may be named, but nothing else.
    assert set(error.field_errors) <= {"payload", field}


def test_set_temperature_without_a_unit_is_recorded_in_celsius():
    arena, _, player = arena_in()

    submit(arena, player, ActionType.SET_TEMPERATURE, {"temperature": {"value": 20.0}})

    assert arena.events[-1].payload["payload"] == {"temperature": {"value": 20.0, "unit": "C"}}


@pytest.mark.parametrize("temperature", [{}, {"unit": "C"}], ids=["empty", "value_missing"])
def test_set_temperature_without_a_value_is_refused_as_a_validation_failure_on_payload(
    temperature,
):
    # A missing temperature value must not be filled in silently: today the Temperature
    # default turns {"temperature": {}} into a recorded 37.0 °C action.
    assert_invalid({"temperature": temperature}, ActionType.SET_TEMPERATURE, {"payload"})


@pytest.mark.parametrize(
    ("action_type", "payload", "recorded"),
    [
        (
            ActionType.ADD_NUTRIENTS,
            {"area": {**AREA, "depth": 1}, "amount": 2.0, "note": "x"},
            {"area": AREA, "amount": 2.0},
        ),
        (
            ActionType.DROP_ANTIBIOTIC,
            {"area": {**AREA, "z": 0}, "kind": "A", "concentration": 1.0},
            {"area": AREA, "kind": "A", "concentration": 1.0},
        ),
        (
            ActionType.SPAWN_ORGANISM,
            {"kind": "FUNGI", "position": {"x": 0, "y": 0, "z": 0}},
            {"kind": "FUNGI", "position": {"x": 0, "y": 0}},
        ),
        (
            ActionType.SET_TEMPERATURE,
            {"temperature": {"value": 20, "unit": "C", "scale": 1}},
            {"temperature": {"value": 20, "unit": "C"}},
        ),
    ],
    ids=["area_depth", "area_z", "position_z", "temperature_scale"],
)
def test_keys_that_are_not_listed_are_left_out_of_the_recorded_payload(
    action_type, payload, recorded
):
    # docs/events.md: "the domain records a canonical payload built from the listed keys only."
    arena, _, player = arena_in()

    submit(arena, player, action_type, payload)

    assert arena.events[-1].payload["payload"] == recorded


@pytest.mark.parametrize(
    ("action_type", "payload", "number_field"),
    [
        (ActionType.ADD_NUTRIENTS, {"area": AREA, "amount": 2}, "amount"),
        (
            ActionType.DROP_ANTIBIOTIC,
            {"area": AREA, "kind": "B", "concentration": 3},
            "concentration",
        ),
    ],
)
def test_numbers_are_recorded_as_floats(action_type, payload, number_field):
    # docs/events.md: values typed `number` are recorded as floats (`2` becomes `2.0`).
    arena, _, player = arena_in()

    submit(arena, player, action_type, payload)

    recorded = arena.events[-1].payload["payload"][number_field]
    assert recorded == payload[number_field]
    assert type(recorded) is float


@pytest.mark.parametrize("coordinate", [True, 1.0])
def test_an_area_coordinate_that_is_not_a_strict_integer_is_refused(coordinate):
    # docs/events.md: "Integers must be JSON integers"; a bool or a float is not one.
    payload = {"area": {**AREA, "x": coordinate}, "amount": 1.0}
    assert_invalid(payload, ActionType.ADD_NUTRIENTS, {"payload.area.x"})
