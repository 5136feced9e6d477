"""The event catalog: one frozen class per fact the `Arena` aggregate records.

Each class names its wire type (the class name) and its payload schema version; its fields are
the payload, written as camelCase keys (a field may name another key). `payload` and
`decode_event` are exact inverses for every event the domain records, so projections read
the same typed events the aggregate wrote. docs/events.md documents every class here, and a
test holds the two, and the projector's handlers, together.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Union

JsonObject = dict[str, Any]


class PoisonEvent(ValueError):
    """A received event no retry can apply: it is dead-lettered, and its arena stalls behind it."""


class UnknownEvent(PoisonEvent):
    """An event type or schema version this code does not know."""


class RejectedPayload(PoisonEvent):
    """A payload that lacks a field or holds a value of the wrong type."""


@dataclass(frozen=True, slots=True)
class PlayerSnapshot:
    """A player as events show it: never its token."""

    player_id: str
    display_name: str
    role: str
    joined_at: datetime

    def to_json(self) -> JsonObject:
        return _encode(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """A fact an aggregate recorded; `version` is the aggregate's version after the change.

    Subclasses add the payload's fields. Changing a subclass's fields changes its wire schema:
    bump its `schema_version` (docs/events.md, "Compatibility").
    """

    schema_version: ClassVar[int] = 1
    # Older schemas of this type that the current fields still read faithfully: events written
    # before an upgrade may still wait in the outbox or in Kafka.
    also_reads_schema_versions: ClassVar[frozenset[int]] = frozenset()

    aggregate_id: str
    version: int
    occurred_at: datetime

    @property
    def type(self) -> str:
        return type(self).__name__

    @property
    def payload(self) -> JsonObject:
        return _encode(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class ArenaCreated(DomainEvent):
    arena_id: str
    name: str
    status: str
    config: JsonObject  # as validated when recorded; projections do not re-validate it
    created_at: datetime
    creator: PlayerSnapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerJoined(DomainEvent):
    player_id: str
    display_name: str
    role: str
    joined_at: datetime

    @property
    def player(self) -> PlayerSnapshot:
        return PlayerSnapshot(self.player_id, self.display_name, self.role, self.joined_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlayerLeft(DomainEvent):
    player_id: str
    display_name: str
    role: str
    removed_by: str | None  # the admin who removed the player; None when it left itself
    left_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ArenaStarted(DomainEvent):
    status: str
    tick: int
    started_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ArenaPaused(DomainEvent):
    status: str
    tick: int
    paused_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ArenaResumed(DomainEvent):
    status: str
    tick: int
    resumed_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ArenaStopped(DomainEvent):
    status: str
    tick: int
    finished_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ArenaConfigUpdated(DomainEvent):
    changes: list[str]  # the camelCase names of the settings that changed, sorted
    config: JsonObject  # the whole config after the change
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionSubmitted(DomainEvent):
    action_id: str
    player_id: str
    action_type: str = field(metadata={"key": "type"})
    apply_at_tick: int
    action_payload: JsonObject = field(metadata={"key": "payload"})  # canonical for its type
    submitted_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionApplied(DomainEvent):
    action_id: str
    tick: int  # the tick it took effect in


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRejected(DomainEvent):
    action_id: str
    tick: int
    reason: str  # e.g. "the cell is occupied"


@dataclass(frozen=True, slots=True, kw_only=True)
class TickAdvanced(DomainEvent):
    # 3: `delta` packs every layer into one zlib stream and carries energy as steps of its grid;
    # 2: integer differences in the narrowest width, named by a patch's `width`; 1: no `width`.
    # Schemas 1 and 2 decode as before.
    schema_version: ClassVar[int] = 3
    also_reads_schema_versions: ClassVar[frozenset[int]] = frozenset({1, 2})

    tick: int  # the arena's tick after this one
    stats: JsonObject  # organismCount, births, deaths, mutations, avgFitness, ticksSkipped
    delta: JsonObject  # the board's changed cells (docs/simulation.md, "Encodings")
    board_hash: str  # SHA-256 of the board's canonical encoding after the tick
    advanced_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotTaken(DomainEvent):
    tick: int
    board: str  # the canonical encoding in an LZ4 frame (older snapshots: zlib), base64
    board_hash: str


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.__name__: cls
    for cls in (
        ArenaCreated,
        PlayerJoined,
        PlayerLeft,
        ArenaStarted,
        ArenaPaused,
        ArenaResumed,
        ArenaStopped,
        ArenaConfigUpdated,
        ActionSubmitted,
        ActionApplied,
        ActionRejected,
        TickAdvanced,
        SnapshotTaken,
    )
}


def decode_event(
    event_type: str,
    schema_version: int,
    *,
    aggregate_id: str,
    version: int,
    occurred_at: str,
    payload: JsonObject,
) -> DomainEvent:
    """The typed event a received envelope holds; keys the schema does not name are ignored."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEvent(f"unknown event type {event_type!r}")
    if (
        schema_version != cls.schema_version
        and schema_version not in cls.also_reads_schema_versions
    ):
        raise UnknownEvent(f"{event_type} schema version {schema_version} is not supported")
    when = _read_datetime("occurredAt", occurred_at)
    try:
        fields = _decode_fields(cls, payload)
    except RejectedPayload as error:
        raise RejectedPayload(f"{event_type} payload rejected: {error}") from None
    return cls(aggregate_id=aggregate_id, version=version, occurred_at=when, **fields)


