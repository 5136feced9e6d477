"""The relay nudge: right after a command commits, make sure a relay run is on its way.

Nudges coalesce: a marker key in the broker's Redis says a nudged relay task is queued and has
not started yet, and while it is there further commits send nothing, because that task will see
their rows when it claims. The task removes the marker as it starts. Without this, every command
queued a relay task of its own, and in a burst thousands of mostly empty relay runs delayed the
projection tasks behind them (docs/benchmarks.md).
"""

from __future__ import annotations

import logging

from celery import Celery
from redis import Redis

log = logging.getLogger(__name__)

MARKER_TTL_MS = 2000  # if a queued task is lost, nudging resumes after this (beat covers meanwhile)
EXPIRES_SECONDS = 10.0


class RelayNudge:
    def __init__(
        self, celery_app: Celery, redis: Redis, *, task: str, marker: str, enabled: bool
    ) -> None:
        self._celery_app = celery_app
        self._redis = redis
        self._task = task
        self._marker = marker
        self._enabled = enabled

    def __call__(self) -> None:
        """Send a relay task unless one is already waiting; never fail the committed command."""
        if not self._enabled:
            return
        try:
            if self._redis.set(self._marker, 1, nx=True, px=MARKER_TTL_MS):
                self._celery_app.send_task(self._task, retry=False, expires=EXPIRES_SECONDS)
        except Exception as error:  # noqa: BLE001 - the command is committed; beat covers it
            log.warning("could not nudge the outbox relay (%r); beat will publish instead", error)
            self.started()

    def started(self) -> None:
        """Called by the relay task before it claims: later commits need a new nudge."""
        try:
            self._redis.delete(self._marker)
        except Exception as error:  # noqa: BLE001 - the marker expires by itself
            log.warning("could not clear the relay nudge marker (%r)", error)
