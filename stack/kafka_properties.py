"""Each Kafka node's server.properties, derived from its topology and nothing else.

One node of `single` is its own controller quorum (`controller.quorum.bootstrap.servers`, its
storage formatted `--standalone`); the nodes of `cluster` share a static quorum of three
(`controller.quorum.voters`). Topics, the internal ones included, get one replica per node, and a
write is acknowledged once a majority holds it (`min.insync.replicas`: 1 alone, 2 of 3); a
replica that fell behind never becomes leader (no unclean election), so an acknowledged write is
never dropped by a failover.
"""

from __future__ import annotations

from stack.topology import KafkaNode, KafkaTopology

HEADER = (
    "# Written by stack/kafka_properties.py at each start (python -m stack kafka up); edit that,\n"
    "# not this file.\n"
)


def server_properties(kafka: KafkaTopology, node: KafkaNode) -> dict[str, str]:
    """`node`'s settings, in the order they are written."""
    if node not in kafka.nodes:
        raise ValueError(f"{node.name} is not a node of {kafka.name}")
    replicas, insync = str(kafka.replication_factor), str(kafka.min_insync_replicas)
    # Internal topics: a partition per node (one alone starts fast; several spread coordinators).
    internal_partitions = str(len(kafka.nodes))
    quorum = (
        {"controller.quorum.bootstrap.servers": node.controller_address}
        if kafka.standalone
        else {"controller.quorum.voters": kafka.quorum_voters}
    )
    listeners = f"PLAINTEXT://{node.address},CONTROLLER://{node.controller_address}"
    return {
        # One process is both broker and controller, on loopback only.
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        **quorum,
        "listeners": listeners,
        "advertised.listeners": listeners,
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        # Absolute data directory (the metadata log included).
        "log.dirs": str(node.data_dir),
        # Replication: topics (the application sets its own on its topics too) and internal ones.
        "default.replication.factor": replicas,
        "min.insync.replicas": insync,
        "unclean.leader.election.enable": "false",
        "num.partitions": "1",
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": internal_partitions,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": insync,
        "transaction.state.log.num.partitions": internal_partitions,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": insync,
        "broker.session.timeout.ms": str(kafka.broker_session_timeout_ms),
        # Consumers join at once instead of waiting 3 s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # The application creates its topics itself (with their own settings).
        "auto.create.topics.enable": "false",
        # Keep events forever unless a topic says otherwise.
        "log.retention.ms": "-1",
        # Small machine (2 cores), perhaps shared by three nodes.
        "num.network.threads": str(kafka.network_threads),
        "num.io.threads": str(kafka.io_threads),
        "num.recovery.threads.per.data.dir": "1",
        "num.replica.fetchers": "1",
    }


def render(kafka: KafkaTopology, node: KafkaNode) -> str:
    """The text of `node`'s server.properties."""
    lines = [f"{key}={value}" for key, value in server_properties(kafka, node).items()]
    title = f"# Kafka node {node.node_id} of topology {kafka.name} ({len(kafka.nodes)} node(s)).\n"
    return title + HEADER + "\n" + "\n".join(lines) + "\n"
