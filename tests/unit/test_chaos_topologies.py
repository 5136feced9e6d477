"""The chaos matrix on a topology of stack/topology.py: a run's settings reach that topology's
Kafka, and the cluster's faults pick their node from who leads what."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from arena.settings import Settings
from harness.faults import (
    CLUSTER_FAULTS,
    CLUSTER_SHORT,
    FAULTS,
    TOPOLOGY_FAULTS,
    busiest_leader,
    controller_leader,
)
from harness.processes import ROOT
from harness.resources import bench_settings, on_kafka
from stack.kafka_describe import Leadership
from stack.topology import application_env, cluster


def test_the_single_topology_leaves_the_environments_kafka_alone() -> None:
    base = Settings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:29092"})
    assert on_kafka(base, "single") is base


def test_the_cluster_topology_changes_only_what_stack_kafka_env_prints() -> None:
    base = Settings.from_env({})
    moved = on_kafka(base, "cluster")
    env = application_env(cluster(ROOT))
    assert moved.kafka_bootstrap_servers == env["KAFKA_BOOTSTRAP_SERVERS"]
    assert moved.kafka_replication_factor == int(env["KAFKA_REPLICATION_FACTOR"]) == 3
    changed = {
        f.name for f in dataclasses.fields(base) if getattr(base, f.name) != getattr(moved, f.name)
    }
    assert changed == {"kafka_bootstrap_servers", "kafka_replication_factor"}


def test_a_runs_settings_are_its_own_on_the_cluster_too() -> None:
    run = bench_settings(Settings.from_env({}), "abc123", 1.0, kafka_topology="cluster")
    assert run.kafka_events_topic.endswith("abc123")
    assert run.kafka_replication_factor == 3


def test_an_unknown_topology_is_refused() -> None:
    with pytest.raises(KeyError):
        on_kafka(Settings.from_env({}), "galaxy")


def _partition(index: int, leader: int) -> dict[str, Any]:
    return {"partition_index": index, "leader_id": leader, "replica_nodes": [1, 2, 3]}


def test_the_faults_pick_the_busiest_leader_and_the_controller_leader() -> None:
    known = Leadership(
        cluster={},
        quorum={"topics": [{"partitions": [{"leader_id": 3}]}]},
        topics=[
            {
                "name": "events",
                "partitions": [_partition(n, leader) for n, leader in enumerate((2, 2, 1))],
            },
            {"name": "__internal", "is_internal": True, "partitions": [_partition(0, 1)] * 5},
            {"name": "dlq", "partitions": [_partition(0, -1)]},  # no leader: counts for nobody
        ],
    )
    assert busiest_leader(known) == 2
    assert controller_leader(known) == 3
    assert dict(known.partitions_led()) == {2: 2, 1: 1}


def test_each_topology_has_its_own_faults() -> None:
    assert TOPOLOGY_FAULTS == {"single": FAULTS, "cluster": CLUSTER_FAULTS}
    assert set(CLUSTER_SHORT) <= set(CLUSTER_FAULTS)
    assert not set(FAULTS) & set(CLUSTER_FAULTS)


def test_of_leaders_leading_as_many_the_busiest_is_not_the_controller_leader() -> None:
    def known(controller: int) -> Leadership:
        return Leadership(
            cluster={},
            quorum={"topics": [{"partitions": [{"leader_id": controller}]}]},
            topics=[
                {
                    "name": "events",
                    "partitions": [_partition(n, leader) for n, leader in enumerate((1, 2, 3))],
                }
            ],
        )

    assert busiest_leader(known(controller=1)) == 2
    assert busiest_leader(known(controller=2)) == 1
