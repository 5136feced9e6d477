"""Marshmallow schemas: request validation, response shapes and the OpenAPI document, in one place.

Limits come from the domain so the API and the aggregate can never disagree about them.
"""

from __future__ import annotations

from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range

from arena.domain.actions import MAX_AMOUNT, ActionType, AntibioticKind, OrganismKind
from arena.domain.config import (
    GRID_SIDE_RANGE,
    MAX_ORGANISMS_RANGE,
    MAX_PLAYERS_RANGE,
    RATE_RANGE,
    SEED_RANGE,
    SNAPSHOT_EVERY_TICKS_RANGE,
    TEMPERATURE_RANGE_C,
    TEMPERATURE_UNITS,
    TICK_MILLIS_RANGE,
)
from arena.domain.model import (
    DISPLAY_NAME_LENGTH,
    MAX_TICK,
    NAME_LENGTH,
    ArenaStatus,
    PlayerRole,
)
from arena.readmodel.store import FEED_LENGTH

MAX_PAGE_SIZE = 100
MAX_VERSION = 2**63 - 1  # arenas.version is a PostgreSQL bigint
# Redis indexes are signed 64-bit integers: a page's last one must be one too.
MAX_OFFSET = 2**63 - 1 - MAX_PAGE_SIZE


def _bounded_int(bounds: tuple[int, int], *, required: bool = False) -> fields.Integer:
    return fields.Integer(required=required, strict=True, validate=Range(*bounds))


def _rate() -> fields.Float:
    return fields.Float(validate=Range(*RATE_RANGE))


class TemperatureSchema(Schema):
    value = fields.Float(validate=Range(*TEMPERATURE_RANGE_C))
    unit = fields.String(validate=OneOf(TEMPERATURE_UNITS))


class ArenaConfigSchema(Schema):
    """Every field is optional on input; the domain fills defaults (a random seed included)."""

    tickMillis = _bounded_int(TICK_MILLIS_RANGE)
    width = _bounded_int(GRID_SIDE_RANGE)
    height = _bounded_int(GRID_SIDE_RANGE)
    diffusionRate = _rate()
    mutationRate = _rate()
    maxOrganisms = _bounded_int(MAX_ORGANISMS_RANGE)
    snapshotEveryTicks = _bounded_int(SNAPSHOT_EVERY_TICKS_RANGE)
    temperature = fields.Nested(TemperatureSchema)
    maxPlayers = _bounded_int(MAX_PLAYERS_RANGE)
    seed = _bounded_int(SEED_RANGE)


class CreateArenaSchema(Schema):
    name = fields.String(required=True, validate=Length(*NAME_LENGTH))
    displayName = fields.String(required=True, validate=Length(*DISPLAY_NAME_LENGTH))
    config = fields.Nested(ArenaConfigSchema, load_default=dict)


class JoinArenaSchema(Schema):
    displayName = fields.String(required=True, validate=Length(*DISPLAY_NAME_LENGTH))


class ConfigChangesSchema(ArenaConfigSchema):
    """A partial config: only the settings to change (temperature may be partial too)."""


def _cell() -> fields.Integer:
    """A column or row of the largest grid; the domain checks it against the arena's own."""
    return _bounded_int((0, GRID_SIDE_RANGE[1] - 1), required=True)


class PositionSchema(Schema):
    x = _cell()
    y = _cell()


class AreaSchema(Schema):
    """A rectangle of cells: top-left corner (x, y), width by height cells, inside the grid."""

    x = _cell()
    y = _cell()
    width = _bounded_int(GRID_SIDE_RANGE, required=True)
    height = _bounded_int(GRID_SIDE_RANGE, required=True)


def _positive_amount() -> fields.Float:
    return fields.Float(
        required=True,
        validate=Range(min=0, max=MAX_AMOUNT, min_inclusive=False),
        metadata={
            "description": "Units (1,000 milli-units); at most a field cell's capacity.",
            "exclusiveMinimum": True,  # OpenAPI 3.0's form; apispec leaves it out of the range
        },
    )


class AddNutrientsSchema(Schema):
    area = fields.Nested(AreaSchema, required=True)
    amount = _positive_amount()


class DropAntibioticSchema(Schema):
    area = fields.Nested(AreaSchema, required=True)
    kind = fields.String(required=True, validate=OneOf([kind.value for kind in AntibioticKind]))
    concentration = _positive_amount()


class ActionTemperatureSchema(TemperatureSchema):
    value = fields.Float(required=True, validate=Range(*TEMPERATURE_RANGE_C))


class SetTemperatureSchema(Schema):
    temperature = fields.Nested(ActionTemperatureSchema, required=True)


class SpawnOrganismSchema(Schema):
    kind = fields.String(required=True, validate=OneOf([kind.value for kind in OrganismKind]))
    position = fields.Nested(PositionSchema, required=True)


