"""`python -m stack kafka describe`: who leads what, as kafka-python's admin client sees it.

The brokers, the KRaft quorum (its leader is the active controller; each voter's log end
offset shows how far behind it is), and each partition's leader, replicas and in-sync replicas,
with how many partitions each broker leads. The one part of the package that needs more than
the standard library: run it with the venv's Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from stack import host
from stack.topology import Topology


@dataclass(frozen=True)
class Leadership:
    """What the admin client says of the cluster, the KRaft quorum and the topics asked for."""

    cluster: dict[str, Any]
    quorum: dict[str, Any]
    topics: list[dict[str, Any]]

    @property
    def controller_leader(self) -> int:
        """The KRaft quorum's leader: the active controller."""
        return int(self.quorum["topics"][0]["partitions"][0]["leader_id"])

    def partitions_led(self) -> Counter[int]:
        """Partitions each broker leads, of the application's (not internal) topics."""
        led: Counter[int] = Counter()
        for topic in self.topics:
            if not topic.get("is_internal"):
                led.update(p["leader_id"] for p in topic["partitions"] if p["leader_id"] >= 0)
        return led


def leadership(stack: Topology, topics: Collection[str] = ()) -> Leadership:
    """Ask the nodes of `stack` who leads what (every topic unless `topics` are named)."""
    try:
        from kafka import KafkaAdminClient
    except ImportError as error:
        raise host.Failure(
            "kafka", "describe needs kafka-python: .venv/bin/python -m stack kafka describe"
        ) from error
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=stack.kafka.bootstrap_servers,
            client_id="stack-describe",
            request_timeout_ms=10_000,
        )
    except Exception as error:
        raise host.Failure("kafka", f"no node of {stack.name} answers: {error}") from error
    try:
        return Leadership(
            admin.describe_cluster(),
            admin.describe_metadata_quorum(),
            admin.describe_topics(list(topics) or None),
        )
    finally:
        admin.close()


def describe(stack: Topology, topics: Collection[str] = ()) -> str:
    known = leadership(stack, topics)
    return "\n".join(_lines(stack, known))


def _ids(nodes: Collection[int]) -> str:
    return ",".join(str(node) for node in sorted(nodes)) or "-"


def _lines(stack: Topology, known: Leadership) -> list[str]:
    cluster, quorum, described = known.cluster, known.quorum, known.topics
    lines = [f"topology {stack.name}, cluster id {cluster['cluster_id']}"]
    brokers = ", ".join(
        f"{b['broker_id']}@{b['host']}:{b['port']}" + (" (fenced)" if b.get("is_fenced") else "")
        for b in sorted(cluster["brokers"], key=lambda b: b["broker_id"])
    )
    lines.append(f"brokers: {brokers}")
    metadata = quorum["topics"][0]["partitions"][0]
    voters = ", ".join(
        f"{v['replica_id']} (log end {v['log_end_offset']})" for v in metadata["current_voters"]
    )
    lines.append(
        f"KRaft quorum: leader (active controller) {metadata['leader_id']}, "
        f"epoch {metadata['leader_epoch']}, voters {voters}"
    )
    table = [("topic", "partition", "leader", "replicas", "isr")]
    for topic in sorted(described, key=lambda t: t["name"]):
        for partition in sorted(topic["partitions"], key=lambda p: p["partition_index"]):
            leader = partition["leader_id"]
            under = set(partition["replica_nodes"]) - set(partition["isr_nodes"])
            table.append(
                (
                    topic["name"],
                    str(partition["partition_index"]),
                    str(leader) if leader >= 0 else "none",
                    _ids(partition["replica_nodes"]),
                    _ids(partition["isr_nodes"])
                    + (f"  (out of sync: {_ids(under)})" if under else ""),
                )
            )
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in table
    ]
    led = sorted(known.partitions_led().items())
    lines.append(
        "partitions led (topics of the application): "
        + (", ".join(f"{node}: {count}" for node, count in led) or "none")
    )
    return lines
