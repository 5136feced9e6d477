"""`Polled`: one fetch at a time, off the caller's thread, kept for its interval, given up on past
its deadline."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from arena.http.polled import Polled, Unavailable

GENEROUS_SECONDS = 10.0  # a cold busy machine; nothing here waits that long when it works


class Gate:
    """A fetch that counts its calls and, while closed, waits for the test to open it."""

    def __init__(self) -> None:
        self.calls = 0
        self.opened = threading.Event()
        self.opened.set()

    def fetch(self) -> int:
        self.calls += 1
        assert self.opened.wait(GENEROUS_SECONDS)
        return self.calls


def test_within_its_interval_the_latest_value_is_given_without_fetching() -> None:
    gate = Gate()
    polled = Polled("test", gate.fetch, max_age=GENEROUS_SECONDS, deadline=GENEROUS_SECONDS)

    assert [polled.get() for _ in range(5)] == [1, 1, 1, 1, 1]
    assert gate.calls == 1


def test_once_stale_the_next_caller_fetches_again() -> None:
    gate = Gate()
    polled = Polled("test", gate.fetch, max_age=0.0, deadline=GENEROUS_SECONDS)

    assert [polled.get() for _ in range(3)] == [1, 2, 3]


def test_concurrent_callers_share_one_fetch() -> None:
    gate = Gate()
    gate.opened.clear()
    polled = Polled("test", gate.fetch, max_age=GENEROUS_SECONDS, deadline=GENEROUS_SECONDS)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [pool.submit(polled.get) for _ in range(8)]
        gate.opened.set()
        assert [answer.result() for answer in answers] == [1] * 8
    assert gate.calls == 1


def test_past_its_deadline_a_hung_fetch_is_unavailable_and_holds_nobody() -> None:
    gate = Gate()
    gate.opened.clear()
    polled = Polled("test", gate.fetch, max_age=0.0, deadline=0.2)

    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"no answer within 0\.2 s"):
        polled.get()
    with pytest.raises(Unavailable):  # still hung: past its deadline, answered at once
        polled.get()
    assert time.monotonic() - started < GENEROUS_SECONDS / 2
    assert gate.calls == 1  # not started again while it hangs
    gate.opened.set()


def test_a_failed_fetch_is_raised_to_its_callers_and_kept_for_its_interval() -> None:
    calls: list[int] = []

    def failing() -> int:
        calls.append(1)
        raise ConnectionError("away")

    polled = Polled("test", failing, max_age=GENEROUS_SECONDS, deadline=GENEROUS_SECONDS)

    for _ in range(3):
        with pytest.raises(ConnectionError, match="away"):
            polled.get()
    assert len(calls) == 1
