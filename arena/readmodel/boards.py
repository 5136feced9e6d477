"""Each arena's board in the read model: its history, and the board at any tick kept in it.

`TickAdvanced` carries the tick's delta and `SnapshotTaken` the whole board (the canonical
encoding, compressed, as the write model stores it). The projection records them, under the
same generation as the views: each tick's stats and delta by tick, each snapshot by tick, so
redelivery writes the same entries again and changes nothing. It builds a board only to keep a
snapshot of its own (below); every other board is built by a reader, who may never come.

The board at tick t is the newest snapshot at or before t with the deltas after it applied (or,
before the first snapshot, the empty dish of the view's config with every delta since tick 1).
The current board is the newest the history gives that way: a missing delta stops it there
until the next snapshot, instead of letting it go wrong. Readers keep the board they built under
`Keys.board` (for `BOARD_CACHE_SECONDS`), so the next read starts from it and applies only the
ticks since.

The history is bounded in ticks and in bytes: it keeps the snapshots from a base on, and each
tick's stats and delta since that base. The base is the newest snapshot at or before the window
of the last `history_ticks` ticks, or a later one when the deltas and snapshots from there take
more than half of `history_bytes` (deltas grow with the board and with how much of it changes).
It is trimmed as each snapshot arrives, and whenever the arena's history outgrows
`history_bytes`. Whatever `snapshotEveryTicks`, at a tick that is a multiple of N =
min(`history_ticks`, OWN_SNAPSHOT_EVERY_TICKS, the ticks whose deltas fill a quarter of
`history_bytes`) there is a snapshot at most N ticks old: when the write model's are further
apart, the projection builds the board there and keeps it as a snapshot of its own (never for a
tick whose delta is missing); a trim that finds more than that quarter of deltas since the
newest snapshot makes one too. So at most `history_ticks` + 2 x min(N, `snapshotEveryTicks`)
ticks are kept, between projection batches in at most `history_bytes` or one snapshot, whichever
is more, and building a board applies at most N deltas (their cost, and the worst case in
bytes, in docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.client import Pipeline

from arena import stored_board
from arena.domain.envelope import EventEnvelope
from arena.readmodel.keys import Keys
from arena.simulation import delta
from arena.simulation.board import Board

BOARD_EVENTS = frozenset({"TickAdvanced", "SnapshotTaken"})


DEFAULT_HISTORY_TICKS = 1000
DEFAULT_HISTORY_BYTES = 16 * 1024 * 1024
TICKS_PER_READ = 10  # a history read holds this many ticks' deltas at once
OWN_SNAPSHOT_EVERY_TICKS = 100
# A reader's board outlives its generation (a rebuild drops the old one while reads finish) by
# no more than this.
BOARD_CACHE_SECONDS = 600


def follow_boards(
    redis: Redis,
    keys: Keys,
    envelopes: Sequence[EventEnvelope],
    history_ticks: int = DEFAULT_HISTORY_TICKS,
    history_bytes: int = DEFAULT_HISTORY_BYTES,
) -> None:
    """Record the board events among `envelopes` (in order per arena) in each arena's history."""
    by_arena: dict[str, list[EventEnvelope]] = {}
    for envelope in envelopes:
        if envelope.event_type in BOARD_EVENTS:
            by_arena.setdefault(envelope.aggregate_id, []).append(envelope)
    if not by_arena:
        return
    delta_bytes: dict[str, int] = {}
    with redis.pipeline(transaction=False) as pipe:
        for arena_id, events in by_arena.items():
            delta_bytes[arena_id] = _record_history(pipe, keys, arena_id, events, history_ticks)
        # In the same round trip: whether an arena's history outgrew its bytes.
        for arena_id in by_arena:
            pipe.memory_usage(keys.ticks(arena_id), samples=0)
            pipe.memory_usage(keys.snapshots(arena_id), samples=0)
        used = pipe.execute()[-2 * len(by_arena) :]
    for position, (arena_id, events) in enumerate(by_arena.items()):
        crowded = (used[2 * position] or 0) + (used[2 * position + 1] or 0) > history_bytes
        snapshot = any(e.event_type == "SnapshotTaken" for e in events)
        # N of the module's docstring, for deltas as large as this batch's largest.
        every = max(
            1,
            min(
                history_ticks,
                OWN_SNAPSHOT_EVERY_TICKS,
                history_bytes // 4 // max(delta_bytes[arena_id], 1),
            ),
        )
        if snapshot or crowded or _snapshot_of_our_own(redis, keys, arena_id, events, every):
            _trim(redis, keys, arena_id, events[-1].payload["tick"] - history_ticks, history_bytes)


def _snapshot_of_our_own(
    redis: Redis, keys: Keys, arena_id: str, events: list[EventEnvelope], every: int
) -> bool:
    """At a multiple of `every`, if no snapshot is as recent as `every` ticks ago: the current
    board, kept as a snapshot."""
    if not any(e.payload["tick"] % every == 0 for e in events):
        return False
    newest = max((int(tick) for tick in redis.hkeys(keys.snapshots(arena_id))), default=0)
    if events[-1].payload["tick"] - newest < every:
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


def _record_history(
    pipe: Pipeline, keys: Keys, arena_id: str, events: list[EventEnvelope], history_ticks: int
) -> int:
    """Idempotent: a tick's entry is the same however often its event comes. The largest
    entry's bytes."""
    largest = 0
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
        recorded = json.dumps(entry, separators=(",", ":"))
        largest = max(largest, len(recorded))
        pipe.hset(keys.ticks(arena_id), str(tick), recorded)
        stats = {"tick": tick, "at": payload["advancedAt"], "stats": payload["stats"]}
        pipe.zadd(keys.tick_stats(arena_id), {json.dumps(stats, sort_keys=True): tick})
        if tick > history_ticks:
            pipe.zremrangebyscore(keys.tick_stats(arena_id), "-inf", tick - history_ticks)
    return largest


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
