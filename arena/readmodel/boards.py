"""Each arena's board in the read model, kept by the events that carry it.

`TickAdvanced` carries the tick's delta and `SnapshotTaken` the whole board; the board key holds
the board as the write model stores it (the canonical encoding, compressed), under the same
generation as the views. It follows the arena's view: the caller hands over the events it has
just applied to views (or found already applied, after a crash between the two writes), and
each is applied to the board at most once, by tick: a delta only to the board of the tick
before it, a snapshot to any board not past it. So redelivery changes nothing, and a board that
missed a delta waits for the next snapshot instead of going wrong.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from redis import Redis

from arena.domain.envelope import EventEnvelope
from arena.readmodel.keys import Keys
from arena.simulation import delta
from arena.simulation.board import Board

log = logging.getLogger(__name__)

BOARD_EVENTS = frozenset({"TickAdvanced", "SnapshotTaken"})


def follow_boards(redis: Redis, keys: Keys, envelopes: Sequence[EventEnvelope]) -> None:
    """Bring each arena's board up to the board events among `envelopes` (in order per arena)."""
    by_arena: dict[str, list[EventEnvelope]] = {}
    for envelope in envelopes:
        if envelope.event_type in BOARD_EVENTS:
            by_arena.setdefault(envelope.aggregate_id, []).append(envelope)
    if not by_arena:
        return
    arena_ids = list(by_arena)
    stored = redis.mget([keys.board(arena_id) for arena_id in arena_ids])
    changed: dict[str, Board] = {}
    for arena_id, raw in zip(arena_ids, stored, strict=True):
        board = None if raw is None else Board.decode(raw)
        before = board
        for envelope in by_arena[arena_id]:
            board = _advanced(redis, keys, arena_id, board, envelope)
        if board is not None and board is not before:
            changed[arena_id] = board
    if changed:
        redis.mset({keys.board(arena_id): board.encode() for arena_id, board in changed.items()})


def read_board(redis: Redis, keys: Keys, arena_id: str) -> Board | None:
    raw = redis.get(keys.board(arena_id))
    return None if raw is None else Board.decode(raw)


def _advanced(
    redis: Redis, keys: Keys, arena_id: str, board: Board | None, envelope: EventEnvelope
) -> Board | None:
    payload = envelope.payload
    tick = payload["tick"]
    if envelope.event_type == "SnapshotTaken":
        if board is not None and board.tick > tick:
            return board
        return Board.decode_text(payload["board"])
    if board is None and tick == 1:
        board = _empty_board(redis, keys, arena_id)
    if board is None or board.tick != tick - 1:
        if board is None or board.tick < tick:
            log.warning(
                "arena %s: the read model's board is at tick %s, cannot apply tick %d's delta; "
                "it waits for the next snapshot",
                arena_id,
                None if board is None else board.tick,
                tick,
            )
        return board
    return delta.apply(board, delta.decode(payload["delta"]))


def _empty_board(redis: Redis, keys: Keys, arena_id: str) -> Board | None:
    """The board before the first tick, as the write model starts it, from the view's config."""
    raw = redis.get(keys.view(arena_id))
    if raw is None:
        return None
    config = json.loads(raw)["config"]
    return Board.empty(config["width"], config["height"], config["temperature"]["value"])
