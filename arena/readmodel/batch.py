"""Applying many events to the read model in three Redis round trips, whatever their number.

A projection task carries the events of many arenas. Applying them one optimistic transaction at
a time (WATCH, GET, MULTI, EXEC) cost a handful of round trips per event; here the batch costs
three: read the generation pointers, read every arena's view and stall marker, then one pipeline
of compare-and-set scripts, one per arena, each writing the arena's new view with its indexes and
feed lines only if the view is still at the version read (and not stalled). The invariants are
those of `ArenaViews.apply`: versions apply in order and at most once, a gap waits, a stalled
arena's events are parked (that rare path goes through `ArenaViews.apply` itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent
from arena.readmodel.boards import follow_boards
from arena.readmodel.keys import Keys
from arena.readmodel.projector import View, feed_entry, project
from arena.readmodel.store import (
    FEED_LENGTH,
    ArenaViews,
    EventOutOfOrder,
    Outcome,
    canonical_name,
    dump,
    epoch,
    load,
)

# KEYS: view, stall, by-created, by-status before, by-status after, names, feed, notify channel
# ARGV: expected version (0: no view yet), new view, created score, arena id, name member,
#       feed length, new version, feed entries oldest first
_COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
local version = 0
if current then version = cjson.decode(current)['version'] end
if version ~= tonumber(ARGV[1]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if KEYS[4] ~= KEYS[5] then redis.call('ZREM', KEYS[4], ARGV[4]) end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[6], 0, ARGV[5])
for i = 8, #ARGV do redis.call('LPUSH', KEYS[7], ARGV[i]) end
redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[6]) - 1)
redis.call('PUBLISH', KEYS[8], ARGV[4] .. ' ' .. ARGV[7])
return 1
"""
_SCRIPT_SHA = hashlib.sha1(_COMPARE_AND_SET.encode()).hexdigest()
_CHANGED, _WRITTEN, _STALLED = 0, 1, 2

# One entry per input event: its outcome; `EventOutOfOrder` when it must wait for an earlier
# version (so must every later event of its arena); a `PoisonEvent` when the projection rejects
# it; None for the later events of an arena whose earlier event was rejected, which the
# caller handles one by one after dead-lettering.
Result = Outcome | EventOutOfOrder | PoisonEvent | None


@dataclass(slots=True)
class _Plan:
    """What one arena's events do to its view, as computed from the view read."""

    indexes: list[int]
    before: View | None
    view: View | None = None
    feed: list[str] = field(default_factory=list)
    results: dict[int, Result] = field(default_factory=dict)


def apply_many(
    views: ArenaViews, envelopes: Sequence[EventEnvelope], *, generation: str | None = None
) -> list[Result]:
    """Apply `envelopes` (in order per arena) to `generation`, or to the live one and any
    generation a rebuild is filling; return one result per envelope."""
    if generation is None:
        live, building = views.pointers()
        results = _apply_to(views, views.keys(live), envelopes)
        if building is not None and building != live:
            shown = [e for e, r in zip(envelopes, results, strict=True) if _shown(r)]
            _apply_to(views, views.keys(building), shown)  # what must wait is left to the rebuild
        return results
    return _apply_to(views, views.keys(generation), envelopes)


def _shown(result: Result) -> bool:
    return result is Outcome.APPLIED or result is Outcome.DUPLICATE


