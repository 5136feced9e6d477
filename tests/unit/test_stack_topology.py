"""The topologies of stack/topology.py and what is derived from them: every Kafka node's
server.properties, and the settings the application needs to reach them."""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.messaging.kafka import KAFKA_TIMEOUT_MS, min_insync_replicas, topic_config
from arena.settings import Settings
from stack.kafka_properties import render, server_properties
from stack.topology import (
    TOPOLOGIES,
    KafkaTopology,
    application_env,
    cluster,
    majority,
    single,
    topology,
)

ROOT = Path("/checkout")


def _properties(kafka: KafkaTopology) -> dict[int, dict[str, str]]:
    return {node.node_id: server_properties(kafka, node) for node in kafka.nodes}


def test_the_single_node_is_where_services_sh_always_ran_it() -> None:
    (node,) = single(ROOT).kafka.nodes

    assert (node.name, node.port, node.controller_port) == ("kafka", 9092, 9093)
    assert node.properties_file == ROOT / "var/kafka/server.properties"
    assert node.data_dir == ROOT / "var/kafka/data"
    assert node.pid_file == ROOT / "var/run/kafka.pid"
    assert node.log_file == ROOT / "var/log/kafka.log"
    assert node.log_dir == ROOT / "var/log/kafka"


def test_kafka_port_moves_the_single_node_and_its_controller() -> None:
    (node,) = topology("single", ROOT, kafka_port=29092).kafka.nodes

    assert (node.port, node.controller_port) == (29092, 29093)


def test_the_cluster_has_three_nodes_under_var_cluster_sharing_the_jars() -> None:
    kafka = cluster(ROOT).kafka

    assert [node.node_id for node in kafka.nodes] == [1, 2, 3]
    assert [node.name for node in kafka.nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert all(node.home.is_relative_to(ROOT / "var/cluster") for node in kafka.nodes)
    assert all(node.pid_file.is_relative_to(ROOT / "var/cluster") for node in kafka.nodes)
    assert kafka.lib_dir == single(ROOT).kafka.lib_dir == ROOT / "var/kafka/lib"
    assert len({node.home for node in kafka.nodes}) == 3
    assert len({node.log_dir for node in kafka.nodes}) == 3
    assert kafka.cluster_id_file != single(ROOT).kafka.cluster_id_file


def test_every_port_of_both_topologies_is_distinct() -> None:
    ports = [
        port
        for name in TOPOLOGIES
        for node in topology(name, ROOT).kafka.nodes
        for port in (node.port, node.controller_port)
    ]

    assert len(ports) == len(set(ports)) == 8


def test_each_cluster_node_names_the_whole_quorum_and_listens_on_its_own_ports() -> None:
    kafka = cluster(ROOT).kafka
    voters = "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"

    for node_id, properties in _properties(kafka).items():
        node = kafka.node(node_id)
        assert properties["node.id"] == str(node_id)
        assert properties["process.roles"] == "broker,controller"
        assert properties["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in properties
        assert properties["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
        )
        assert properties["log.dirs"] == str(node.data_dir)


def test_the_single_node_is_its_own_quorum() -> None:
    (properties,) = _properties(single(ROOT).kafka).values()

    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert "controller.quorum.voters" not in properties
    assert single(ROOT).kafka.standalone and not cluster(ROOT).kafka.standalone


@pytest.mark.parametrize(
    ("name", "replicas", "insync", "internal_partitions"),
    [("single", "1", "1", "1"), ("cluster", "3", "2", "3")],
)
def test_topics_internal_ones_too_get_a_replica_per_node_and_a_majority_in_sync(
    name: str, replicas: str, insync: str, internal_partitions: str
) -> None:
    for properties in _properties(topology(name, ROOT).kafka).values():
        assert properties["default.replication.factor"] == replicas
        assert properties["min.insync.replicas"] == insync
        assert properties["unclean.leader.election.enable"] == "false"
        assert properties["offsets.topic.replication.factor"] == replicas
        assert properties["offsets.topic.num.partitions"] == internal_partitions
        assert properties["transaction.state.log.replication.factor"] == replicas
        assert properties["transaction.state.log.min.isr"] == insync
        assert properties["share.coordinator.state.topic.replication.factor"] == replicas
        assert properties["share.coordinator.state.topic.min.isr"] == insync
        assert properties["auto.create.topics.enable"] == "false"


def test_the_cluster_nodes_are_lean() -> None:
    kafka = cluster(ROOT).kafka

    assert kafka.heap == ("-Xms256m", "-Xmx256m")
    assert "-XX:ParallelGCThreads=1" in kafka.jvm_options
    for properties in _properties(kafka).values():
        assert int(properties["num.io.threads"]) <= 2
        assert int(properties["num.network.threads"]) <= 2


def test_the_rendered_file_holds_every_property_once() -> None:
    kafka = cluster(ROOT).kafka
    node = kafka.node("kafka-2")

    lines = [line for line in render(kafka, node).splitlines() if line and line[0] != "#"]

    assert dict(line.split("=", 1) for line in lines) == server_properties(kafka, node)
    assert len(lines) == len(server_properties(kafka, node))


def test_a_node_is_found_by_id_or_name_and_an_unknown_one_is_refused() -> None:
    kafka = cluster(ROOT).kafka

    assert kafka.node(2) == kafka.node("2") == kafka.node("kafka-2")
    with pytest.raises(KeyError, match="kafka-1"):
        kafka.node("kafka-4")
    with pytest.raises(KeyError):
        topology("galaxy", ROOT)


def test_the_application_bootstraps_from_every_node_with_their_replication() -> None:
    settings = Settings.from_env(application_env(cluster(ROOT)))

    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert settings.kafka_replication_factor == 3
    assert topic_config(settings.kafka_replication_factor)["min.insync.replicas"] == "2"


def test_the_single_topology_gives_the_applications_defaults() -> None:
    derived = Settings.from_env(application_env(single(ROOT)))
    defaults = Settings.from_env({})

    assert derived.kafka_bootstrap_servers == defaults.kafka_bootstrap_servers
    assert derived.kafka_replication_factor == defaults.kafka_replication_factor == 1


@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 5])
def test_the_brokers_and_the_application_agree_on_the_majority(replicas: int) -> None:
    assert majority(replicas) == min_insync_replicas(replicas)
    assert majority(replicas) > replicas / 2


def test_the_application_topics_never_elect_a_replica_that_fell_behind() -> None:
    assert topic_config(3)["unclean.leader.election.enable"] == "false"
    assert topic_config(1)["min.insync.replicas"] == "1"


def test_a_dead_node_is_fenced_before_the_relays_sends_in_flight_time_out() -> None:
    """The relay's producer gives a record 2 x KAFKA_TIMEOUT_MS to be acknowledged; leadership
    must have moved by then, or every send in flight at a node's death is sent again."""
    for properties in _properties(cluster(ROOT).kafka).values():
        assert int(properties["broker.session.timeout.ms"]) + 2000 < 2 * KAFKA_TIMEOUT_MS
