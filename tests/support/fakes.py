"""An in-memory unit of work for the service layer's unit tests (Cosmic Python's fake UoW).

It keeps the port's promises the way PostgreSQL does for the real one: a unit sees a fresh copy
of what was committed, `commit()` keeps everything or nothing, and a unit whose arena another
unit committed first raises `ConcurrentUpdate`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from arena.domain.errors import NotFound
from arena.domain.events import DomainEvent
from arena.domain.model import Arena
from arena.services.idempotency import IdempotencyKey, IdempotencyKeyReused, Reply
from arena.services.unit_of_work import ConcurrentUpdate, Provenance
from arena.simulation.board import Board
from arena.simulation.rules import DueAction
from arena.stored_board import SealedBoard, decode


@dataclass
class Committed:
    """What every committed unit left behind."""

    arenas: dict[str, Arena] = field(default_factory=dict)
    events: list[tuple[Provenance, DomainEvent]] = field(default_factory=list)
    # (scope, key) → (fingerprint, reply)
    replies: dict[tuple[str, str], tuple[str, Reply]] = field(default_factory=dict)
    boards: dict[str, Board] = field(default_factory=dict)
    actions: list[tuple[str, DueAction, int]] = field(default_factory=list)  # (arena, action, tick)


class FakeArenas:
    def __init__(self, committed: Committed) -> None:
        self._committed = committed
        self.seen: list[tuple[Arena, int]] = []  # each arena and its version when loaded

    def add(self, arena: Arena) -> None:
        self.seen.append((arena, 0))

    def get(self, arena_id: str) -> Arena:
        found = self.get_many([arena_id])
        if not found:
            raise NotFound(f"Arena {arena_id} does not exist.")
        return found[0]

    def get_many(self, arena_ids: list[str]) -> list[Arena]:
        loaded = [
            copy.deepcopy(self._committed.arenas[i])
            for i in arena_ids
            if i in self._committed.arenas
        ]
        self.seen += [(arena, arena.version) for arena in loaded]
        return loaded


class FakeReplies:
    def __init__(self, committed: Committed) -> None:
        self._committed = committed
        self.remembered: dict[tuple[str, str], tuple[str, Reply]] = {}

    def find(self, key: IdempotencyKey) -> Reply | None:
        found = self._committed.replies.get((key.scope, key.key))
        if found is None:
            return None
        fingerprint, reply = found
        if fingerprint != key.fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was used for a different request.")
        return Reply(reply.status, reply.body, replayed=True)

    def remember(self, key: IdempotencyKey, reply: Reply) -> None:
        self.remembered[key.scope, key.key] = (key.fingerprint, reply)


class FakeBoards:
    def __init__(self, committed: Committed) -> None:
        self._committed = committed
        self.written: dict[str, Board] = {}

    def get_many(self, arena_ids: list[str]) -> dict[str, Board]:
        committed = self._committed.boards
        return {i: committed[i].copy() for i in arena_ids if i in committed}

    def put_many(self, boards: dict[str, SealedBoard]) -> None:
        self.written |= {i: decode(board.stored) for i, board in boards.items()}


class FakePendingActions:
    """Changes stay in the unit (`actions`) until it commits."""

    def __init__(self, committed: Committed) -> None:
        self.actions = list(committed.actions)

    def add(self, arena_id: str, action: DueAction, apply_at_tick: int) -> None:
        self.actions.append((arena_id, action, apply_at_tick))

    def due_many(self, ticks: dict[str, int]) -> dict[str, list[DueAction]]:
        due: dict[str, list[DueAction]] = {}
        for arena, action, at in self.actions:
            if ticks.get(arena) == at:
                due.setdefault(arena, []).append(action)
        return due

    def settle_many(self, through_ticks: dict[str, int]) -> None:
        self.actions = [
            (arena, action, at)
            for arena, action, at in self.actions
            if arena not in through_ticks or at > through_ticks[arena]
        ]


class FakeUnitOfWork:
    def __init__(
        self, committed: Committed, provenance: Provenance, before_commit: Callable[[], None]
    ) -> None:
        self._committed = committed
        self._provenance = provenance
        self._before_commit = before_commit
        self.arenas = FakeArenas(committed)
        self.idempotency = FakeReplies(committed)
        self.boards = FakeBoards(committed)
        self.pending_actions = FakePendingActions(committed)

    def commit(self) -> None:
        self._before_commit()
        for arena, loaded_version in self.arenas.seen:
            current = self._committed.arenas.get(arena.id)
            if (current.version if current else 0) != loaded_version:
                raise ConcurrentUpdate(f"arena {arena.id} changed since it was loaded")
        for key in self.idempotency.remembered:
            if key in self._committed.replies:
                raise ConcurrentUpdate("another request with this Idempotency-Key committed first")
        for arena, _ in self.arenas.seen:
            self._committed.events += [(self._provenance, e) for e in arena.collect_events()]
            self._committed.arenas[arena.id] = copy.deepcopy(arena)
        self._committed.replies |= self.idempotency.remembered
        self._committed.boards |= self.boards.written
        self._committed.actions = self.pending_actions.actions


class FakeUnitsOfWork:
    """`before_commit` runs as each unit commits, which lets a test commit a rival change after
    the command loaded its arena, as a concurrent request would."""

    def __init__(self) -> None:
        self.committed = Committed()
        self.opened: list[Provenance] = []
        self.before_commit: Callable[[], None] = lambda: None

    @contextmanager
    def begin(self, provenance: Provenance) -> Iterator[FakeUnitOfWork]:
        self.opened.append(provenance)
        yield FakeUnitOfWork(self.committed, provenance, lambda: self.before_commit())
