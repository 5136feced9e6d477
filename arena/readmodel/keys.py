"""Where the read model lives in Redis.

Every key sits under `<prefix>:<generation>`. `<prefix>:generation` names the generation readers
use, so `flask projections rebuild` can build a whole new one beside it and switch readers over
with a single SET. An arena's own keys carry its id as a hash tag (`…:arena:{<id>}…`): they share
one Redis Cluster hash slot, so one script may write them all. The indexes across arenas are keys
of their own; arena/readmodel/writer.py says how they are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_GENERATION = "g0"


def generation_pointer(prefix: str) -> str:
    return f"{prefix}:generation"


def building_pointer(prefix: str) -> str:
    """Names the generation a rebuild is filling, which live projections write to as well."""
    return f"{prefix}:building"


def applied_channel(prefix: str) -> str:
    """Pub/sub channel: `<arena id> <version>` after each write of a view, for waiting readers
    and live streams (not generation-specific: a reader re-reads the live view anyway)."""
    return f"{prefix}:applied"


def rate_limits_prefix(prefix: str) -> str:
    """Where the API's rate-limit counters live (`arena/http/rate_limits.py`): beside the views,
    under no generation, so a rebuild never drops them."""
    return f"{prefix}:rate-limits"


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str
    generation: str

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.generation}"

    def view(self, arena_id: str) -> str:
        return f"{self.base}:arena:{{{arena_id}}}"

    def feed(self, arena_id: str) -> str:
        return f"{self.base}:arena:{{{arena_id}}}:feed"

    def board(self, arena_id: str) -> str:
        """The board a reader last built from the history, where the next read starts
        (readmodel/boards.py)."""
        return f"{self.base}:arena:{{{arena_id}}}:board"

    def ticks(self, arena_id: str) -> str:
        """Hash: tick → that tick's stats and delta, for the last ticks (readmodel/boards.py)."""
        return f"{self.base}:arena:{{{arena_id}}}:ticks"

    def tick_stats(self, arena_id: str) -> str:
        """Sorted set by tick: {tick, at, stats} of each recent tick, for stats windows."""
        return f"{self.base}:arena:{{{arena_id}}}:tick-stats"

    def snapshots(self, arena_id: str) -> str:
        """Hash: tick → the board at that tick (compressed canonical encoding)."""
        return f"{self.base}:arena:{{{arena_id}}}:snapshots"

    def stall(self, arena_id: str) -> str:
        return f"{self.base}:arena:{{{arena_id}}}:stall"

    def parked(self, arena_id: str) -> str:
        return f"{self.base}:arena:{{{arena_id}}}:parked"

    @property
    def by_created(self) -> str:
        return f"{self.base}:arenas:by-created"

    def by_status(self, status: str) -> str:
        return f"{self.base}:arenas:status:{status}"

    @property
    def names(self) -> str:
        """Members `<lower-case name>\\x1f<arena id>`, so ZSCAN MATCH can search names."""
        return f"{self.base}:arenas:names"

    @property
    def applied_channel(self) -> str:
        return applied_channel(self.prefix)

    @property
    def stalled(self) -> str:
        return f"{self.base}:arenas:stalled"
