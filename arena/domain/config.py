"""The arena's configuration: a value object whose limits are shared with the HTTP schemas."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from arena.domain.errors import ValidationFailed

GRID_SIDE_RANGE = (1, 512)
# From twenty ticks a second to one an hour.
TICK_MILLIS_RANGE = (50, 3_600_000)
# One organism per cell at most: more than the largest grid's cells would never bind.
MAX_ORGANISMS_RANGE = (1, GRID_SIDE_RANGE[1] ** 2)
# A reader of the event log never has more deltas than this to apply after a snapshot.
SNAPSHOT_EVERY_TICKS_RANGE = (1, 10_000)
# Every command looks its player up among those present; the board's `owner` layer (int16) tells
# 32,768 owners apart at once, far more than can be present: a leaver's organisms become
# nobody's and free slots are reused (docs/simulation.md).
MAX_PLAYERS_RANGE = (1, 1_000)
RATE_RANGE = (0.0, 1.0)
TEMPERATURE_RANGE_C = (-50.0, 150.0)
TEMPERATURE_UNITS = ("C",)
SEED_RANGE = (0, 2**63 - 1)


def random_seed() -> int:
    return random.SystemRandom().randint(*SEED_RANGE)


@dataclass(frozen=True, slots=True)
class Temperature:
    value: float = 37.0
    unit: str = "C"


@dataclass(frozen=True, slots=True)
class ArenaConfig:
    tick_millis: int = 500
    width: int = 64
    height: int = 64
    diffusion_rate: float = 0.1
    mutation_rate: float = 0.01
    max_organisms: int = 10_000
    snapshot_every_ticks: int = 50
    temperature: Temperature = field(default_factory=Temperature)
    max_players: int = 8
    seed: int = field(default_factory=random_seed)

    def __post_init__(self) -> None:
        errors = _range_errors(self)
        if errors:
            raise ValidationFailed(errors)

    def to_dict(self) -> dict[str, Any]:
        """The camelCase form used in events, the read model and the API."""
        raw = asdict(self)
        return {_camel(name): value for name, value in raw.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArenaConfig:
        """Build from the camelCase form; unknown names or wrong types are validation failures."""
        unknown = sorted(set(data) - _CAMEL_FIELDS)
        if unknown:
            raise ValidationFailed({name: "is not a setting" for name in unknown})
        values = {_snake(name): value for name, value in data.items()}
        try:
            if "temperature" in values:
                values["temperature"] = Temperature(**values["temperature"])
            return cls(**values)
        except TypeError as error:
            raise ValidationFailed({"config": f"not a valid config: {error}"}) from error


def _range_errors(config: ArenaConfig) -> dict[str, str]:
    errors: dict[str, str] = {}

    def within(name: str, value: float, bounds: tuple[float, float]) -> None:
        low, high = bounds
        if not low <= value <= high:  # NaN included
            errors[name] = f"must be between {low} and {high}"

    within("tickMillis", config.tick_millis, TICK_MILLIS_RANGE)
    within("width", config.width, GRID_SIDE_RANGE)
    within("height", config.height, GRID_SIDE_RANGE)
    within("diffusionRate", config.diffusion_rate, RATE_RANGE)
    within("mutationRate", config.mutation_rate, RATE_RANGE)
    within("maxOrganisms", config.max_organisms, MAX_ORGANISMS_RANGE)
    within("snapshotEveryTicks", config.snapshot_every_ticks, SNAPSHOT_EVERY_TICKS_RANGE)
    within("maxPlayers", config.max_players, MAX_PLAYERS_RANGE)
    within("seed", config.seed, SEED_RANGE)
    return errors | temperature_errors(config.temperature, "temperature")


def temperature_errors(temperature: Temperature, path: str) -> dict[str, str]:
    errors = {}
    if temperature.unit not in TEMPERATURE_UNITS:
        errors[f"{path}.unit"] = f"must be one of {', '.join(TEMPERATURE_UNITS)}"
    low, high = TEMPERATURE_RANGE_C
    if not low <= temperature.value <= high:
        errors[f"{path}.value"] = f"must be between {low} and {high}"
    return errors


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


def _snake(camel: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in camel)


_CAMEL_FIELDS = frozenset(_camel(field.name) for field in fields(ArenaConfig))
