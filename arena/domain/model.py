"""The Arena aggregate: the consistency boundary every arena command goes through."""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from arena.domain.config import ArenaConfig
from arena.domain.errors import ValidationFailed
from arena.domain.events import DomainEvent

NAME_LENGTH = (3, 80)
DISPLAY_NAME_LENGTH = (1, 40)


class ArenaStatus(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    FINISHED = "FINISHED"


class PlayerRole(enum.StrEnum):
    ADMIN = "ADMIN"
    PLAYER = "PLAYER"


def hash_token(token: str) -> str:
    """Tokens are kept only as a SHA-256 digest; being random, they need no salt or stretching."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(slots=True)
class Player:
    id: str
    display_name: str
    role: PlayerRole
    joined_at: datetime
    token_hash: str

    def to_dict(self) -> dict[str, str]:
        return {
            "playerId": self.id,
            "displayName": self.display_name,
            "role": self.role.value,
            "joinedAt": self.joined_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class NewPlayer:
    """A player just admitted, with the one copy of its bearer token that ever leaves the domain."""

    player: Player
    token: str


@dataclass(slots=True)
class Arena:
    id: str
    name: str
    status: ArenaStatus
    config: ArenaConfig
    created_at: datetime
    players: list[Player] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    tick: int = 0
    version: int = 0
    events: list[DomainEvent] = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls, *, name: str, creator_display_name: str, config: ArenaConfig, now: datetime
    ) -> tuple[Arena, NewPlayer]:
        """Open a PENDING arena whose creator joins as its first ADMIN."""
        name = _checked_length("name", name, NAME_LENGTH)
        creator = _new_player(creator_display_name, PlayerRole.ADMIN, now)
        arena = cls(
            id=str(uuid.uuid4()),
            name=name,
            status=ArenaStatus.PENDING,
            config=config,
            created_at=now,
            players=[creator.player],
        )
        arena._record(
            "ArenaCreated",
            now,
            {
                "arenaId": arena.id,
                "name": arena.name,
                "status": arena.status.value,
                "config": config.to_dict(),
                "createdAt": now.isoformat(),
                "creator": creator.player.to_dict(),
            },
        )
        return arena, creator

    def collect_events(self) -> list[DomainEvent]:
        """Hand over the events recorded since the last call (the unit of work writes them)."""
        collected, self.events = self.events, []
        return collected

    def _record(self, event_type: str, now: datetime, payload: dict[str, object]) -> None:
        self.version += 1
        self.events.append(DomainEvent(event_type, self.id, self.version, now, payload))


def _new_player(display_name: str, role: PlayerRole, now: datetime) -> NewPlayer:
    display_name = _checked_length("displayName", display_name, DISPLAY_NAME_LENGTH)
    token = secrets.token_urlsafe(32)
    player = Player(str(uuid.uuid4()), display_name, role, now, hash_token(token))
    return NewPlayer(player, token)


def _checked_length(field_name: str, value: str, bounds: tuple[int, int]) -> str:
    value = value.strip()
    low, high = bounds
    if not low <= len(value) <= high:
        raise ValidationFailed({field_name: f"length must be between {low} and {high}"})
    return value
