"""Arena views in Redis, applied in aggregate-version order and at most once.

Each apply is one optimistic Redis transaction (WATCH the arena's view and stall keys, MULTI,
EXEC): a version already applied is a no-op, the next version is applied together with its
indexes and feed line, a later one raises `EventOutOfOrder` (the caller retries), and an arena
that is stalled behind a dead-lettered event parks its later events instead of applying them.
"""

from __future__ import annotations

import contextlib
import enum
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError

from arena.domain.envelope import EventEnvelope
from arena.readmodel.boards import DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_TICKS, follow_boards
from arena.readmodel.keys import (
    INITIAL_GENERATION,
    Keys,
    building_pointer,
    generation_pointer,
)
from arena.readmodel.projector import View, feed_entry, project

FEED_LENGTH = 50
NOTICE_WAIT_SECONDS = 0.5  # a waiting read looks at the view at least this often
NAME_SEPARATOR = "\x1f"
_GLOB_SPECIALS = str.maketrans({char: f"\\{char}" for char in "*?[]\\"})


class EventOutOfOrder(Exception):
    """The event's predecessor has not been applied yet; retry later."""


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"


@dataclass(frozen=True, slots=True)
class Stall:
    """An arena whose events wait behind a dead-lettered one."""

    arena_id: str
    stalled_at_version: int
    reason: str
    since: str


