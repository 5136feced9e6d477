"""Pace: a token bucket that lets light load through untouched and caps wake-ups under load."""

import pytest

from arena.pacing import Pace


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_full_bucket_lets_a_burst_through_then_makes_the_next_wait_one_token():
    clock = Clock()
    pace = Pace(10, 3, clock=clock)

    for _ in range(3):
        assert pace.wait_seconds() == 0.0
        pace.take()

    assert pace.wait_seconds() == pytest.approx(0.1)


def test_tokens_come_back_at_the_rate_and_never_beyond_the_burst():
    clock = Clock()
    pace = Pace(10, 2, clock=clock)
    pace.take()
    pace.take()

    clock.now = 0.05
    assert pace.wait_seconds() == pytest.approx(0.05)
    clock.now = 0.1
    assert pace.wait_seconds() == 0.0

    clock.now = 60.0  # a long idle spell refills to the burst only
    for _ in range(2):
        pace.take()
    assert pace.wait_seconds() == pytest.approx(0.1)


def test_load_below_the_rate_never_waits():
    clock = Clock()
    pace = Pace.per_second(100, clock=clock)  # 100 a second, 10 at once

    waits = []
    for step in range(1000):  # 50 wake-ups a second for 20 seconds
        clock.now = step * 0.02
        waits.append(pace.wait_seconds())
        pace.take()

    assert max(waits) == 0.0


def test_load_above_the_rate_is_held_to_the_rate():
    clock = Clock()
    pace = Pace.per_second(100, clock=clock)

    went = 0
    for step in range(4000):  # offered 400 a second for 10 seconds
        clock.now = step * 0.0025
        if pace.wait_seconds() == 0.0:
            pace.take()
            went += 1

    assert 1000 <= went <= 1000 + 10  # the rate for 10 s, plus the first burst


def test_an_unlimited_pace_never_waits():
    pace = Pace.unlimited()
    for _ in range(1000):
        pace.take()
    assert pace.wait_seconds() == 0.0
