"""A figure fetched at most once per interval, off the request threads, within a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")


class Unavailable(Exception):
    """The fetch did not finish within its deadline (it may still finish, for later callers)."""


class Polled(Generic[T]):
    """The latest outcome of `fetch` (its value, or the error it raised), at most `max_age` old.

    Invariants: at most one fetch runs at a time, in a daemon thread of its own, so a dependency
    that hangs holds no request thread; callers share the running fetch, and nobody waits for it
    past `deadline` seconds from its start (then `Unavailable`). So a burst of callers costs one
    fetch, and a dead dependency at most one per interval plus the time it hangs.
    """

    def __init__(self, name: str, fetch: Callable[[], T], *, max_age: float, deadline: float):
        self._name = name
        self._fetch = fetch
        self._max_age = max_age
        self._deadline = deadline
        self._lock = threading.Lock()
        self._latest: tuple[float, Future[T]] | None = None  # (finished at, outcome)
        self._running: tuple[float, Future[T]] | None = None  # (started at, outcome to come)

    def get(self) -> T:
        """The value, or the fetch's error raised again, or `Unavailable`."""
        now = time.monotonic()
        with self._lock:
            latest = self._latest
            if latest is not None and now - latest[0] < self._max_age:
                outcome, wait = latest[1], 0.0
            else:
                started_at, outcome = self._running or self._start(now)
                wait = max(0.0, started_at + self._deadline - now)
        try:
            return outcome.result(timeout=wait)
        except TimeoutError as error:
            if outcome.done():  # finished meanwhile, or the fetch's own error (a socket's timeout)
                return outcome.result()
            raise Unavailable(f"{self._name}: no answer within {self._deadline} s") from error

    def prefetch(self) -> None:
        """Start a fetch now if the latest outcome is stale, so that `get` waits less."""
        now = time.monotonic()
        with self._lock:
            latest = self._latest
            if self._running is None and (latest is None or now - latest[0] >= self._max_age):
                self._start(now)

    def _start(self, now: float) -> tuple[float, Future[T]]:
        outcome: Future[T] = Future()
        self._running = (now, outcome)
        threading.Thread(target=self._run, args=(outcome,), name=self._name, daemon=True).start()
        return self._running

    def _run(self, outcome: Future[T]) -> None:
        resolve: Callable[[], None]
        try:
            resolve = partial(outcome.set_result, self._fetch())
        except Exception as error:  # noqa: BLE001 - kept as the outcome; callers see it raised
            resolve = partial(outcome.set_exception, error)
        with self._lock:  # resolved and recorded at once: a caller it wakes finds it the latest
            resolve()
            self._running = None
            self._latest = (time.monotonic(), outcome)
