"""What every chaos row must show, single node or cluster."""

from __future__ import annotations

from harness.chaos import Outcome


def assert_nothing_lost_or_doubled(
    row: Outcome, converged_within_seconds: float | None = None
) -> None:
    """Every accepted command reached Kafka and was applied once; the run converged (within
    `converged_within_seconds` of the recovery, when given); ticks went on; verify is clean."""
    assert row.accepted > 0, row
    assert (row.lost, row.applied_twice) == (0, 0), row
    assert row.in_kafka == row.accepted == row.applied, row
    assert row.converge_seconds is not None, row
    if converged_within_seconds is not None:
        assert row.converge_seconds <= converged_within_seconds, row
    assert row.ticks_ok, row
    assert row.verified, row
