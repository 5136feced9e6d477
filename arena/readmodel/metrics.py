"""How far the read model trails the write model, and what is stalled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from arena.extensions import AnySession
from arena.persistence.tables import ArenaRow
from arena.readmodel.store import ArenaViews

ARENAS = ArenaRow.__table__
CHUNK = 1000
LISTED = 20


@dataclass(frozen=True, slots=True)
class ProjectionMetrics:
    arenas: int
    applied_total: int  # every arena's view version added up: events the projection applied
    behind: int
    behind_examples: list[dict[str, Any]]
    stalled: list[dict[str, Any]]
    parked_events: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "arenas": self.arenas,
            "appliedTotal": self.applied_total,
            "arenasBehind": self.behind,
            "arenasBehindExamples": self.behind_examples,
            "stalledArenas": self.stalled,
            "parkedEvents": self.parked_events,
        }


def projection_metrics(session: AnySession, views: ArenaViews) -> ProjectionMetrics:
    """Arenas whose view version is below their write version, stalls and parked events."""
    rows = session.execute(select(ARENAS.c.id, ARENAS.c.version)).all()
    session.rollback()
    behind: list[dict[str, Any]] = []
    applied = 0
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        seen = views.get_many([str(row.id) for row in chunk])
        for row in chunk:
            view_version = seen[str(row.id)]["version"] if str(row.id) in seen else 0
            applied += view_version
            if view_version < row.version:
                behind.append(
                    {
                        "arenaId": str(row.id),
                        "writeVersion": row.version,
                        "readVersion": view_version,
                    }
                )
    stalls = views.stalls()
    parked = sum(len(views.parked(stall.arena_id)) for stall in stalls)
    return ProjectionMetrics(
        arenas=len(rows),
        applied_total=applied,
        behind=len(behind),
        behind_examples=behind[:LISTED],
        stalled=[
            {"arenaId": s.arena_id, "stalledAtVersion": s.stalled_at_version, "reason": s.reason}
            for s in stalls
        ],
        parked_events=parked,
    )
