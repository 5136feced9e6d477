"""How far the read model trails the write model, and what is stalled.

A look costs the same however many arenas there are: two aggregates over the arenas table, the
versions of at most ARENAS_COMPARED arenas (those written in the last RECENT_EVENTS events: an
arena behind is one whose latest events have not been applied yet), and Redis counts of at most
STALLS_COUNTED stalls, of which LISTED are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from arena.extensions import AnySession
from arena.readmodel.store import ArenaViews, load

RECENT_EVENTS = 10_000
ARENAS_COMPARED = 1000
STALLS_COUNTED = 1000
LISTED = 20

_WRITTEN = text("SELECT count(*) AS arenas, COALESCE(sum(version), 0) AS written FROM arenas")
# The ids first, so that at most :arenas rows of arenas are looked up by their key.
_RECENTLY_WRITTEN = text("""
SELECT arenas.id, arenas.version
FROM (SELECT DISTINCT aggregate_id
      FROM (SELECT aggregate_id FROM outbox ORDER BY id DESC LIMIT :events) AS latest
      LIMIT :arenas) AS recent
JOIN arenas ON arenas.id = recent.aggregate_id
""")


@dataclass(frozen=True, slots=True)
class ProjectionLag:
    arenas: int
    # Events the projection applied: every arena's write version added up, less what the arenas
    # found behind still lack (exact while every arena behind was written recently).
    applied_total: int
    behind: int  # of the recently written arenas
    behind_examples: list[dict[str, Any]]
    stalls: int
    stalled: list[dict[str, Any]]  # the first LISTED by arena id
    parked_events: int  # behind the first STALLS_COUNTED stalls

    def to_dict(self) -> dict[str, Any]:
        return {
            "arenas": self.arenas,
            "appliedTotal": self.applied_total,
            "arenasBehind": self.behind,
            "arenasBehindExamples": self.behind_examples,
            "stalls": self.stalls,
            "stalledArenas": self.stalled,
            "parkedEvents": self.parked_events,
        }


def projection_lag(session: AnySession, views: ArenaViews) -> ProjectionLag:
    """Arenas whose view version is below their write version, stalls and parked events."""
    written = session.execute(_WRITTEN).one()
    recent = session.execute(
        _RECENTLY_WRITTEN, {"events": RECENT_EVENTS, "arenas": ARENAS_COMPARED}
    ).all()
    session.rollback()
    seen = views.get_many([str(row.id) for row in recent])
    behind: list[dict[str, Any]] = []
    lacking = 0
    for row in sorted(recent, key=lambda row: str(row.id)):
        view_version = seen[str(row.id)]["version"] if str(row.id) in seen else 0
        if view_version < row.version:
            lacking += row.version - view_version
            behind.append(
                {"arenaId": str(row.id), "writeVersion": row.version, "readVersion": view_version}
            )
    stalls, stalled, parked = _stalls(views)
    return ProjectionLag(
        arenas=written.arenas,
        applied_total=written.written - lacking,
        behind=len(behind),
        behind_examples=behind[:LISTED],
        stalls=stalls,
        stalled=stalled,
        parked_events=parked,
    )


def _stalls(views: ArenaViews) -> tuple[int, list[dict[str, Any]], int]:
    """How many stalls, the first LISTED of them, and the events parked behind them."""
    redis, keys = views.redis, views.keys()
    counted: list[str] = []
    for member in redis.sscan_iter(keys.stalled, count=STALLS_COUNTED):
        counted.append(member.decode())
        if len(counted) == STALLS_COUNTED:
            break
    listed = sorted(counted)[:LISTED]
    with redis.pipeline(transaction=False) as pipe:
        pipe.scard(keys.stalled)
        for arena_id in counted:
            pipe.zcard(keys.parked(arena_id))
        for arena_id in listed:
            pipe.get(keys.stall(arena_id))
        answers = pipe.execute()
    total, parked, records = answers[0], answers[1 : 1 + len(counted)], answers[1 + len(counted) :]
    stalled = [
        {
            "arenaId": arena_id,
            "stalledAtVersion": record["stalledAtVersion"],
            "reason": record["reason"],
        }
        for arena_id, record in zip(listed, map(load, records), strict=True)
        if record is not None  # lifted meanwhile
    ]
    return int(total), stalled, sum(parked)
