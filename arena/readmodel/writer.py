"""The read model's one writer: every event reaches Redis through `apply_events`.

Live projection tasks, the one-at-a-time path behind a rejected event, `flask dlq replay` and
`flask projections rebuild` all call it; so does the generation a rebuild is filling, which it
also writes while live events arrive. Invariants, per arena and generation:

- Versions apply in order and at most once: a version already applied is a no-op
  (`Outcome.DUPLICATE`), a gap waits (`EventOutOfOrder`, the caller retries), an event the
  projection rejects is returned as its `PoisonEvent`, and its arena's later events are left to
  the caller (None), who dead-letters it and stalls the arena.
- A stalled arena's later events are parked behind the dead-lettered one, never applied past it,
  until `flask dlq replay` applies them with `replaying`.

How, in four round trips whatever the batch: read the generation pointers; read every arena's
view and stall marker; project each arena's events in Python (arena/readmodel/projection.py);
then one compare-and-set script per arena, all in one pipeline. A script names only its arena's
keys (one hash slot, `{arena id}`): it writes the view, the feed lines and the board history if
the view is still the one read (its SHA-1) and the arena is not stalled, or parks the events if
it is; otherwise nothing, and the arena is read and planned again.

The indexes across arenas (by creation, by status, names, the stalled set) and the wake-up
notice cannot go in a one-slot script. They are written after the arena's own write, from the
view it wrote, and they converge: by creation and names never change for an arena, so a late or
repeated write is harmless; the status index is rewritten whole (added to the view's status,
removed from every other) and then the views are read back: a view that moved on meanwhile is
indexed again from what it is now. A crash between the two writes leaves the task unacknowledged;
its redelivery finds the events applied (duplicates) and rewrites the arena's indexes, so a
status index is never left behind for good. A lost notice costs a waiting reader latency only.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent
from arena.domain.model import ArenaStatus
from arena.readmodel.history import HistoryWritten, bound_history
from arena.readmodel.keys import Keys
from arena.readmodel.projection import Change, SnapshotRecord, TickRecord, project
from arena.readmodel.store import FEED_LENGTH, ArenaViews, Stall, canonical_name
from arena.readmodel.view import ArenaView


class EventOutOfOrder(Exception):
    """The event's predecessor has not been applied yet; retry later."""


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"


# One per input event: its outcome; `EventOutOfOrder` when it must wait for an earlier version
# (so must every later event of its arena); the `PoisonEvent` the projection rejected it with;
# None for the later events of an arena whose earlier event was rejected.
EventResult = Outcome | EventOutOfOrder | PoisonEvent | None


# --- the scripts: each names only the keys of one arena --------------------------------------


@dataclass(frozen=True, slots=True)
class Script:
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


_CHANGED, _WRITTEN = 0, 1

# KEYS: view, stall, feed, ticks, tick-stats, snapshots.
# ARGV: 1 the SHA-1 of the view as read ('' for none); 2 'replay' to write past a stall;
#       3 the new view; 4 feed length; 5 tick-stats kept from this tick on (0: all);
#       6, 7, 8 counts of feed lines, of ticks, of snapshots; then the feed lines, oldest
#       first; then (tick, entry, stats line) per tick; then (tick, board) per snapshot.
APPLY = Script("""
local current = redis.call('GET', KEYS[1])
if (current and redis.sha1hex(current) or '') ~= ARGV[1] then return 0 end
if ARGV[2] ~= 'replay' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
local at = 9
for _ = 1, tonumber(ARGV[6]) do redis.call('LPUSH', KEYS[3], ARGV[at]); at = at + 1 end
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
for _ = 1, tonumber(ARGV[7]) do
  redis.call('HSET', KEYS[4], ARGV[at], ARGV[at + 1])
  redis.call('ZADD', KEYS[5], ARGV[at], ARGV[at + 2])
  at = at + 3
end
if tonumber(ARGV[5]) > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[5]) end
for _ = 1, tonumber(ARGV[8]) do redis.call('HSET', KEYS[6], ARGV[at], ARGV[at + 1]); at = at + 2 end
return 1
""")

# KEYS: view, stall, parked. ARGV: the SHA-1 of the view as read, then (version, event) pairs.
PARK = Script("""
local current = redis.call('GET', KEYS[1])
if (current and redis.sha1hex(current) or '') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
for at = 2, #ARGV, 2 do redis.call('ZADD', KEYS[3], ARGV[at], ARGV[at + 1]) end
return 1
""")