ACTION_PAYLOAD_SCHEMAS: dict[str, type[Schema]] = {
    ActionType.ADD_NUTRIENTS: AddNutrientsSchema,
    ActionType.DROP_ANTIBIOTIC: DropAntibioticSchema,
    ActionType.SET_TEMPERATURE: SetTemperatureSchema,
    ActionType.SPAWN_ORGANISM: SpawnOrganismSchema,
}


class SubmitActionSchema(Schema):
    type = fields.String(required=True, validate=OneOf([kind.value for kind in ActionType]))
    applyAtTick = fields.Integer(
        strict=True,
        validate=Range(1, MAX_TICK),
        metadata={"description": "Tick to apply the action at; default: the next tick."},
    )
    payload = fields.Dict(
        required=True,
        metadata={
            "description": "Depends on `type`: AddNutrientsPayload, DropAntibioticPayload, "
            "SetTemperaturePayload or SpawnOrganismPayload (see components)."
        },
    )

    @validates_schema
    def _payload_matches_type(self, data: dict[str, Any], **_: Any) -> None:
        schema = ACTION_PAYLOAD_SCHEMAS.get(data.get("type", ""))
        if schema is not None and "payload" in data:
            try:
                data["payload"] = schema().load(data["payload"])
            except ValidationError as error:
                raise ValidationError({"payload": error.messages}) from error


class PlayerCredentialsSchema(Schema):
    id = fields.String(required=True)
    token = fields.String(required=True, metadata={"description": "Bearer token; shown once."})
    role = fields.String(required=True, validate=OneOf([role.value for role in PlayerRole]))


class ArenaOpenedSchema(Schema):
    id = fields.String(required=True)
    version = fields.Integer(required=True)
    player = fields.Nested(PlayerCredentialsSchema, required=True)


class PlayerJoinedSchema(Schema):
    player = fields.Nested(PlayerCredentialsSchema, required=True)
    version = fields.Integer(required=True)


class VersionSchema(Schema):
    version = fields.Integer(
        required=True,
        metadata={"description": "The arena's version after the command (read-your-writes)."},
    )


class StatusChangedSchema(VersionSchema):
    status = fields.String(required=True, validate=OneOf([status.value for status in ArenaStatus]))


class ActionAcceptedSchema(VersionSchema):
    actionId = fields.String(required=True)
    applyAtTick = fields.Integer(required=True)


class PlayerViewSchema(Schema):
    playerId = fields.String()
    displayName = fields.String()
    role = fields.String()
    joinedAt = fields.String()


class ArenaViewSchema(Schema):
    id = fields.String()
    name = fields.String()
    status = fields.String(validate=OneOf([status.value for status in ArenaStatus]))
    tick = fields.Integer()
    version = fields.Integer(metadata={"description": "Last event version applied to this view."})
    config = fields.Nested(ArenaConfigSchema)
    players = fields.List(fields.Nested(PlayerViewSchema))
    createdAt = fields.String()
    startedAt = fields.String(allow_none=True)
    finishedAt = fields.String(allow_none=True)
    stalled = fields.Boolean(
        metadata={"description": "True while events wait behind a dead-lettered one."}
    )
    stalledAtVersion = fields.Integer(allow_none=True)
    stats = fields.Dict(metadata={"description": "The last tick's stats (after its first tick)."})
    boardHash = fields.String(metadata={"description": "The board's hash after the last tick."})


class BoardSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer(metadata={"description": "Last event version applied to the view."})
    tick = fields.Integer()
    width = fields.Integer()
    height = fields.Integer()
    encoding = fields.String(metadata={"description": "The board encoding's name and version."})
    layers = fields.Dict(
        metadata={
            "description": "organisms: one object each (position, kind, owner, energy, lineage, "
            f"genome), at most the arena's maxOrganisms ({MAX_ORGANISMS_RANGE[1]:,} at most), in "
            "cell order; the body is streamed as they are written. nutrients, antibiotic, "
            "temperature: {dtype, shape, scale?, data}, data being the little-endian array, "
            "zlib-compressed, base64 (docs/simulation.md)."
        }
    )
    boardHash = fields.String(
        metadata={
            "description": "SHA-256 of the board's canonical encoding, as in the write model."
        }
    )
    stats = fields.Dict(allow_none=True, metadata={"description": "The last tick's stats."})


class ReadQuerySchema(Schema):
    minVersion = fields.Integer(
        validate=Range(1, MAX_VERSION),
        metadata={
            "description": "Wait (up to a few seconds) until the view has applied this version, "
            "e.g. the `version` a command answered: read-your-writes."
        },
    )


# The boards one FULL history request builds, in cells (ticks x width x height): two of the
# largest boards, or HISTORY_MAX_RANGE_TICKS boards of up to about 51 x 51.
HISTORY_FULL_MAX_CELLS = 2 * GRID_SIDE_RANGE[1] ** 2


