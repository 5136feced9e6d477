"""The read model's views as the tree under test lays them out.

The bench watches views in Redis directly (cheaper and finer-grained than HTTP reads), in the
tree it measures, which may be a baseline whose keys differ from this checkout's (arenas' keys
gained a hash tag). bench/probe_tree.py asks the tree how it names a view; this reads by that.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis

from arena.readmodel.keys import INITIAL_GENERATION, generation_pointer

# bench/probe_tree.py names a view with these, for this module to put the real ones in.
PREFIX, GENERATION, ARENA = "PREFIX", "GENERATION", "ARENA"


class TreeViews:
    def __init__(self, redis: Redis, prefix: str, view_key: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._view_key = view_key  # e.g. "PREFIX:GENERATION:arena:{ARENA}"

    def get_many(self, arena_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Views by arena id in the generation readers use (absent ids are left out)."""
        if not arena_ids:
            return {}
        raw = self._redis.get(generation_pointer(self._prefix))
        generation = raw.decode() if raw else INITIAL_GENERATION
        key = self._view_key.replace(PREFIX, self._prefix).replace(GENERATION, generation)
        found = self._redis.mget([key.replace(ARENA, arena_id) for arena_id in arena_ids])
        return {
            arena_id: json.loads(view)
            for arena_id, view in zip(arena_ids, found, strict=True)
            if view is not None
        }

    def switch_to(self, generation: str) -> None:
        """Point readers (and the tree's projections) at `generation`."""
        self._redis.set(generation_pointer(self._prefix), generation)
