"""A token bucket that caps how often a stage pays its fixed cost per wake-up.

Why: the relay and the consumer each wake once per event at light load, which is what keeps an
event's latency low, but every wake-up costs the same whether it carries one event or hundreds
(a claim, a Kafka request, a Celery task with its task events). A bucket of `burst` tokens
refilled at `rate` a second lets every wake-up through while the load is light, and makes events
gather into fewer, larger batches, each waiting at most 1/`rate` seconds, once it is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BURST_SECONDS = 0.1  # the bucket holds this many seconds' worth of wake-ups


class Pace:
    """At most `rate` wake-ups a second on average, `burst` back to back; `rate` ≤ 0: no cap."""

    def __init__(
        self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = max(1.0, burst)
        self._clock = clock
        self._tokens = self._burst
        self._refilled_at = clock()

    @classmethod
    def unlimited(cls) -> Pace:
        return cls(0, 1)

    @classmethod
    def per_second(cls, rate: float, *, clock: Callable[[], float] = time.monotonic) -> Pace:
        return cls(rate, rate * BURST_SECONDS, clock=clock)

    def wait_seconds(self) -> float:
        """How long until the next wake-up may go: 0.0 when it may go now."""
        if self._rate <= 0:
            return 0.0
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        """Spend a token on a wake-up that goes now (the count may dip below one, never below
        zero by more than this wake-up)."""
        if self._rate > 0:
            self._refill()
            self._tokens -= 1.0

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
