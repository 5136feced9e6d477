"""What each command's handler answers: only what its callers need, never the aggregate."""

from __future__ import annotations

from dataclasses import dataclass

from arena.domain.model import NewPlayer


@dataclass(frozen=True, slots=True)
class ArenaOpened:
    """CreateArena: the new arena, and its creator (an ADMIN) with the one copy of its token."""

    arena_id: str
    version: int
    creator: NewPlayer


@dataclass(frozen=True, slots=True)
class PlayerAdmitted:
    """JoinArena: the newcomer, with the one copy of its token."""

    arena_id: str
    version: int
    player: NewPlayer


@dataclass(frozen=True, slots=True)
class ArenaChanged:
    """RemovePlayer, ChangeStatus, UpdateConfig: the arena's version and status after it."""

    arena_id: str
    version: int
    status: str


@dataclass(frozen=True, slots=True)
class ActionAccepted:
    """SubmitAction: the action's id and the tick it will apply at."""

    arena_id: str
    version: int
    action_id: str
    apply_at_tick: int


@dataclass(frozen=True, slots=True)
class TickMade:
    """One arena of an AdvanceArenas: whether a tick was made (none was due: no), and whether
    another is due."""

    arena_id: str
    version: int
    tick: int
    advanced: bool
    another_due: bool
    skipped: int = 0  # ticks left out because it was too far behind


@dataclass(frozen=True, slots=True)
class TicksMade:
    """AdvanceArenas: each arena it found, in the order asked for."""

    ticks: tuple[TickMade, ...]

    def another_due(self) -> list[str]:
        """The arenas still behind: a catch-up runs them again."""
        return [made.arena_id for made in self.ticks if made.another_due]


Result = ArenaOpened | PlayerAdmitted | ArenaChanged | ActionAccepted | TicksMade
