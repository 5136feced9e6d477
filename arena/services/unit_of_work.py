"""The unit-of-work port: what the command bus needs from storage, and nothing of how.

`arena.persistence.sql_unit_of_work` satisfies it with one PostgreSQL transaction; the service
layer's unit tests satisfy it in memory. Either way a unit is all or nothing: leaving it without
`commit()` keeps nothing, and `commit()` keeps the aggregates' changes, their events and the
remembered reply together, or raises `ConcurrentUpdate` and keeps none of them.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from arena.domain.model import Arena
from arena.services.idempotency import IdempotencyKey, Reply
from arena.simulation.board import Board
from arena.simulation.rules import DueAction
from arena.stored_board import SealedBoard


class ConcurrentUpdate(Exception):
    """Another unit changed the same data first; re-running the whole command is safe."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a command came from, stamped on each of its events: `causation_id` names this
    command, `correlation_id` the larger flow it belongs to (a client's own id, if it sent one)."""

    correlation_id: str
    causation_id: str

    @classmethod
    def new(cls, correlation_id: str | None = None) -> Provenance:
        command_id = str(uuid.uuid4())
        return cls(correlation_id=correlation_id or command_id, causation_id=command_id)


class Arenas(Protocol):
    def add(self, arena: Arena) -> None: ...

    def get(self, arena_id: str) -> Arena:
        """A fresh load; raises `NotFound` when there is no such arena."""
        ...

    def get_many(self, arena_ids: list[str]) -> list[Arena]:
        """Fresh loads of those of `arena_ids` that exist, in their order."""
        ...


class RememberedReplies(Protocol):
    def find(self, key: IdempotencyKey) -> Reply | None:
        """The reply remembered under `key`; raises `IdempotencyKeyReused` when the key was
        sent with another request."""
        ...

    def remember(self, key: IdempotencyKey, reply: Reply) -> None: ...


class Boards(Protocol):
    def get_many(self, arena_ids: list[str]) -> dict[str, Board]:
        """The board after each arena's latest tick; an arena before its first has none."""
        ...

    def put_many(self, boards: dict[str, SealedBoard]) -> None:
        """Keep each arena's new board (arena id → board)."""
        ...


class PendingActions(Protocol):
    def add(self, arena_id: str, action: DueAction, apply_at_tick: int) -> None: ...

    def due_many(self, ticks: dict[str, int]) -> dict[str, list[DueAction]]:
        """Each arena's actions for its tick (arena id → tick), in submission order; an arena
        with none is left out."""
        ...

    def settle_many(self, through_ticks: dict[str, int]) -> None:
        """Forget each arena's actions of every tick up to its tick (arena id → tick): they
        were applied or rejected."""
        ...


class UnitOfWork(Protocol):
    @property
    def arenas(self) -> Arenas: ...

    @property
    def idempotency(self) -> RememberedReplies: ...

    @property
    def boards(self) -> Boards: ...

    @property
    def pending_actions(self) -> PendingActions: ...

    def commit(self) -> None: ...


class UnitsOfWork(Protocol):
    """Opens units; the bus opens one per attempt at a command."""

    def begin(self, provenance: Provenance) -> AbstractContextManager[UnitOfWork]: ...
