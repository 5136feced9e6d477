"""Keeping each arena's board history bounded: the writer's own snapshots, and trimming.

The writer (arena/readmodel/writer.py) records each tick's entry and each snapshot inside the
arena's compare-and-set; after it, `bound_history` keeps the history within its bounds. What it
writes is derived and the same however often it is written (a snapshot of our own is the board
at its tick), and what it deletes lies before what readers are promised, so running it twice,
or not at all after a crash (the next batch does it), changes nothing a reader can see.

The history is bounded in ticks and in bytes: it keeps the snapshots from a base on, and each
tick's stats and delta since that base. The base is the newest snapshot at or before the window
of the last `history_ticks` ticks, or a later one when the deltas and snapshots from there take
more than half of `history_bytes` (deltas grow with the board and with how much of it changes).
It is trimmed as each snapshot arrives, and whenever the arena's history outgrows
`history_bytes`. Whatever `snapshotEveryTicks`, at a tick that is a multiple of N =
min(`history_ticks`, OWN_SNAPSHOT_EVERY_TICKS, the ticks whose deltas fill a quarter of
`history_bytes`) there is a snapshot at most N ticks old: when the write model's are further
apart, the writer builds the board there and keeps it as a snapshot of its own (never for a
tick whose delta is missing); a trim that finds more than that quarter of deltas since the
newest snapshot makes one too. So at most `history_ticks` + 2 x min(N, `snapshotEveryTicks`)
ticks are kept, between projection batches in at most `history_bytes` or one snapshot, whichever
is more, and building a board applies at most N deltas (their cost, and the worst case in
bytes, in docs/benchmarks.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis import Redis

from arena import stored_board
from arena.readmodel.boards import empty_board, read_board
from arena.readmodel.keys import Keys

DEFAULT_HISTORY_TICKS = 1000
DEFAULT_HISTORY_BYTES = 16 * 1024 * 1024
OWN_SNAPSHOT_EVERY_TICKS = 100


@dataclass(frozen=True, slots=True)
class HistoryWritten:
    """What one batch recorded in an arena's history."""

    ticks: tuple[int, ...]  # of its entries and snapshots, in order
    largest_entry_bytes: int
    snapshot: bool


def bound_history(
    redis: Redis,
    keys: Keys,
    arena_id: str,
    written: HistoryWritten,
    used_bytes: int,
    history_ticks: int,
    history_bytes: int,
) -> None:
    """After a batch wrote `written` and the history takes `used_bytes`: a snapshot of our own
    if one is due, and a trim when a snapshot arrived or the history outgrew its bytes."""
    crowded = used_bytes > history_bytes
    # N of the module's docstring, for deltas as large as this batch's largest.
    every = max(
        1,
        min(
            history_ticks,
            OWN_SNAPSHOT_EVERY_TICKS,
            history_bytes // 4 // max(written.largest_entry_bytes, 1),
        ),
    )
    if (
        written.snapshot
        or crowded
        or _snapshot_of_our_own(redis, keys, arena_id, written.ticks, every)
    ):
        _trim(redis, keys, arena_id, written.ticks[-1] - history_ticks, history_bytes)


def _snapshot_of_our_own(
    redis: Redis, keys: Keys, arena_id: str, ticks: tuple[int, ...], every: int
) -> bool:
    """At a multiple of `every`, if no snapshot is as recent as `every` ticks ago: the current
    board, kept as a snapshot."""
    if not any(tick % every == 0 for tick in ticks):
        return False
    newest = max((int(tick) for tick in redis.hkeys(keys.snapshots(arena_id))), default=0)
    if ticks[-1] - newest < every:
        return False
    return _keep_board(redis, keys, arena_id, newest) is not None


def _keep_board(redis: Redis, keys: Keys, arena_id: str, newest: int) -> tuple[int, int] | None:
    """The current board kept as a snapshot (the same bytes however often it is written), if it
    is past the newest snapshot: its tick and size."""
    view = json.loads(redis.get(keys.view(arena_id)) or "null")
    if view is None:
        return None
    board = read_board(redis, keys, arena_id, empty_board(view))
    if board.tick <= newest:
        return None  # held before a missing delta: the next snapshot repairs it
    stored = stored_board.encode(board)
    redis.hset(keys.snapshots(arena_id), str(board.tick), stored)
    return board.tick, len(stored)


def _trim(redis: Redis, keys: Keys, arena_id: str, window_start: int, history_bytes: int) -> None:
    """Forget what lies before the base (`_base`): older snapshots, and deltas up to the base.
    Deltas past the newest snapshot beyond a quarter of `history_bytes` first get a snapshot of
    our own, so that what the base can leave is bounded too."""
    snapshots = _sizes(redis, keys.snapshots(arena_id))
    deltas = _sizes(redis, keys.ticks(arena_id))
    newest = max(snapshots, default=0)
    since = sum(size for tick, size in deltas.items() if tick > newest)
    if since > history_bytes // 4 and (own := _keep_board(redis, keys, arena_id, newest)):
        snapshots[own[0]] = own[1]
    base = _base(snapshots, deltas, window_start, history_bytes // 2)
    if base is None:
        return
    old_snapshots = [str(tick) for tick in snapshots if tick < base]
    old_deltas = [str(tick) for tick in deltas if tick <= base]
    with redis.pipeline(transaction=False) as pipe:
        if old_snapshots:
            pipe.hdel(keys.snapshots(arena_id), *old_snapshots)
        if old_deltas:
            pipe.hdel(keys.ticks(arena_id), *old_deltas)
        pipe.execute()


def _sizes(redis: Redis, key: str) -> dict[int, int]:
    """Each of the hash's entries (by tick) with its size in bytes."""
    ticks = redis.hkeys(key)
    with redis.pipeline(transaction=False) as pipe:
        for tick in ticks:
            pipe.hstrlen(key, tick)
        return {int(tick): size for tick, size in zip(ticks, pipe.execute(), strict=True)}


def _base(
    snapshots: dict[int, int], deltas: dict[int, int], window_start: int, budget: int
) -> int | None:
    """The oldest snapshot from which the history (it, the later snapshots, the deltas after
    it) fits `budget` bytes, but none before the newest at or before `window_start`; the newest
    snapshot if none fits; None to keep everything (or without a snapshot to keep from)."""
    ticks = sorted(snapshots)
    floor = max((tick for tick in ticks if tick <= window_start), default=None)
    kept = sum(snapshots.values()) + sum(deltas.values())
    if not ticks or (floor is None and kept <= budget):
        return None
    deltas_in_order = sorted(deltas)
    dropped = 0
    for tick in ticks:
        while dropped < len(deltas_in_order) and deltas_in_order[dropped] <= tick:
            kept -= deltas[deltas_in_order[dropped]]
            dropped += 1
        if (floor is None or tick >= floor) and kept <= budget:
            return tick
        kept -= snapshots[tick]
    return ticks[-1]