class ArenaViews:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        max_waiters: int = 4,
        history_ticks: int = DEFAULT_HISTORY_TICKS,
        history_bytes: int = DEFAULT_HISTORY_BYTES,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._waiters = threading.BoundedSemaphore(max_waiters)
        self.history_ticks = history_ticks  # ticks of board history kept per arena
        self.history_bytes = history_bytes  # and the bytes they may take

    @property
    def redis(self) -> Redis:
        return self._redis

    # --- generations --------------------------------------------------------------------------

    def pointers(self) -> tuple[str, str | None]:
        """The generation readers use and the one a rebuild is filling (if any), in one read."""
        live, building = self._redis.mget(
            [generation_pointer(self._prefix), building_pointer(self._prefix)]
        )
        return (live.decode() if live else INITIAL_GENERATION), (
            building.decode() if building else None
        )

    def generation(self) -> str:
        current = self._redis.get(generation_pointer(self._prefix))
        return current.decode() if current else INITIAL_GENERATION

    def keys(self, generation: str | None = None) -> Keys:
        return Keys(self._prefix, generation or self.generation())

    def start_building(self, generation: str) -> None:
        """From now on live projections also write to `generation` (`also_apply_to_building`)."""
        self._redis.set(building_pointer(self._prefix), generation)

    def stop_building(self) -> None:
        self._redis.delete(building_pointer(self._prefix))

    def also_apply_to_building(self, envelope: EventEnvelope) -> None:
        """Apply a live event to the generation a rebuild is filling, if it can go in yet.

        Readers must never see less after the switch than before it: events that live
        projections showed in the old generation must be in the new one too. An event whose
        predecessor the rebuild has not replayed yet is left to the rebuild, which will.
        """
        raw = self._redis.get(building_pointer(self._prefix))
        building = raw.decode() if raw else None
        if building is None or building == self.generation():
            return
        with contextlib.suppress(EventOutOfOrder):
            self.apply(envelope, generation=building)

    def switch_to(self, generation: str) -> str:
        """Point readers (and projection tasks) at `generation`; return the previous one."""
        previous = self._redis.getset(generation_pointer(self._prefix), generation)
        return previous.decode() if previous else INITIAL_GENERATION

    def drop(self, generation: str) -> int:
        """Delete every key of a generation (UNLINK frees memory in the background)."""
        dropped = 0
        batch: list[bytes] = []
        for key in self._redis.scan_iter(
            match=f"{Keys(self._prefix, generation).base}:*", count=1000
        ):
            batch.append(key)
            if len(batch) == 1000:
                dropped += self._redis.unlink(*batch)
                batch.clear()
        if batch:
            dropped += self._redis.unlink(*batch)
        return dropped

    # --- writing ------------------------------------------------------------------------------

    def apply(
        self, envelope: EventEnvelope, *, generation: str | None = None, replaying: bool = False
    ) -> Outcome:
        """Apply the next event of its arena; `replaying` lets parked events past the stall.
        The arena's board history follows the view (arena/readmodel/boards.py)."""
        keys = self.keys(generation)
        outcome = self._apply_to_view(envelope, keys, replaying)
        if outcome is not Outcome.PARKED:
            follow_boards(self._redis, keys, [envelope], self.history_ticks, self.history_bytes)
        return outcome

    def _apply_to_view(self, envelope: EventEnvelope, keys: Keys, replaying: bool) -> Outcome:
        arena_id = envelope.aggregate_id
        view_key, stall_key = keys.view(arena_id), keys.stall(arena_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(view_key, stall_key)
                    current = load(pipe.get(view_key))
                    applied_version = current["version"] if current else 0
                    if envelope.aggregate_version <= applied_version:
                        return Outcome.DUPLICATE
                    if pipe.exists(stall_key) and not replaying:
                        pipe.multi()
                        pipe.zadd(keys.parked(arena_id), {_canonical(envelope): _score(envelope)})
                        pipe.execute()
                        return Outcome.PARKED
                    if envelope.aggregate_version != applied_version + 1:
                        raise EventOutOfOrder(
                            f"version {envelope.aggregate_version} must wait: the view is at "
                            f"version {applied_version}"
                        )
                    view = project(current, envelope)
                    pipe.multi()
                    _write_view(pipe, keys, current, view, envelope)
                    pipe.execute()
                    return Outcome.APPLIED
                except WatchError:
                    continue  # another worker changed this arena meanwhile: look again

    def stall(
        self,
        arena_id: str,
        *,
        version: int | None,
        raw_event: str,
        reason: str,
        generation: str | None = None,
    ) -> Stall:
        """Hold the arena behind a dead-lettered event, which is parked first in its queue.

        `version` is None when the event could not even be parsed: the next expected version.
        """
        keys = self.keys(generation)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(keys.stall(arena_id), keys.view(arena_id))
                    existing = load(pipe.get(keys.stall(arena_id)))
                    current = load(pipe.get(keys.view(arena_id)))
                    at = version or (current["version"] + 1 if current else 1)
                    if existing is not None:
                        at = min(at, existing["stalledAtVersion"])
                    since = existing["since"] if existing else datetime.now(UTC).isoformat()
                    record = {"stalledAtVersion": at, "reason": reason, "since": since}
                    pipe.multi()
                    pipe.set(keys.stall(arena_id), dump(record))
                    pipe.sadd(keys.stalled, arena_id)
                    pipe.zadd(
                        keys.parked(arena_id), {raw_event: at if version is None else version}
                    )
                    pipe.execute()
                    return Stall(arena_id, at, reason, since)
                except WatchError:
                    continue

    def unstall_if_nothing_parked(self, arena_id: str, generation: str | None = None) -> bool:
        """Lift the stall, unless an event was parked meanwhile (then the caller replays it)."""
        keys = self.keys(generation)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(keys.parked(arena_id), keys.stall(arena_id))
                    if pipe.zcard(keys.parked(arena_id)):
                        pipe.unwatch()
                        return False
                    pipe.multi()
                    pipe.delete(keys.stall(arena_id))
                    pipe.srem(keys.stalled, arena_id)
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def unpark(self, arena_id: str, raw_event: str, generation: str | None = None) -> None:
        self._redis.zrem(self.keys(generation).parked(arena_id), raw_event)

    # --- reading ------------------------------------------------------------------------------

    def get(self, arena_id: str) -> View | None:
        keys = self.keys()
        raw_view, raw_stall = self._redis.mget([keys.view(arena_id), keys.stall(arena_id)])
        return _merged(load(raw_view), load(raw_stall))

    def get_many(self, arena_ids: list[str]) -> dict[str, View]:
        """Views by arena id (absent ids are left out), in one round trip."""
        views = self._views(self.keys(), arena_ids)
        return {view["id"]: view for view in views}

    def wait_for(self, arena_id: str, min_version: int, timeout_seconds: float) -> View | None:
        """The view once it reaches `min_version`, woken by the projection's notice, until the
        timeout; else the latest. Only `max_waiters` requests wait at once: a waiting read holds
        a server thread, and commands must always find one, so the rest answer at once."""
        view = self.get(arena_id)
        if _reached(view, min_version) or not self._waiters.acquire(blocking=False):
            return view
        try:
            return self._await(arena_id, min_version, time.monotonic() + timeout_seconds)
        finally:
            self._waiters.release()

    def _await(self, arena_id: str, min_version: int, deadline: float) -> View | None:
        with self._redis.pubsub(ignore_subscribe_messages=True) as notices:
            notices.subscribe(self.keys().applied_channel)
            view = self.get(arena_id)  # subscribed first, so no notice is missed after this
            while not _reached(view, min_version):
                left = deadline - time.monotonic()
                if left <= 0:
                    return view
                notice = notices.get_message(timeout=min(left, NOTICE_WAIT_SECONDS))
                if notice is None or notice["data"].split(b" ", 1)[0] == arena_id.encode():
                    view = self.get(arena_id)  # no notice for a while: look anyway
            return view

    def page(
        self, *, limit: int, offset: int, status: str | None = None, query: str | None = None
    ) -> tuple[list[View], int]:
        """A page of views, newest first, optionally by status and name; and the total."""
        keys = self.keys()
        index = keys.by_status(status) if status else keys.by_created
        if query:
            matching = self._ids_named_like(keys, query)
            ordered = [i.decode() for i in self._redis.zrevrange(index, 0, -1)]
            ids = [arena_id for arena_id in ordered if arena_id in matching]
            total, ids = len(ids), ids[offset : offset + limit]
        else:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrevrange(index, offset, offset + limit - 1)
                pipe.zcard(index)
                raw_ids, total = pipe.execute()
            ids = [arena_id.decode() for arena_id in raw_ids]
        return self._views(keys, ids), total

    def feed(self, arena_id: str, limit: int) -> list[dict[str, Any]]:
        raw = self._redis.lrange(self.keys().feed(arena_id), 0, limit - 1)
        return [json.loads(entry) for entry in raw]

    def feed_after(self, arena_id: str, version: int) -> list[dict[str, Any]] | None:
        """The feed's entries past `version`, oldest first; None if it no longer reaches back to
        the one right after (only the last FEED_LENGTH are kept)."""
        newest_first = self._redis.lrange(self.keys().feed(arena_id), 0, -1)
        entries: list[dict[str, Any]] = []
        for raw in newest_first:
            entry = json.loads(raw)
            if entry["version"] <= version:
                break
            entries.append(entry)
        entries.reverse()
        if entries and entries[0]["version"] != version + 1:
            return None
        return entries

    def stalls(self, generation: str | None = None) -> list[Stall]:
        keys = self.keys(generation)
        arena_ids = sorted(member.decode() for member in self._redis.smembers(keys.stalled))
        raw = (
            self._redis.mget([keys.stall(arena_id) for arena_id in arena_ids]) if arena_ids else []
        )
        return [
            Stall(arena_id, record["stalledAtVersion"], record["reason"], record["since"])
            for arena_id, record in zip(arena_ids, map(load, raw), strict=True)
            if record is not None
        ]

    def parked(self, arena_id: str, generation: str | None = None) -> list[tuple[str, int]]:
        """Parked raw events of an arena, in version order."""
        entries = self._redis.zrange(self.keys(generation).parked(arena_id), 0, -1, withscores=True)
        return [(raw.decode(), int(score)) for raw, score in entries]

    def _ids_named_like(self, keys: Keys, query: str) -> set[str]:
        pattern = f"*{query.lower().translate(_GLOB_SPECIALS)}*{NAME_SEPARATOR}*"
        return {
            member.decode().rpartition(NAME_SEPARATOR)[2]
            for member, _ in self._redis.zscan_iter(keys.names, match=pattern, count=1000)
        }

    def _views(self, keys: Keys, ids: list[str]) -> list[View]:
        if not ids:
            return []
        raw = self._redis.mget([key for i in ids for key in (keys.view(i), keys.stall(i))])
        pairs = zip(raw[0::2], raw[1::2], strict=True)
        views = [_merged(load(view), load(stall)) for view, stall in pairs]
        return [view for view in views if view is not None]


def _write_view(
    pipe: Pipeline, keys: Keys, before: View | None, view: View, envelope: EventEnvelope
) -> None:
    arena_id = view["id"]
    created = epoch(view["createdAt"])
    pipe.set(keys.view(arena_id), dump(view))
    pipe.zadd(keys.by_created, {arena_id: created})
    if before is not None and before["status"] != view["status"]:
        pipe.zrem(keys.by_status(before["status"]), arena_id)
    pipe.zadd(keys.by_status(view["status"]), {arena_id: created})
    pipe.zadd(keys.names, {canonical_name(view["name"], arena_id): 0})
    pipe.lpush(keys.feed(arena_id), dump(feed_entry(envelope)))
    pipe.ltrim(keys.feed(arena_id), 0, FEED_LENGTH - 1)
    pipe.publish(keys.applied_channel, f"{arena_id} {view['version']}")


def _reached(view: View | None, min_version: int) -> bool:
    return view is not None and view["version"] >= min_version


def _merged(view: View | None, stall: dict[str, Any] | None) -> View | None:
    if view is None:
        return None
    return view | {
        "stalled": stall is not None,
        "stalledAtVersion": stall["stalledAtVersion"] if stall else None,
    }


def _canonical(envelope: EventEnvelope) -> str:
    return json.dumps(envelope.to_dict(), sort_keys=True, separators=(",", ":"))


def _score(envelope: EventEnvelope) -> int:
    return envelope.aggregate_version


def canonical_name(name: str, arena_id: str) -> str:
    """The member of the names index: searchable by name, unique by id."""
    return f"{name.lower()}{NAME_SEPARATOR}{arena_id}"


def dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def load(raw: bytes | None) -> Any:
    return json.loads(raw) if raw is not None else None


def epoch(iso_timestamp: str) -> float:
    return datetime.fromisoformat(iso_timestamp).timestamp()
