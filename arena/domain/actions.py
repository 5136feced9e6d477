"""Player actions: what a player may ask the simulation to do at a future tick."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from arena.domain.config import ArenaConfig, Temperature, temperature_errors
from arena.domain.errors import ValidationFailed

# A field cell of the board holds at most 2**31 - 1 milli-units (an int32 layer that saturates
# there, docs/simulation.md): one action adds at most a full cell, so no sum can overflow.
MAX_AMOUNT = (2**31 - 1) / 1000


class ActionType(enum.StrEnum):
    ADD_NUTRIENTS = "ADD_NUTRIENTS"
    DROP_ANTIBIOTIC = "DROP_ANTIBIOTIC"
    SET_TEMPERATURE = "SET_TEMPERATURE"
    SPAWN_ORGANISM = "SPAWN_ORGANISM"


class AntibioticKind(enum.StrEnum):
    A = "A"
    B = "B"
    C = "C"


class OrganismKind(enum.StrEnum):
    BACTERIA = "BACTERIA"
    FUNGI = "FUNGI"
    PHAGE = "PHAGE"


@dataclass(frozen=True, slots=True)
class Position:
    x: int
    y: int

    def errors(self, config: ArenaConfig, path: str) -> dict[str, str]:
        errors = {}
        if not 0 <= self.x < config.width:
            errors[f"{path}.x"] = f"must be between 0 and {config.width - 1} (grid width)"
        if not 0 <= self.y < config.height:
            errors[f"{path}.y"] = f"must be between 0 and {config.height - 1} (grid height)"
        return errors


@dataclass(frozen=True, slots=True)
class Area:
    """A rectangle of cells: top-left corner (x, y), `width` by `height` cells."""

    x: int
    y: int
    width: int
    height: int

    def errors(self, config: ArenaConfig, path: str) -> dict[str, str]:
        errors = Position(self.x, self.y).errors(config, path)
        if self.width < 1 or self.x + self.width > config.width:
            errors[f"{path}.width"] = "must be at least 1 and keep the area inside the grid"
        if self.height < 1 or self.y + self.height > config.height:
            errors[f"{path}.height"] = "must be at least 1 and keep the area inside the grid"
        return errors


def validated_payload(
    action_type: ActionType, payload: dict[str, Any], config: ArenaConfig
) -> dict[str, Any]:
    """Check an action's payload against the arena's grid and rules; return its canonical form.

    The HTTP schemas check shapes first, so a malformed payload here is a caller's bug, still
    reported as a validation failure rather than a crash.
    """
    try:
        return _validated(action_type, payload, config)
    except (KeyError, TypeError) as error:
        raise ValidationFailed(
            {"payload": f"malformed {action_type} payload: {error!r}"}
        ) from error


def _validated(
    action_type: ActionType, payload: dict[str, Any], config: ArenaConfig
) -> dict[str, Any]:
    errors: dict[str, str] = {}
    canonical: dict[str, Any] = {}
    if action_type in (ActionType.ADD_NUTRIENTS, ActionType.DROP_ANTIBIOTIC):
        raw = payload["area"]
        area = Area(*(_integer(raw[name], f"payload.area.{name}", errors) for name in _AREA_FIELDS))
        errors |= area.errors(config, "payload.area")
        canonical["area"] = asdict(area)
    if action_type is ActionType.ADD_NUTRIENTS:
        canonical["amount"] = _amount(payload["amount"], "payload.amount", errors)
    if action_type is ActionType.DROP_ANTIBIOTIC:
        canonical["kind"] = _member(AntibioticKind, payload["kind"], "payload.kind", errors)
        canonical["concentration"] = _amount(
            payload["concentration"], "payload.concentration", errors
        )
    if action_type is ActionType.SET_TEMPERATURE:
        raw = payload["temperature"]
        temperature = Temperature(value=raw["value"], unit=raw.get("unit", "C"))
        errors |= temperature_errors(temperature, "payload.temperature")
        canonical["temperature"] = asdict(temperature)
    if action_type is ActionType.SPAWN_ORGANISM:
        canonical["kind"] = _member(OrganismKind, payload["kind"], "payload.kind", errors)
        raw = payload["position"]
        position = Position(
            *(_integer(raw[name], f"payload.position.{name}", errors) for name in ("x", "y"))
        )
        errors |= position.errors(config, "payload.position")
        canonical["position"] = asdict(position)
    if errors:
        raise ValidationFailed(errors)
    return canonical


_AREA_FIELDS = ("x", "y", "width", "height")


def _integer(value: Any, path: str, errors: dict[str, str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    errors[path] = "must be an integer"
    return 0


def _amount(value: Any, path: str, errors: dict[str, str]) -> float:
    number_like = isinstance(value, int | float) and not isinstance(value, bool)
    if number_like and 0 < value <= MAX_AMOUNT:  # neither NaN nor infinite
        return float(value)
    errors[path] = f"must be a number greater than 0 and at most {MAX_AMOUNT}"
    return 0.0


def _member(kind: type[enum.StrEnum], value: Any, path: str, errors: dict[str, str]) -> str:
    if value in kind.__members__:
        return str(value)
    errors[path] = f"must be one of {', '.join(kind.__members__)}"
    return ""