def _apply_to(views: ArenaViews, keys: Keys, envelopes: Sequence[EventEnvelope]) -> list[Result]:
    results: list[Result] = [None] * len(envelopes)
    by_arena: dict[str, list[int]] = {}
    for index, envelope in enumerate(envelopes):
        by_arena.setdefault(envelope.aggregate_id, []).append(index)
    redis = views.redis
    pending = list(by_arena)
    while pending:
        raw = redis.mget([k for arena in pending for k in (keys.view(arena), keys.stall(arena))])
        plans: dict[str, _Plan] = {}
        for position, arena_id in enumerate(pending):
            indexes = by_arena[arena_id]
            if raw[2 * position + 1] is not None:  # stalled: park (or skip) one at a time
                for index in indexes:
                    results[index] = _apply_one(views, keys, envelopes[index])
                continue
            plans[arena_id] = _plan(load(raw[2 * position]), indexes, envelopes)
        written = [arena_id for arena_id, plan in plans.items() if plan.view is not None]
        replies = _run_scripts(redis, keys, [plans[a] for a in written], written)
        pending = []
        for arena_id, plan in plans.items():
            reply = replies.get(arena_id, _WRITTEN)
            if reply == _CHANGED:
                pending.append(arena_id)  # another writer got there first: read and plan again
            elif reply == _STALLED:
                for index in plan.indexes:
                    results[index] = _apply_one(views, keys, envelopes[index])
            else:
                for index, result in plan.results.items():
                    results[index] = result
    shown = [
        envelope for envelope, result in zip(envelopes, results, strict=True) if _shown(result)
    ]
    # The boards follow the views (arena/readmodel/boards.py).
    follow_boards(redis, keys, shown, views.history_ticks, views.history_bytes)
    return results


def _plan(before: View | None, indexes: list[int], envelopes: Sequence[EventEnvelope]) -> _Plan:
    plan = _Plan(indexes, before)
    view = before
    version = before["version"] if before else 0
    for position, index in enumerate(indexes):
        envelope = envelopes[index]
        if envelope.aggregate_version <= version:
            plan.results[index] = Outcome.DUPLICATE
            continue
        if envelope.aggregate_version != version + 1:
            waiting = EventOutOfOrder(
                f"version {envelope.aggregate_version} must wait: the view is at version {version}"
            )
            for later in indexes[position:]:
                plan.results[later] = waiting
            break
        try:
            view = project(view, envelope)
        except PoisonEvent as rejected:
            plan.results[index] = rejected
            for later in indexes[position + 1 :]:
                plan.results[later] = None
            break
        version = envelope.aggregate_version
        plan.feed.append(dump(feed_entry(envelope)))
        plan.results[index] = Outcome.APPLIED
    if plan.feed:
        plan.view = view
    return plan


def _run_scripts(
    redis: Redis, keys: Keys, plans: list[_Plan], arena_ids: list[str]
) -> dict[str, int]:
    """Run the writes in one round trip; load the script first if the server does not have it
    (a script that did not run wrote nothing, so running them all again is safe)."""
    if not plans:
        return {}
    with redis.pipeline(transaction=False) as pipe:
        for arena_id, plan in zip(arena_ids, plans, strict=True):
            _queue_write(pipe, keys, arena_id, plan)
        replies = pipe.execute(raise_on_error=False)
    if any(isinstance(reply, NoScriptError) for reply in replies):
        redis.script_load(_COMPARE_AND_SET)
        return _run_scripts(redis, keys, plans, arena_ids)
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return dict(zip(arena_ids, (int(reply) for reply in replies), strict=True))


def _queue_write(pipe: Pipeline, keys: Keys, arena_id: str, plan: _Plan) -> None:
    view = plan.view
    assert view is not None
    before_status = plan.before["status"] if plan.before else view["status"]
    pipe.evalsha(
        _SCRIPT_SHA,
        8,
        keys.view(arena_id),
        keys.stall(arena_id),
        keys.by_created,
        keys.by_status(before_status),
        keys.by_status(view["status"]),
        keys.names,
        keys.feed(arena_id),
        keys.applied_channel,
        plan.before["version"] if plan.before else 0,
        dump(view),
        epoch(view["createdAt"]),
        arena_id,
        canonical_name(view["name"], arena_id),
        FEED_LENGTH,
        view["version"],
        *plan.feed,
    )


def _apply_one(views: ArenaViews, keys: Keys, envelope: EventEnvelope) -> Result:
    try:
        return views.apply(envelope, generation=keys.generation)
    except (EventOutOfOrder, PoisonEvent) as error:
        return error
