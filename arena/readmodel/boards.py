"""Reading each arena's board from the read model: its history, and the board at any tick in it.

`TickAdvanced` carries the tick's delta and `SnapshotTaken` the whole board (the canonical
encoding, compressed, as the write model stores it). The writer records them inside the arena's
compare-and-set, under the same generation as the views: each tick's stats and delta by tick,
each snapshot by tick (arena/readmodel/history.py keeps that history bounded). Every board is
built here, by a reader, who may never come, but for the writer's own snapshots.

The board at tick t is the newest snapshot at or before t with the deltas after it applied (or,
before the first snapshot, the empty dish of the view's config with every delta since tick 1).
The current board is the newest the history gives that way: a missing delta stops it there
until the next snapshot, instead of letting it go wrong. Readers keep the board they built under
`Keys.board` (for `BOARD_CACHE_SECONDS`), so the next read starts from it and applies only the
ticks since.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis import Redis

from arena import stored_board
from arena.readmodel.keys import Keys
from arena.simulation import delta
from arena.simulation.board import Board

TICKS_PER_READ = 10  # a history read holds this many ticks' deltas at once
# A reader's board outlives its generation (a rebuild drops the old one while reads finish) by
# no more than this.
BOARD_CACHE_SECONDS = 600


def read_board(redis: Redis, keys: Keys, arena_id: str, empty: Board) -> Board:
    """The newest board the history gives (`empty`, the dish before tick 1, if it has none):
    from the reader's board or the newest snapshot, whichever is later, and the deltas since."""
    with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.board(arena_id))
        pipe.hkeys(keys.snapshots(arena_id))
        pipe.zrange(keys.tick_stats(arena_id), -1, -1, withscores=True)
        cached, snapshots, newest = pipe.execute()
    last_recorded = int(newest[0][1]) if newest else 0
    newest_snapshot = max((int(tick) for tick in snapshots), default=0)
    board = None if cached is None else stored_board.decode(cached)
    if board is None or board.tick < newest_snapshot:
        board = _snapshot(redis, keys, arena_id, newest_snapshot) or empty
    if board.tick >= last_recorded:
        return board
    start = board.tick
    recorded = redis.hmget(
        keys.ticks(arena_id), [str(t) for t in range(start + 1, last_recorded + 1)]
    )
    for entry in recorded:
        if entry is None:
            break
        board = delta.apply(board, delta.decode(json.loads(entry)["delta"]))
    if board.tick > start:
        redis.set(keys.board(arena_id), stored_board.encode(board), ex=BOARD_CACHE_SECONDS)
    return board


def _snapshot(redis: Redis, keys: Keys, arena_id: str, tick: int) -> Board | None:
    raw = None if tick == 0 else redis.hget(keys.snapshots(arena_id), str(tick))
    return None if raw is None else stored_board.decode(raw)


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
    board = empty if base_tick == 0 else _snapshot(redis, keys, arena_id, base_tick)
    if board is None:
        return None  # trimmed since its tick was listed
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


class TickTrimmed(Exception):
    """A tick present when a read began was trimmed before the read reached it."""


def recorded_ticks(
    redis: Redis, keys: Keys, arena_id: str, first: int, last: int
) -> Iterator[bytes] | None:
    """Ticks `first` … `last` as recorded (JSON text), read TICKS_PER_READ at a time as the
    caller goes, so only that many are held; None if one is missing now. The history may be
    trimmed while it is read (as a snapshot arrives, or as it outgrows its bytes): a tick
    trimmed before the read reaches it raises TickTrimmed, rather than leaving a gap."""
    ticks = [str(tick) for tick in range(first, last + 1)]
    with redis.pipeline(transaction=False) as pipe:
        for tick in ticks:
            pipe.hexists(keys.ticks(arena_id), tick)
        if not all(pipe.execute()):
            return None

    def read() -> Iterator[bytes]:
        for at in range(0, len(ticks), TICKS_PER_READ):
            for entry in redis.hmget(keys.ticks(arena_id), ticks[at : at + TICKS_PER_READ]):
                if entry is None:
                    raise TickTrimmed(f"arena {arena_id}: a tick of {first} to {last} was trimmed")
                yield entry

    return read()


def recent_stats(redis: Redis, keys: Keys, arena_id: str, count: int) -> list[dict[str, Any]]:
    """The latest `count` ticks' stats, oldest first: {tick, at, stats}."""
    raw = redis.zrange(keys.tick_stats(arena_id), -count, -1)
    return [json.loads(entry) for entry in raw]