# KEYS: view, stall, parked. ARGV: the SHA-1 of the view as read, the stall marker as read
# ('' for none), the new marker, the event's version, the event.
STALL = Script("""
local current = redis.call('GET', KEYS[1])
if (current and redis.sha1hex(current) or '') ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
return 1
""")

# KEYS: parked, stall. Lifts the stall unless an event was parked meanwhile.
UNSTALL = Script("""
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[2])
return 1
""")

SCRIPTS = (APPLY, PARK, STALL, UNSTALL)


def script_keys(script: Script, keys: Keys, arena_id: str) -> list[str]:
    """The keys a script is given for an arena (all in its hash slot: a test checks)."""
    if script is APPLY:
        return [
            keys.view(arena_id),
            keys.stall(arena_id),
            keys.feed(arena_id),
            keys.ticks(arena_id),
            keys.tick_stats(arena_id),
            keys.snapshots(arena_id),
        ]
    if script is UNSTALL:
        return [keys.parked(arena_id), keys.stall(arena_id)]
    return [keys.view(arena_id), keys.stall(arena_id), keys.parked(arena_id)]


@dataclass(frozen=True, slots=True)
class _Call:
    script: Script
    keys: list[str]
    args: list[str | bytes | int]


def _run(redis: Redis, calls: Sequence[_Call]) -> list[int]:
    """Run the calls in one round trip; load the scripts first if the server lacks one (a
    script that did not run wrote nothing, so running them all again is safe)."""
    if not calls:
        return []
    with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
        replies = pipe.execute(raise_on_error=False)
    if any(isinstance(reply, NoScriptError) for reply in replies):
        for script in {call.script for call in calls}:
            redis.script_load(script.source)
        return _run(redis, calls)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [int(reply) for reply in replies]


# --- applying events -----------------------------------------------------------------------


def apply_events(
    views: ArenaViews,
    envelopes: Sequence[EventEnvelope],
    *,
    generation: str | None = None,
    replaying: bool = False,
) -> list[EventResult]:
    """Apply `envelopes` (in order per arena) to `generation`; by default to the live one and to
    any a rebuild is filling (what must wait there is left to the rebuild). One result per
    envelope. `replaying` applies past a stall (`flask dlq replay`)."""
    if generation is not None:
        return _apply_to(views, views.keys(generation), envelopes, replaying)
    live, building = views.pointers()
    results = _apply_to(views, views.keys(live), envelopes, replaying)
    if building is not None and building != live:
        shown = [e for e, r in zip(envelopes, results, strict=True) if _shown(r)]
        _apply_to(views, views.keys(building), shown, replaying)
    return results


def apply_event(
    views: ArenaViews,
    envelope: EventEnvelope,
    *,
    generation: str | None = None,
    replaying: bool = False,
) -> Outcome:
    """`apply_events` for one event; raises its `PoisonEvent`, or `EventOutOfOrder`."""
    [result] = apply_events(views, [envelope], generation=generation, replaying=replaying)
    if isinstance(result, Exception):
        raise result
    assert result is not None  # None stands only for an event after a rejected one
    return result


def _shown(result: EventResult) -> bool:
    return result is Outcome.APPLIED or result is Outcome.DUPLICATE


@dataclass(slots=True)
class _Plan:
    """What one arena's events do, as computed from its view as read."""

    arena_id: str
    indexes: list[int]
    raw_before: bytes | None
    before: ArenaView | None
    replaying: bool
    view_text: str = ""  # the new view as the script writes it
    changes: list[Change] = field(default_factory=list)
    parked: list[tuple[int, str]] = field(default_factory=list)
    results: dict[int, EventResult] = field(default_factory=dict)

    @property
    def expected(self) -> str:
        return _sha1(self.raw_before)

    @property
    def after(self) -> ArenaView | None:
        return self.changes[-1].view if self.changes else self.before


