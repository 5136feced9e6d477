"""Each arena's board in the read model, kept by the events that carry it.

`TickAdvanced` carries the tick's delta and `SnapshotTaken` the whole board; the board key holds
the board as the write model stores it (the canonical encoding, compressed), under the same
generation as the views. It follows the arena's view: the caller hands over the events it has
just applied to views (or found already applied, after a crash between the two writes), and
each is applied to the board at most once, by tick: a delta only to the board of the tick
before it, a snapshot to any board not past it. So redelivery changes nothing, and a board that
missed a delta waits for the next snapshot instead of going wrong.

Beside the board, a bounded history from which the board of each of the last `history_ticks`
ticks can be rebuilt: the snapshots since the newest one at or before that window's start (its
base), and each tick's stats and delta since that base. Both are trimmed as each snapshot
arrives, so at most `history_ticks` + 2 x `snapshotEveryTicks` ticks are kept.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from arena import stored_board
from arena.domain.envelope import EventEnvelope
from arena.readmodel.keys import Keys
from arena.simulation import delta
from arena.simulation.board import Board

log = logging.getLogger(__name__)

BOARD_EVENTS = frozenset({"TickAdvanced", "SnapshotTaken"})


DEFAULT_HISTORY_TICKS = 1000


def follow_boards(
    redis: Redis,
    keys: Keys,
    envelopes: Sequence[EventEnvelope],
    history_ticks: int = DEFAULT_HISTORY_TICKS,
) -> None:
    """Bring each arena's board and history up to the board events among `envelopes` (in order
    per arena)."""
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
        board = None if raw is None else stored_board.decode(raw)
        before = board
        for envelope in by_arena[arena_id]:
            board = _advanced(redis, keys, arena_id, board, envelope)
        if board is not None and board is not before:
            changed[arena_id] = board
    with redis.pipeline(transaction=False) as pipe:
        if changed:
            pipe.mset(
                {
                    keys.board(arena_id): stored_board.encode(board)
                    for arena_id, board in changed.items()
                }
            )
        for arena_id, events in by_arena.items():
            _record_history(pipe, keys, arena_id, events, history_ticks)
        pipe.execute()
    for arena_id, events in by_arena.items():
        if any(e.event_type == "SnapshotTaken" for e in events):
            _trim_snapshots(redis, keys, arena_id, events[-1].payload["tick"] - history_ticks)


def _record_history(
    pipe: Pipeline, keys: Keys, arena_id: str, events: list[EventEnvelope], history_ticks: int
) -> None:
    """Idempotent: a tick's entry is the same however often its event comes."""
    for envelope in events:
        payload = envelope.payload
        tick = payload["tick"]
        if envelope.event_type == "SnapshotTaken":
            pipe.hset(keys.snapshots(arena_id), str(tick), base64.b64decode(payload["board"]))
            continue
        entry = {
            "tick": tick,
            "stats": payload["stats"],
            "delta": payload["delta"],
            "advancedAt": payload["advancedAt"],
        }
        pipe.hset(keys.ticks(arena_id), str(tick), json.dumps(entry, separators=(",", ":")))
        stats = {"tick": tick, "at": payload["advancedAt"], "stats": payload["stats"]}
        pipe.zadd(keys.tick_stats(arena_id), {json.dumps(stats, sort_keys=True): tick})
        if tick > history_ticks:
            pipe.zremrangebyscore(keys.tick_stats(arena_id), "-inf", tick - history_ticks)


def _trim_snapshots(redis: Redis, keys: Keys, arena_id: str, window_start: int) -> None:
    """Forget what lies before the window's base: older snapshots, and deltas up to the base."""
    snapshots = sorted(int(tick) for tick in redis.hkeys(keys.snapshots(arena_id)))
    bases = [tick for tick in snapshots if tick <= window_start]
    if not bases:
        return
    base = bases[-1]
    old_snapshots = [str(tick) for tick in snapshots if tick < base]
    old_deltas = [tick for tick in redis.hkeys(keys.ticks(arena_id)) if int(tick) <= base]
    with redis.pipeline(transaction=False) as pipe:
        if old_snapshots:
            pipe.hdel(keys.snapshots(arena_id), *old_snapshots)
        if old_deltas:
            pipe.hdel(keys.ticks(arena_id), *old_deltas)
        pipe.execute()


def read_board(redis: Redis, keys: Keys, arena_id: str) -> Board | None:
    raw = redis.get(keys.board(arena_id))
    return None if raw is None else stored_board.decode(raw)


def _advanced(
    redis: Redis, keys: Keys, arena_id: str, board: Board | None, envelope: EventEnvelope
) -> Board | None:
    payload = envelope.payload
    tick = payload["tick"]
    if envelope.event_type == "SnapshotTaken":
        if board is not None and board.tick > tick:
            return board
        return stored_board.decode_text(payload["board"])
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
    raw = redis.get(keys.view(arena_id))
    return None if raw is None else empty_board(json.loads(raw))


def empty_board(view: dict[str, Any]) -> Board:
    """The board before the first tick, as the write model starts it, from the view's config."""
    config = view["config"]
    return Board.empty(config["width"], config["height"], config["temperature"]["value"])


# --- reading the history -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kept:
    """The ticks whose boards the history can give: `first` … `last` (the current tick)."""

    first: int
    last: int


def kept(redis: Redis, keys: Keys, arena_id: str, current: Board) -> Kept:
    deltas = sorted(int(tick) for tick in redis.hkeys(keys.ticks(arena_id)))
    snapshots = [int(tick) for tick in redis.hkeys(keys.snapshots(arena_id))]
    first_delta = deltas[0] if deltas else current.tick + 1
    bases = [tick for tick in snapshots if tick + 1 >= first_delta] + [current.tick]
    if first_delta == 1:
        bases.append(0)  # every tick since the first is kept: the empty dish is the base
    return Kept(min(bases), current.tick)


def board_at(
    redis: Redis, keys: Keys, arena_id: str, tick: int, current: Board, empty: Board
) -> Board | None:
    """The board at `tick`, from the nearest snapshot at or before it and the deltas after;
    None when the history no longer (or not yet) holds it."""
    if tick == current.tick:
        return current
    if tick > current.tick or tick < 0:
        return None
    snapshots = [int(t) for t in redis.hkeys(keys.snapshots(arena_id)) if int(t) <= tick]
    base_tick = max(snapshots, default=0)
    if base_tick == 0:
        board = empty
    else:
        raw = redis.hget(keys.snapshots(arena_id), str(base_tick))
        assert raw is not None
        board = stored_board.decode(raw)
    entries = ticks_between(redis, keys, arena_id, base_tick + 1, tick)
    if entries is None:
        return None
    for entry in entries:
        board = delta.apply(board, delta.decode(entry["delta"]))
    return board


def ticks_between(
    redis: Redis, keys: Keys, arena_id: str, first: int, last: int
) -> list[dict[str, Any]] | None:
    """Ticks `first` … `last` as recorded (stats, delta, advancedAt); None if one is missing."""
    if last < first:
        return []
    raw = redis.hmget(keys.ticks(arena_id), [str(tick) for tick in range(first, last + 1)])
    if any(entry is None for entry in raw):
        return None
    return [json.loads(entry) for entry in raw]


def recent_stats(redis: Redis, keys: Keys, arena_id: str, count: int) -> list[dict[str, Any]]:
    """The latest `count` ticks' stats, oldest first: {tick, at, stats}."""
    raw = redis.zrange(keys.tick_stats(arena_id), -count, -1)
    return [json.loads(entry) for entry in raw]
