"""The command bus: runs one command in one transaction, retrying when it loses a race.

Optimistic concurrency means two commands on one arena may both load version N; only one can
write N+1, the other gets `ConcurrentUpdate` and is re-run from a fresh load — here, a few times,
with jittered backoff — before the client sees a 409.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from arena.domain.errors import Conflict
from arena.persistence.errors import ConcurrentUpdate
from arena.persistence.idempotency import IdempotencyKey, Reply
from arena.persistence.unit_of_work import UnitOfWork
from arena.services.commands import Command
from arena.services.handlers import Outcome, handler_for

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_SECONDS = 0.01
MAX_BACKOFF_SECONDS = 0.25


class CommandBus:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork]) -> None:
        self._unit_of_work = unit_of_work

    def execute(
        self,
        command: Command,
        render: Callable[[Outcome], Reply],
        idempotency_key: IdempotencyKey | None = None,
    ) -> Reply:
        """Handle `command`, commit, and return `render(outcome)`; with a key, at most once."""
        handler = handler_for(command)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with self._unit_of_work() as uow:
                if idempotency_key is not None:
                    remembered = uow.idempotency.find(idempotency_key)
                    if remembered is not None:
                        return remembered
                try:
                    reply = render(handler(uow, command))
                    if idempotency_key is not None:
                        uow.idempotency.remember(idempotency_key, reply)
                    uow.commit()
                    return reply
                except ConcurrentUpdate as race:
                    log.info(
                        "%s lost a race (attempt %d): %s", type(command).__name__, attempt, race
                    )
            time.sleep(random.uniform(0, min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2**attempt)))
        raise Conflict("The arena kept changing concurrently; retry the request.")