class HistoryQuerySchema(ReadQuerySchema):
    fromTick = fields.Integer(required=True, validate=Range(0, MAX_TICK))
    toTick = fields.Integer(required=True, validate=Range(0, MAX_TICK))
    mode = fields.String(
        load_default="DELTA",
        validate=OneOf(["DELTA", "FULL"]),
        metadata={
            "description": "DELTA: each tick's stats and delta; FULL: each tick's board. FULL "
            f"builds at most {HISTORY_FULL_MAX_CELLS:,} cells of boards a request (ticks x "
            "width x height: 2 ticks of a 512 x 512 board, 128 of 64 x 64); past it 422 naming "
            "toTick."
        },
    )

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("fromTick", 0) > data.get("toTick", data.get("fromTick", 0)):
            raise ValidationError("must not be below fromTick", "toTick")


class LeaderboardQuerySchema(ReadQuerySchema):
    top = fields.Integer(load_default=20, validate=Range(1, 100))


class StatsQuerySchema(ReadQuerySchema):
    windowSeconds = fields.Integer(load_default=60, validate=Range(1, 3600))


class HistorySchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    mode = fields.String()
    fromTick = fields.Integer()
    toTick = fields.Integer()
    ticks = fields.List(
        fields.Dict(),
        metadata={
            "description": "DELTA: {tick, stats, delta, advancedAt} per tick; FULL: the board of "
            "each tick, as GET /board shows it."
        },
    )


class LeaderboardSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    tick = fields.Integer()
    entries = fields.List(
        fields.Dict(),
        metadata={"description": "{rank, organismId, fitness, kind, genomeSignature, owner}"},
    )
    players = fields.List(
        fields.Dict(), metadata={"description": "{playerId, displayName, organisms, biomass}"}
    )


class StatsSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    tick = fields.Integer()
    windowSeconds = fields.Integer()
    ticksInWindow = fields.Integer()
    organismCount = fields.Integer()
    birthsPerSec = fields.Float()
    deathsPerSec = fields.Float()
    mutationRateObserved = fields.Float(
        metadata={"description": "Genes mutated per gene inherited by the window's births."}
    )
    topGenomes = fields.List(fields.Dict())


class OrganismSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    tick = fields.Integer()
    id = fields.Integer()
    x = fields.Integer()
    y = fields.Integer()
    kind = fields.String()
    owner = fields.String()
    energy = fields.Float()
    fitness = fields.Float()
    generation = fields.Integer()
    parentId = fields.Integer(allow_none=True)
    bornTick = fields.Integer()
    offspring = fields.Integer()
    mutations = fields.Integer()
    genome = fields.Dict()
    lineage = fields.Dict(metadata={"description": "{parentId, generation, mutations}"})


class GenomeSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    tick = fields.Integer()
    signature = fields.String()
    kind = fields.String()
    genes = fields.Dict(
        metadata={"description": "{growthRate, resistance: {A, B, C}, optimumTemperature}"}
    )
    liveOrganisms = fields.Integer()


class PageQuerySchema(Schema):
    limit = fields.Integer(load_default=20, validate=Range(1, MAX_PAGE_SIZE))
    offset = fields.Integer(load_default=0, validate=Range(0, MAX_OFFSET))
    status = fields.String(validate=OneOf([status.value for status in ArenaStatus]))
    q = fields.String(
        validate=Length(1, NAME_LENGTH[1]),
        metadata={"description": "Case-insensitive part of the arena name."},
    )


class ArenaPageSchema(Schema):
    items = fields.List(fields.Nested(ArenaViewSchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class ArenaPlayersSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    players = fields.List(fields.Nested(PlayerViewSchema))


class StreamQuerySchema(Schema):
    mode = fields.String(
        load_default="DELTA",
        validate=OneOf(["DELTA", "FULL"]),
        metadata={
            "description": "DELTA: a TickAdvanced frame carries the tick's delta; FULL: the "
            "board of its tick, as GET /board shows it."
        },
    )


class StreamHeadersSchema(Schema):
    last_event_id = fields.Integer(
        data_key="Last-Event-ID",
        validate=Range(0, MAX_VERSION),
        metadata={
            "description": "The `id` of the last frame received (an arena version): the stream "
            "resumes right after it. A browser's EventSource sends it when it reconnects."
        },
    )


class StatsStreamQuerySchema(Schema):
    windowSeconds = fields.Integer(load_default=60, validate=Range(1, 3600))


class FeedQuerySchema(ReadQuerySchema):
    limit = fields.Integer(load_default=20, validate=Range(1, FEED_LENGTH))


class FeedEntrySchema(Schema):
    version = fields.Integer()
    type = fields.String()
    occurredAt = fields.String()
    eventId = fields.String()
    payload = fields.Dict()


class ArenaFeedSchema(Schema):
    arenaId = fields.String()
    version = fields.Integer()
    events = fields.List(fields.Nested(FeedEntrySchema))


class FieldErrorSchema(Schema):
    field = fields.String()
    message = fields.String()


class ProblemSchema(Schema):
    """RFC 7807 problem details; a problem may add members of its own (RFC 7807, 3.2), such as
    `currentVersion` or `firstTick` and `lastTick`."""

    class Meta:
        unknown = INCLUDE

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    instance = fields.String()
    errors = fields.List(fields.Nested(FieldErrorSchema))
