"""Arena views in Redis, applied in aggregate-version order and at most once."""

from __future__ import annotations

import json
from datetime import datetime

from redis import Redis
from redis.exceptions import WatchError

from arena.domain.events import EventEnvelope
from arena.readmodel.projector import View, project


class EventOutOfOrder(Exception):
    """The event's predecessor has not been applied yet; retry later."""


class ArenaViews:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._by_created = f"{prefix}:arenas:by-created"
        self._prefix = prefix

    def _key(self, arena_id: str) -> str:
        return f"{self._prefix}:arena:{arena_id}"

    def apply(self, envelope: EventEnvelope) -> bool:
        """Apply the event if it is the next one; False for a duplicate (already applied)."""
        key = self._key(envelope.aggregate_id)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    current = _load(pipe.get(key))
                    applied_version = current["version"] if current else 0
                    if envelope.aggregate_version <= applied_version:
                        return False
                    if envelope.aggregate_version != applied_version + 1:
                        raise EventOutOfOrder(
                            f"arena {envelope.aggregate_id} is at version {applied_version}; "
                            f"version {envelope.aggregate_version} must wait"
                        )
                    view = project(current, envelope)
                    pipe.multi()
                    pipe.set(key, json.dumps(view, separators=(",", ":")))
                    pipe.zadd(self._by_created, {view["id"]: _score(view["createdAt"])})
                    pipe.execute()
                    return True
                except WatchError:
                    continue  # another worker changed this arena meanwhile: look again

    def get(self, arena_id: str) -> View | None:
        return _load(self._redis.get(self._key(arena_id)))

    def newest_first(self, *, limit: int, offset: int) -> tuple[list[View], int]:
        """A page of views, newest first, and the total number of arenas."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.zrevrange(self._by_created, offset, offset + limit - 1)
            pipe.zcard(self._by_created)
            ids, total = pipe.execute()
        if not ids:
            return [], total
        raw_views = self._redis.mget([self._key(arena_id.decode()) for arena_id in ids])
        return [view for view in map(_load, raw_views) if view is not None], total


def _load(raw: bytes | None) -> View | None:
    return json.loads(raw) if raw is not None else None


def _score(iso_timestamp: str) -> float:
    return datetime.fromisoformat(iso_timestamp).timestamp()
