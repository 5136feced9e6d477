"""The process's producer holder never uses, nor closes, a producer built before a fork."""

from __future__ import annotations

import os

import pytest

from arena.messaging import publishers as module
from arena.messaging.publishers import Publishers
from arena.settings import Settings


class _Producer:
    def __init__(self) -> None:
        self.closed = False

    def close(self, timeout_seconds: float) -> None:
        self.closed = True


def _holding(producer: _Producer) -> Publishers:
    holder = Publishers(Settings.from_env())
    holder._by_topic["arena.events"] = producer  # type: ignore[assignment]  # as if built here
    return holder


def test_close_flushes_the_producers_this_process_built() -> None:
    producer = _Producer()
    _holding(producer).close()
    assert producer.closed


def test_a_forked_child_forgets_its_parents_producers(monkeypatch: pytest.MonkeyPatch) -> None:
    producer = _Producer()
    holder = _holding(producer)
    child_pid = os.getpid() + 1
    monkeypatch.setattr(module.os, "getpid", lambda: child_pid)  # now in a forked child
    holder.close()
    assert not producer.closed, "closed the parent's producer from a child"
    assert holder._by_topic == {}


def test_discard_closes_and_forgets_the_topics_producer() -> None:
    producer = _Producer()
    holder = _holding(producer)
    holder.discard("arena.events")
    assert producer.closed and holder._by_topic == {}
