"""An arena as the read model shows it: the typed view the projection computes, and its JSON.

The view is stored as JSON text under `Keys.view` and served as it is read, so its JSON form is
the API's (camelCase, the optional fields absent until they are first known). Only this module
knows those keys on the way in and out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JsonObject = dict[str, Any]
# The view as readers get it: `ArenaView.to_json()` as stored, with the arena's stall state.
ViewJson = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ArenaView:
    """Invariant: `version` is the aggregate version of the last event applied to it."""

    id: str
    name: str
    status: str
    tick: int
    config: JsonObject
    players: tuple[JsonObject, ...]
    created_at: str
    version: int
    started_at: str | None = None
    finished_at: str | None = None
    stats: JsonObject | None = field(default=None)
    board_hash: str | None = None
    last_snapshot_tick: int | None = None

    def to_json(self) -> JsonObject:
        shown: JsonObject = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "tick": self.tick,
            "config": self.config,
            "players": list(self.players),
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "version": self.version,
        }
        for key, value in (
            ("stats", self.stats),
            ("boardHash", self.board_hash),
            ("lastSnapshotTick", self.last_snapshot_tick),
        ):
            if value is not None:
                shown[key] = value
        return shown

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, shown: JsonObject) -> ArenaView:
        return cls(
            id=shown["id"],
            name=shown["name"],
            status=shown["status"],
            tick=shown["tick"],
            config=shown["config"],
            players=tuple(shown["players"]),
            created_at=shown["createdAt"],
            version=shown["version"],
            started_at=shown.get("startedAt"),
            finished_at=shown.get("finishedAt"),
            stats=shown.get("stats"),
            board_hash=shown.get("boardHash"),
            last_snapshot_tick=shown.get("lastSnapshotTick"),
        )

    @classmethod
    def loads(cls, raw: bytes | str) -> ArenaView:
        return cls.from_json(json.loads(raw))
