"""The command bus: runs one command in one unit of work, retrying when it loses a race.

Optimistic concurrency means two commands on one arena may both load version N; only one can
write N+1, the other gets `ConcurrentUpdate` and is re-run from a fresh load — here, a few times,
with jittered backoff — before the client sees a 409. The units it opens write the relay's
nudge with their events, so whoever runs commands through the bus wakes the relay.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from arena.domain.errors import Conflict
from arena.services.commands import Command
from arena.services.handlers import handler_for
from arena.services.idempotency import IdempotencyKey, Reply
from arena.services.results import Result
from arena.services.unit_of_work import ConcurrentUpdate, Provenance, UnitOfWork, UnitsOfWork

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 0.01
MAX_BACKOFF_SECONDS = 0.25

R = TypeVar("R", bound=Result)
T = TypeVar("T")


class CommandBus:
    def __init__(self, units: UnitsOfWork, *, pause: Callable[[float], None] = time.sleep) -> None:
        self._units = units
        self._pause = pause

    def execute(
        self,
        command: Command,
        render: Callable[[R], Reply],
        *,
        provenance: Provenance | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> Reply:
        """Handle `command`, commit, and return `render(result)`; with a key, at most once:
        a key seen before answers with the reply remembered then, and runs nothing."""
        handler = handler_for(command)

        def attempt(uow: UnitOfWork) -> Reply:
            if idempotency_key is not None:
                remembered = uow.idempotency.find(idempotency_key)
                if remembered is not None:
                    return remembered
            reply = render(handler(uow, command))  # type: ignore[arg-type]
            if idempotency_key is not None:
                uow.idempotency.remember(idempotency_key, reply)
            return reply

        return self._until_it_commits(command, attempt, provenance or Provenance.new())

    def handle(self, command: Command, *, provenance: Provenance | None = None) -> Result:
        """Handle a command no client waits on (a tick, say): the handler's result, committed."""
        handler = handler_for(command)
        return self._until_it_commits(
            command, lambda uow: handler(uow, command), provenance or Provenance.new()
        )

    def _until_it_commits(
        self, command: Command, attempt: Callable[[UnitOfWork], T], provenance: Provenance
    ) -> T:
        for number in range(1, MAX_ATTEMPTS + 1):
            with self._units.begin(provenance) as uow:
                try:
                    outcome = attempt(uow)
                    uow.commit()
                    return outcome
                except ConcurrentUpdate as race:
                    log.info(
                        "%s lost a race (attempt %d): %s", type(command).__name__, number, race
                    )
            self._pause(random.uniform(0, min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2**number)))
        raise Conflict("The arena kept changing concurrently; retry the request.")
