"""ArenaConfig / Temperature: defaults, every range rule at its bounds, the camelCase dict form."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.domain.config import SEED_RANGE, ArenaConfig, Temperature
from arena.domain.errors import ValidationFailed

ALL_CAMEL_KEYS = {
    "tickMillis",
    "width",
    "height",
    "diffusionRate",
    "mutationRate",
    "maxOrganisms",
    "snapshotEveryTicks",
    "temperature",
    "maxPlayers",
    "seed",
}


def just_below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def just_above(x: float) -> float:
    return math.nextafter(x, math.inf)


def test_defaults_match_the_documented_values():
    config = ArenaConfig()

    assert config.tick_millis == 500
    assert config.width == 64
    assert config.height == 64
    assert config.diffusion_rate == 0.1
    assert config.mutation_rate == 0.01
    assert config.max_organisms == 10_000
    assert config.snapshot_every_ticks == 50
    assert config.temperature == Temperature(value=37.0, unit="C")
    assert config.max_players == 8
    assert SEED_RANGE[0] <= config.seed <= SEED_RANGE[1]


def test_omitted_seed_is_random_within_seed_range():
    # Eight independent draws from 2**63 values all being equal has probability ~2**-441.
    seeds = [ArenaConfig().seed for _ in range(8)]

    assert all(SEED_RANGE[0] <= seed <= SEED_RANGE[1] for seed in seeds)
    assert len(set(seeds)) > 1


# (keyword argument, camelCase field name, values just inside, values just outside)
BOUNDS = [
    ("width", "width", [1, 512], [0, 513, -1]),
    ("height", "height", [1, 512], [0, 513, -1]),
    ("tick_millis", "tickMillis", [50, 3_600_000], [49, 3_600_001, 0, -1]),
    ("diffusion_rate", "diffusionRate", [0.0, 1.0], [just_below(0.0), just_above(1.0), math.nan]),
    ("mutation_rate", "mutationRate", [0.0, 1.0], [just_below(0.0), just_above(1.0), math.nan]),
    ("max_organisms", "maxOrganisms", [1, 512 * 512], [0, -1, 512 * 512 + 1]),
    ("snapshot_every_ticks", "snapshotEveryTicks", [1, 10_000], [0, -1, 10_001]),
    ("max_players", "maxPlayers", [1, 1_000], [0, -1, 1_001]),
    ("seed", "seed", [0, 2**63 - 1], [-1, 2**63]),
]
INSIDE = [(kwarg, value) for kwarg, _, inside, _ in BOUNDS for value in inside]
OUTSIDE = [(kwarg, field, value) for kwarg, field, _, outside in BOUNDS for value in outside]


@pytest.mark.parametrize(("kwarg", "value"), INSIDE)
def test_value_at_the_bound_is_accepted(kwarg, value):
    config = ArenaConfig(**{kwarg: value})

    assert getattr(config, kwarg) == value


@pytest.mark.parametrize(("kwarg", "field", "value"), OUTSIDE)
def test_value_just_outside_the_bound_is_rejected_naming_only_that_field(kwarg, field, value):
    with pytest.raises(ValidationFailed) as raised:
        ArenaConfig(**{kwarg: value})

    assert set(raised.value.field_errors) == {field}
    assert raised.value.field_errors[field]


@pytest.mark.parametrize("value", [-50.0, 150.0, -50, 150, 37.0])
def test_temperature_at_the_bounds_is_accepted(value):
    assert ArenaConfig(temperature=Temperature(value=value)).temperature.value == value


@pytest.mark.parametrize(
    "value", [just_below(-50.0), just_above(150.0), -273.15, math.inf, -math.inf, math.nan]
)
def test_temperature_outside_the_bounds_is_rejected_as_temperature_value(value):
    with pytest.raises(ValidationFailed) as raised:
        ArenaConfig(temperature=Temperature(value=value))

    assert set(raised.value.field_errors) == {"temperature.value"}


@pytest.mark.parametrize("unit", ["F", "K", "c", "", "°C"])
def test_temperature_unit_other_than_celsius_is_rejected_as_temperature_unit(unit):
    with pytest.raises(ValidationFailed) as raised:
        ArenaConfig(temperature=Temperature(value=37.0, unit=unit))

    assert set(raised.value.field_errors) == {"temperature.unit"}


def test_every_broken_rule_is_reported_at_once():
    with pytest.raises(ValidationFailed) as raised:
        ArenaConfig(
            tick_millis=0,
            width=0,
            height=513,
            diffusion_rate=2.0,
            mutation_rate=-0.5,
            max_organisms=0,
            snapshot_every_ticks=0,
            max_players=0,
            seed=-1,
            temperature=Temperature(value=200.0, unit="F"),
        )

    assert set(raised.value.field_errors) == {
        "tickMillis",
        "width",
        "height",
        "diffusionRate",
        "mutationRate",
        "maxOrganisms",
        "snapshotEveryTicks",
        "maxPlayers",
        "seed",
        "temperature.unit",
        "temperature.value",
    }
    assert "width" in str(raised.value)


def test_to_dict_uses_camel_case_keys_and_a_nested_temperature_dict():
    config = ArenaConfig(seed=42)

    assert config.to_dict() == {
        "tickMillis": 500,
        "width": 64,
        "height": 64,
        "diffusionRate": 0.1,
        "mutationRate": 0.01,
        "maxOrganisms": 10_000,
        "snapshotEveryTicks": 50,
        "temperature": {"value": 37.0, "unit": "C"},
        "maxPlayers": 8,
        "seed": 42,
    }


def test_from_dict_of_an_empty_dict_gives_the_defaults_with_a_random_seed():
    config = ArenaConfig.from_dict({})

    assert config == ArenaConfig(seed=config.seed)
    assert SEED_RANGE[0] <= config.seed <= SEED_RANGE[1]


def test_from_dict_of_a_partial_dict_fills_the_other_fields_with_defaults():
    config = ArenaConfig.from_dict({"width": 10, "maxPlayers": 2, "seed": 7})

    assert config == ArenaConfig(width=10, max_players=2, seed=7)


def test_from_dict_of_a_partial_temperature_fills_the_unit():
    config = ArenaConfig.from_dict({"temperature": {"value": 20.5}, "seed": 1})

    assert config.temperature == Temperature(value=20.5, unit="C")


def test_from_dict_validates_like_the_constructor():
    with pytest.raises(ValidationFailed) as raised:
        ArenaConfig.from_dict({"snapshotEveryTicks": 0, "temperature": {"value": 151}})

    assert set(raised.value.field_errors) == {"snapshotEveryTicks", "temperature.value"}


def unit_interval():
    return st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


valid_configs = st.builds(
    ArenaConfig,
    tick_millis=st.integers(min_value=50, max_value=3_600_000),
    width=st.integers(min_value=1, max_value=512),
    height=st.integers(min_value=1, max_value=512),
    diffusion_rate=unit_interval(),
    mutation_rate=unit_interval(),
    max_organisms=st.integers(min_value=1, max_value=512 * 512),
    snapshot_every_ticks=st.integers(min_value=1, max_value=10_000),
    temperature=st.builds(Temperature, value=st.floats(min_value=-50.0, max_value=150.0)),
    max_players=st.integers(min_value=1, max_value=1_000),
    seed=st.integers(min_value=SEED_RANGE[0], max_value=SEED_RANGE[1]),
)


@settings(database=None)
@given(valid_configs)
def test_any_valid_config_round_trips_through_its_camel_case_dict(config):
    as_dict = config.to_dict()

    assert set(as_dict) == ALL_CAMEL_KEYS
    assert set(as_dict["temperature"]) == {"value", "unit"}
    assert ArenaConfig.from_dict(as_dict) == config
