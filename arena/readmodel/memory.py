"""How full the read model's Redis is.

It runs with `maxmemory` and `noeviction` (scripts/services.sh, docker-compose.yml): past the cap
writes fail loudly and projections retry, and no view is ever silently evicted. `/metrics` shows
how near the cap it is, for an alert before (docs/operations.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis


@dataclass(frozen=True, slots=True)
class MemoryUse:
    used_bytes: int
    max_bytes: int  # 0: no cap

    @property
    def used_ratio(self) -> float | None:
        """Used over the cap (1.0: writes are refused); None without a cap."""
        return self.used_bytes / self.max_bytes if self.max_bytes else None


def memory_use(redis: Redis) -> MemoryUse:
    """One INFO round trip; raises RedisError when the server is away."""
    info = redis.info("memory")
    return MemoryUse(int(info["used_memory"]), int(info["maxmemory"]))