def _apply_to(
    views: ArenaViews, keys: Keys, envelopes: Sequence[EventEnvelope], replaying: bool
) -> list[EventResult]:
    results: list[EventResult] = [None] * len(envelopes)
    by_arena: dict[str, list[int]] = {}
    for index, envelope in enumerate(envelopes):
        by_arena.setdefault(envelope.aggregate_id, []).append(index)
    redis = views.redis
    done: list[_Plan] = []
    pending = list(by_arena)
    while pending:
        raw = redis.mget([k for arena in pending for k in (keys.view(arena), keys.stall(arena))])
        plans = [
            _plan(arena_id, by_arena[arena_id], raw[2 * at], raw[2 * at + 1], envelopes, replaying)
            for at, arena_id in enumerate(pending)
        ]
        writing = [plan for plan in plans if plan.changes or plan.parked]
        replies = _run(redis, [_call(keys, plan, views.history_ticks) for plan in writing])
        changed = {plan.arena_id for plan, reply in zip(writing, replies, strict=True) if not reply}
        pending = [plan.arena_id for plan in plans if plan.arena_id in changed]
        done.extend(plan for plan in plans if plan.arena_id not in changed)
    for plan in done:
        for index, result in plan.results.items():
            results[index] = result
    _index(views, keys, done)
    return results


def _plan(
    arena_id: str,
    indexes: list[int],
    raw_view: bytes | None,
    stall: bytes | None,
    envelopes: Sequence[EventEnvelope],
    replaying: bool,
) -> _Plan:
    before = None if raw_view is None else ArenaView.loads(raw_view)
    plan = _Plan(arena_id, indexes, raw_view, before, replaying)
    view = before
    version = before.version if before else 0
    for position, index in enumerate(indexes):
        envelope = envelopes[index]
        if envelope.aggregate_version <= version:
            plan.results[index] = Outcome.DUPLICATE
        elif stall is not None and not replaying:
            plan.parked.append((envelope.aggregate_version, _canonical(envelope)))
            plan.results[index] = Outcome.PARKED
        elif envelope.aggregate_version != version + 1:
            waiting = EventOutOfOrder(
                f"version {envelope.aggregate_version} must wait: the view is at version {version}"
            )
            for later in indexes[position:]:
                plan.results[later] = waiting
            break
        else:
            try:
                change = project(view, envelope)
            except PoisonEvent as rejected:
                plan.results[index] = rejected
                for later in indexes[position + 1 :]:
                    plan.results[later] = None
                break
            plan.changes.append(change)
            view, version = change.view, envelope.aggregate_version
            plan.results[index] = Outcome.APPLIED
    return plan


def _call(keys: Keys, plan: _Plan, history_ticks: int) -> _Call:
    if plan.parked:
        pairs = [item for version, event in plan.parked for item in (version, event)]
        return _Call(PARK, script_keys(PARK, keys, plan.arena_id), [plan.expected, *pairs])
    view = plan.after
    assert view is not None
    plan.view_text = view.dumps()
    ticks = [c.history for c in plan.changes if isinstance(c.history, TickRecord)]
    snapshots = [c.history for c in plan.changes if isinstance(c.history, SnapshotRecord)]
    newest_tick = max((tick.tick for tick in ticks), default=0)
    return _Call(
        APPLY,
        script_keys(APPLY, keys, plan.arena_id),
        [
            plan.expected,
            "replay" if plan.replaying else "",
            plan.view_text,
            FEED_LENGTH,
            max(newest_tick - history_ticks + 1, 0),
            len(plan.changes),
            len(ticks),
            len(snapshots),
            *(change.feed_line for change in plan.changes),
            *(item for t in ticks for item in (t.tick, t.entry, t.stats_line)),
            *(item for s in snapshots for item in (s.tick, s.board)),
        ],
    )


# --- the indexes across arenas, written after the arenas' own writes ---------------------------


def _index(views: ArenaViews, keys: Keys, plans: Sequence[_Plan]) -> None:
    """Index what the plans wrote, notify waiting readers, keep board histories bounded."""
    redis = views.redis
    reindex: dict[str, bytes] = {}  # arena id → the view text its indexes must show
    with redis.pipeline(transaction=False) as pipe:
        for plan in plans:
            after = plan.after
            if after is None or not any(map(_shown, plan.results.values())):
                continue
            duplicates = Outcome.DUPLICATE in plan.results.values()
            if plan.before is None or duplicates or plan.before.status != after.status:
                _queue_indexes(pipe, keys, after)
                reindex[plan.arena_id] = (
                    plan.view_text.encode() if plan.changes else plan.raw_before or b""
                )
            if plan.changes:
                pipe.publish(keys.applied_channel, f"{plan.arena_id} {after.version}")
        histories = {plan.arena_id: written for plan in plans if (written := _history(plan))}
        for arena_id in histories:
            pipe.memory_usage(keys.ticks(arena_id), samples=0)
            pipe.memory_usage(keys.snapshots(arena_id), samples=0)
        replies = pipe.execute()
    used = replies[len(replies) - 2 * len(histories) :]
    _index_until_settled(redis, keys, reindex)
    for at, (arena_id, written) in enumerate(histories.items()):
        used_bytes = (used[2 * at] or 0) + (used[2 * at + 1] or 0)
        bound_history(
            redis, keys, arena_id, written, used_bytes, views.history_ticks, views.history_bytes
        )