# --- the payload codec -------------------------------------------------------------------------

_ENVELOPE_FIELDS = frozenset(f.name for f in dataclasses.fields(DomainEvent))
_Reader = Callable[[str, object], object]


def _encode(value: object) -> JsonObject:
    return {key: _to_json(getattr(value, name)) for name, key, _ in _schema_of(type(value))}


def _to_json(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, PlayerSnapshot):
        return value.to_json()
    return value


def _decode_fields(cls: type, payload: object) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise RejectedPayload("the payload is not an object")
    fields: dict[str, Any] = {}
    for name, key, read in _schema_of(cls):
        if key not in payload:
            raise RejectedPayload(f"{key} is missing")
        fields[name] = read(key, payload[key])
    return fields


def _schema_of(cls: type) -> tuple[tuple[str, str, _Reader], ...]:
    schema = _SCHEMAS.get(cls)
    if schema is None:  # a class added to the catalog later (a fix deployed in a test, say)
        schema = _SCHEMAS[cls] = _schema(cls)
    return schema


def _schema(cls: type) -> tuple[tuple[str, str, _Reader], ...]:
    """(field name, payload key, reader) for each payload field of `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, f.metadata.get("key", _camel(f.name)), _reader(hints[f.name]))
        for f in dataclasses.fields(cls)
        if f.name not in _ENVELOPE_FIELDS
    )


def _reader(hint: object) -> _Reader:
    """How to check (and, for times and players, convert) one JSON value of this type."""
    if hint is datetime:
        return _read_datetime
    if hint is PlayerSnapshot:
        return lambda key, value: PlayerSnapshot(**_decode_fields(PlayerSnapshot, value))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType) and args == (str, type(None)):
        return lambda key, value: value if value is None else _checked(key, value, str)
    if origin is list and args == (str,):
        return _read_strings
    if origin is dict:
        return lambda key, value: _checked(key, value, dict)
    if hint in (str, int):
        return lambda key, value: _checked(key, value, typing.cast(type, hint))
    raise TypeError(f"no payload reader for {hint!r}")  # a new field type needs one here


def _checked(key: str, value: object, kind: type) -> object:
    """JSON-strict: a bool is not an int here, and nothing is coerced."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RejectedPayload(f"{key} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _read_strings(key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise RejectedPayload(f"{key} must be a list of strings")
    return value


def _read_datetime(key: str, value: object) -> datetime:
    text = _checked(key, value, str)
    try:
        return datetime.fromisoformat(typing.cast(str, text))
    except ValueError:
        raise RejectedPayload(f"{key} is not an ISO 8601 time: {text!r}") from None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Built at import, so a field type without a reader fails at once, not on the first event.
_SCHEMAS: dict[type, tuple[tuple[str, str, _Reader], ...]] = {
    cls: _schema(cls) for cls in (*EVENT_TYPES.values(), PlayerSnapshot)
}
