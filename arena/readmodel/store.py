"""Reading the arena views in Redis, and the generations they live in.

Everything here reads, but for the generation pointers a rebuild moves; the views, their
indexes and stalls are written by arena/readmodel/writer.py only.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis

from arena.readmodel.history import DEFAULT_HISTORY_BYTES, DEFAULT_HISTORY_TICKS
from arena.readmodel.keys import (
    INITIAL_GENERATION,
    Keys,
    building_pointer,
    generation_pointer,
)
from arena.readmodel.view import ViewJson

FEED_LENGTH = 50
NOTICE_WAIT_SECONDS = 0.5  # a waiting read looks at the view at least this often
NAME_SEPARATOR = "\x1f"
_GLOB_SPECIALS = str.maketrans({char: f"\\{char}" for char in "*?[]\\"})


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
        """From now on live events also go to `generation` (arena/readmodel/writer.py)."""
        self._redis.set(building_pointer(self._prefix), generation)

    def stop_building(self) -> None:
        self._redis.delete(building_pointer(self._prefix))

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

    # --- reading ------------------------------------------------------------------------------

    def get(self, arena_id: str) -> ViewJson | None:
        keys = self.keys()
        raw_view, raw_stall = self._redis.mget([keys.view(arena_id), keys.stall(arena_id)])
        return _merged(load(raw_view), load(raw_stall))

    def get_many(self, arena_ids: list[str]) -> dict[str, ViewJson]:
        """Views by arena id (absent ids are left out), in one round trip."""
        views = self._views(self.keys(), arena_ids)
        return {view["id"]: view for view in views}

    def wait_for(self, arena_id: str, min_version: int, timeout_seconds: float) -> ViewJson | None:
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

    def _await(self, arena_id: str, min_version: int, deadline: float) -> ViewJson | None:
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
    ) -> tuple[list[ViewJson], int]:
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

    def _views(self, keys: Keys, ids: list[str]) -> list[ViewJson]:
        if not ids:
            return []
        raw = self._redis.mget([key for i in ids for key in (keys.view(i), keys.stall(i))])
        pairs = zip(raw[0::2], raw[1::2], strict=True)
        views = [_merged(load(view), load(stall)) for view, stall in pairs]
        return [view for view in views if view is not None]


def _reached(view: ViewJson | None, min_version: int) -> bool:
    return view is not None and view["version"] >= min_version


def _merged(view: ViewJson | None, stall: dict[str, Any] | None) -> ViewJson | None:
    if view is None:
        return None
    return view | {
        "stalled": stall is not None,
        "stalledAtVersion": stall["stalledAtVersion"] if stall else None,
    }


def canonical_name(name: str, arena_id: str) -> str:
    """The member of the names index: searchable by name, unique by id."""
    return f"{name.lower()}{NAME_SEPARATOR}{arena_id}"


def load(raw: bytes | None) -> Any:
    return json.loads(raw) if raw is not None else None
