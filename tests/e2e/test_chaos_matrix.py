"""The short chaos matrix: `make chaos` (bench/chaos.py) runs every fault; these are the ones the
other e2e tests do not already put under load (docs/reliability.md has the whole table).

Each fault, on one pipeline of its own (a gunicorn API, relay and projection workers, beat, the
consumer), under retrying HTTP clients and ticking arenas: no accepted command is lost or applied
twice, every event is on Kafka once at least, ticks run without gaps, `flask verify` is clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chaos import Outcome, Windows, run_matrix
from harness.faults import FAULTS, SHORT
from tests.support.chaos import assert_nothing_lost_or_doubled

pytestmark = pytest.mark.e2e

WINDOWS = Windows(quiet_seconds=5.0, fault_seconds=5.0, after_seconds=5.0)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    workdir = Path(tmp_path_factory.mktemp("chaos"))
    outcomes = run_matrix([FAULTS[name] for name in SHORT], WINDOWS, workdir)
    return {outcome.fault: outcome for outcome in outcomes}


@pytest.mark.parametrize("fault", SHORT)
def test_the_fault_loses_nothing_and_applies_nothing_twice(
    matrix: dict[str, Outcome], fault: str
) -> None:
    assert_nothing_lost_or_doubled(matrix[fault])
