"""gunicorn's server hooks: `gunicorn -c python:arena.http.gunicorn_hooks`, as `make run` starts
the API."""

from __future__ import annotations

from typing import Any

from arena import telemetry
from arena.settings import Settings


def child_exit(_server: Any, worker: Any) -> None:
    """A worker process ended: its live gauges (open streams) stop counting in /metrics."""
    telemetry.process_ended(Settings.from_env(), worker.pid)
