"""`python -m stack kafka describe`: who leads what, as kafka-python's admin client sees it.

The brokers, the KRaft quorum (its leader is the active controller; each voter's log end
offset shows how far behind it is), and each partition's leader, replicas and in-sync replicas,
with how many partitions each broker leads. The one part of the package that needs more than
the standard library: run it with the venv's Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from stack import host
from stack.topology import Topology


def describe(stack: Topology, topics: Collection[str] = ()) -> str:
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
        cluster: dict[str, Any] = admin.describe_cluster()
        quorum: dict[str, Any] = admin.describe_metadata_quorum()
        described: list[dict[str, Any]] = admin.describe_topics(list(topics) or None)
    finally:
        admin.close()
    return "\n".join(_lines(stack, cluster, quorum, described))


def _ids(nodes: Collection[int]) -> str:
    return ",".join(str(node) for node in sorted(nodes)) or "-"


def _lines(
    stack: Topology,
    cluster: dict[str, Any],
    quorum: dict[str, Any],
    described: list[dict[str, Any]],
) -> list[str]:
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
    led: Counter[int] = Counter()
    table = [("topic", "partition", "leader", "replicas", "isr")]
    for topic in sorted(described, key=lambda t: t["name"]):
        internal = bool(topic.get("is_internal"))
        for partition in sorted(topic["partitions"], key=lambda p: p["partition_index"]):
            leader = partition["leader_id"]
            if not internal:
                led[leader] += 1
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
    lines.append(
        "partitions led (topics of the application): "
        + (", ".join(f"{node}: {count}" for node, count in sorted(led.items())) or "none")
    )
    return lines