def _queue_indexes(pipe: Pipeline, keys: Keys, view: ArenaView) -> None:
    created = datetime.fromisoformat(view.created_at).timestamp()
    pipe.zadd(keys.by_created, {view.id: created})
    pipe.zadd(keys.names, {canonical_name(view.name, view.id): 0})
    pipe.zadd(keys.by_status(view.status), {view.id: created})
    for status in ArenaStatus:
        if status != view.status:
            pipe.zrem(keys.by_status(status), view.id)


def _index_until_settled(redis: Redis, keys: Keys, indexed: dict[str, bytes]) -> None:
    """Read the indexed views back; index again any that another writer moved on meanwhile
    (its own index write may have landed before ours), until none has."""
    while indexed:
        ids = list(indexed)
        now = redis.mget([keys.view(arena_id) for arena_id in ids])
        moved = {
            arena_id: raw
            for arena_id, raw in zip(ids, now, strict=True)
            if raw is not None and raw != indexed[arena_id]
        }
        if moved:
            with redis.pipeline(transaction=False) as pipe:
                for raw in moved.values():
                    _queue_indexes(pipe, keys, ArenaView.loads(raw))
                pipe.execute()
        indexed = moved


def _history(plan: _Plan) -> HistoryWritten | None:
    records = [change.history for change in plan.changes if change.history is not None]
    if not records:
        return None
    entries = [len(r.entry) for r in records if isinstance(r, TickRecord)]
    return HistoryWritten(
        ticks=tuple(record.tick for record in records),
        largest_entry_bytes=max(entries, default=0),
        snapshot=any(isinstance(record, SnapshotRecord) for record in records),
    )


# --- stalls ------------------------------------------------------------------------------------


def stall(
    views: ArenaViews,
    arena_id: str,
    *,
    version: int | None,
    raw_event: str,
    reason: str,
    generation: str | None = None,
) -> Stall:
    """Hold the arena behind a dead-lettered event, which is parked first in its queue.

    `version` is None when the event could not even be parsed: the next expected version. A
    repeated stall keeps the earliest version and the first time.
    """
    keys = views.keys(generation)
    redis = views.redis
    while True:
        raw_view, raw_stall = redis.mget([keys.view(arena_id), keys.stall(arena_id)])
        existing = None if raw_stall is None else json.loads(raw_stall)
        at = version or (ArenaView.loads(raw_view).version + 1 if raw_view else 1)
        if existing is not None:
            at = min(at, existing["stalledAtVersion"])
        since = existing["since"] if existing else datetime.now(UTC).isoformat()
        record = {"stalledAtVersion": at, "reason": reason, "since": since}
        [written] = _run(
            redis,
            [
                _Call(
                    STALL,
                    script_keys(STALL, keys, arena_id),
                    [
                        _sha1(raw_view),
                        raw_stall or "",
                        json.dumps(record, separators=(",", ":")),
                        at if version is None else version,
                        raw_event,
                    ],
                )
            ],
        )
        if written:
            redis.sadd(keys.stalled, arena_id)  # the stalled set across arenas: after, as above
            return Stall(arena_id, at, reason, since)


def unstall_if_nothing_parked(
    views: ArenaViews, arena_id: str, generation: str | None = None
) -> bool:
    """Lift the stall, unless an event was parked meanwhile (then the caller replays it)."""
    keys = views.keys(generation)
    [lifted] = _run(views.redis, [_Call(UNSTALL, script_keys(UNSTALL, keys, arena_id), [])])
    if lifted:
        views.redis.srem(keys.stalled, arena_id)
    return bool(lifted)


def unpark(views: ArenaViews, arena_id: str, raw_event: str, generation: str | None = None) -> None:
    views.redis.zrem(views.keys(generation).parked(arena_id), raw_event)


def _sha1(raw: bytes | None) -> str:
    return "" if raw is None else hashlib.sha1(raw).hexdigest()


def _canonical(envelope: EventEnvelope) -> str:
    return json.dumps(envelope.to_dict(), sort_keys=True, separators=(",", ":"))
