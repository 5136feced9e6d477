"""Wait-until-with-deadline: the only way the tests and the harness wait for asynchronous work."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, deadline_seconds: float, interval: float = 0.05, what: str
) -> T:
    """Call `probe` until it returns something truthy; fail with `what` when the deadline passes."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_seconds:.0f}s waiting for {what}")
        time.sleep(interval)
