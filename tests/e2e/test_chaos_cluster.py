"""The short chaos matrix on the Kafka cluster: `make chaos-cluster` (`python -m bench chaos
--cluster`) runs every row of the replicated topology; this runs the busiest leader's.

The whole pipeline (a gunicorn API, relay and projection workers, beat, the consumer) on the three
Kafka nodes of stack/topology.py, its topics made by the application with three replicas and
`min.insync.replicas` 2; the other services are `make services`' single ones. Under retrying HTTP
clients and ticking arenas, the broker leading the most partitions of the run's events topic is
SIGKILLed and started again: no accepted command is lost or applied twice, every event is on Kafka,
ticks run without gaps, `flask verify` is clean, and what was answered before the recovery is
visible within 30 s of it (issue 25).

The fixture starts the cluster (three JVMs, ~1 GiB) and stops it after, unless it was up already
(`make cluster-kafka`); `-m "not cluster"` leaves this out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.chaos import Outcome, Windows, run_matrix
from harness.faults import CLUSTER_FAULTS, CLUSTER_SHORT, stack_kafka
from harness.processes import ROOT
from stack import kafka_nodes
from stack.topology import cluster
from tests.support.chaos import assert_nothing_lost_or_doubled

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

WINDOWS = Windows(quiet_seconds=5.0, fault_seconds=5.0, after_seconds=5.0)
CONVERGED_WITHIN_SECONDS = 30.0  # of the recovery: the bound
CLUSTER = cluster(ROOT)


@pytest.fixture(scope="module")
def kafka_cluster() -> Iterator[None]:
    already_up = kafka_nodes.status_lines(CLUSTER)[1]
    stack_kafka(CLUSTER, "up")
    try:
        yield
    finally:
        if not already_up:
            stack_kafka(CLUSTER, "down")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, kafka_cluster: None) -> dict[str, Outcome]:
    workdir = Path(tmp_path_factory.mktemp("chaos-cluster"))
    faults = [CLUSTER_FAULTS[name] for name in CLUSTER_SHORT]
    outcomes = run_matrix(faults, WINDOWS, workdir, kafka_topology="cluster")
    return {outcome.fault: outcome for outcome in outcomes}


@pytest.mark.parametrize("fault", CLUSTER_SHORT)
def test_losing_a_kafka_node_loses_nothing_and_applies_nothing_twice(
    matrix: dict[str, Outcome], fault: str
) -> None:
    assert_nothing_lost_or_doubled(matrix[fault], CONVERGED_WITHIN_SECONDS)
