"""The three-node Kafka cluster (`python -m stack kafka up --topology cluster`, stack/topology.py)
losing the broker that leads the most partitions while the project's own producer sends.

The application's topics are made on it by `ensure_topics` with three replicas,
`min.insync.replicas=2` and no unclean election. The relay's producer (`Publishers`, acks=all,
idempotent) sends 5,000 records across the partitions in batches, as the relay does: flush,
confirm each send, send again what was not acknowledged and discard the producer after a failure.
Midway, with a batch in flight, the broker leading the most partitions is SIGKILLed. Every record
must end acknowledged, each at the partition and offset it was acknowledged at, none lost; a
record is in the topic twice only if one of its sends failed and was sent again (the relay's
duplicates, which the read model ignores). Then the node starts again and catches up.

The fixture starts the cluster (three JVMs, ~1 GiB) and stops it after, unless it was up already
(`make cluster-kafka`); `-m "not cluster"` leaves this out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from arena.messaging.kafka import admin_client, ensure_topics, topic_reader
from arena.messaging.publishers import Publishers
from arena.settings import Settings
from harness.waiting import wait_until
from stack.topology import application_env, cluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = cluster(ROOT)
RECORDS = 5000
BATCH = 250
KILL_AT = RECORDS // 2  # the batch starting here is in flight when the leader dies
PARTITIONS = 6
KEYS = 60  # arenas: spread over every partition
STACK_TIMEOUT_SECONDS = 300  # a cold start on a busy two-core machine
SEND_DEADLINE_SECONDS = 240  # every record acknowledged, failover included
CATCH_UP_SECONDS = 180  # the restarted node back in every partition's in-sync replicas


def _stack(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stack", "kafka", *command, "--topology", "cluster"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=STACK_TIMEOUT_SECONDS,
        check=False,
    )


def _must(*command: str) -> str:
    done = _stack(*command)
    assert done.returncode == 0, f"stack kafka {' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def cluster_settings(settings: Settings) -> Iterator[Settings]:
    """This run's settings, pointed at the three nodes (as `python -m stack kafka env` says)."""
    already_up = _stack("status").returncode == 0
    if not already_up:
        started = time.monotonic()
        _must("up")
        print(f"cluster up in {time.monotonic() - started:.1f}s")
    derived = Settings.from_env(os.environ | application_env(CLUSTER))
    ours = dataclasses.replace(
        settings,
        kafka_bootstrap_servers=derived.kafka_bootstrap_servers,
        kafka_replication_factor=derived.kafka_replication_factor,
        kafka_events_partitions=PARTITIONS,
    )
    try:
        yield ours
    finally:
        try:
            if already_up:
                _must("up")  # a node this module killed is back
            admin = admin_client(ours, "cluster-test-cleanup")
            try:
                admin.delete_topics([ours.kafka_events_topic, ours.kafka_dlq_topic])
            finally:
                admin.close()
        finally:
            if not already_up:
                _must("down")


def _partitions(settings: Settings, topic: str) -> list[dict[str, Any]]:
    admin = admin_client(settings, "cluster-test-describe")
    try:
        (described,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return sorted(described["partitions"], key=lambda p: p["partition_index"])


@dataclasses.dataclass
class Sent:
    acknowledged: dict[int, tuple[int, int]]  # record → (partition, offset) acknowledged
    resent: set[int]  # records sent more than once (a send not acknowledged)
    longest_batch_seconds: float  # the stall while the partitions' leadership moved


def _send_all(settings: Settings, victim: int) -> Sent:
    """Send every record as the relay does; kill `victim` (from another process, so that it
    dies while batches are in flight) once half of them are sent."""
    topic = settings.kafka_events_topic
    publishers = Publishers(settings)
    acknowledged: dict[int, tuple[int, int]] = {}
    resent: set[int] = set()
    waiting = list(range(RECORDS))
    killer: subprocess.Popen[str] | None = None
    longest = 0.0
    deadline = time.monotonic() + SEND_DEADLINE_SECONDS
    try:
        while waiting:
            assert time.monotonic() < deadline, f"{len(waiting)} record(s) never acknowledged"
            began = time.monotonic()
            batch, waiting = waiting[:BATCH], waiting[BATCH:]
            publisher = publishers.for_topic(topic)
            sent, failed = [], []
            for n in batch:
                try:
                    sent.append((n, publisher.publish(f"arena-{n % KEYS}", b"%d" % n, {})))
                except Exception:  # noqa: BLE001 - no metadata in time: this one again later
                    failed.append(n)
            if killer is None and batch[0] >= KILL_AT:
                kill = ["kill", str(victim), "--topology", "cluster"]
                killer = subprocess.Popen(
                    [sys.executable, "-m", "stack", "kafka", *kill], cwd=ROOT, text=True
                )
            with contextlib.suppress(Exception):  # an unflushed send fails its confirm below
                publisher.flush()
            for n, delivery in sent:
                try:
                    delivery.confirm()
                except Exception:  # noqa: BLE001 - not acknowledged: send it again
                    failed.append(n)
                    continue
                acknowledged[n] = (delivery.future.value.partition, delivery.future.value.offset)
            if failed:
                publishers.discard(topic)  # as the relay task does after a failed batch
                resent.update(failed)
                waiting = sorted(failed) + waiting
            longest = max(longest, time.monotonic() - began)
    finally:
        publishers.close()
    assert killer is not None and killer.wait(timeout=STACK_TIMEOUT_SECONDS) == 0
    return Sent(acknowledged, resent, longest)


def _read_back(settings: Settings) -> dict[tuple[int, int], int]:
    """Every record of the events topic: (partition, offset) → the record's number."""
    reader = topic_reader(settings, "cluster-test-reader")
    try:
        partitions = [TopicPartition(settings.kafka_events_topic, p) for p in range(PARTITIONS)]
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = reader.end_offsets(partitions)
        found: dict[tuple[int, int], int] = {}

        def at_the_end() -> bool:
            for records in reader.poll(timeout_ms=500).values():
                for record in records:
                    found[(record.partition, record.offset)] = int(record.value)
            return all(reader.position(p) >= end for p, end in ends.items())

        wait_until(at_the_end, deadline_seconds=120, interval=0, what="the topic read to its end")
        return found
    finally:
        reader.close()


def test_losing_the_busiest_leader_loses_no_acknowledged_record(
    cluster_settings: Settings,
) -> None:
    settings = cluster_settings
    ensure_topics(settings)
    ensure_topics(settings)  # the second time changes nothing
    topic = settings.kafka_events_topic
    partitions = _partitions(settings, topic)
    assert len(partitions) == PARTITIONS
    assert all(len(p["replica_nodes"]) == 3 and len(p["isr_nodes"]) == 3 for p in partitions)
    leaders = Counter(p["leader_id"] for p in partitions)
    assert len(leaders) == 3, f"the leaders do not spread over the brokers: {leaders}"
    admin = admin_client(settings, "cluster-test-configs")
    try:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    topic_configs = configs["topic"][topic]
    assert topic_configs["min.insync.replicas"]["value"] == "2"
    assert topic_configs["unclean.leader.election.enable"]["value"] == "false"
    victim, led = leaders.most_common(1)[0]

    started = time.monotonic()
    sent = _send_all(settings, victim)
    sending = time.monotonic() - started
    acknowledged, resent = sent.acknowledged, sent.resent
    stored = _read_back(settings)  # with the victim still down

    copies = Counter(stored.values())
    lost = [n for n, place in acknowledged.items() if stored.get(place) != n]
    duplicated = {n for n, count in copies.items() if count > 1}
    print(
        f"killed node {victim} (leader of {led} of {PARTITIONS} partitions); {RECORDS} records in"
        f" {sending:.1f}s (the longest batch {sent.longest_batch_seconds:.1f}s),"
        f" {len(resent)} sent again, {len(acknowledged)} acknowledged,"
        f" {len(stored)} stored, {len(duplicated)} stored twice, {len(lost)} lost"
    )
    assert sorted(acknowledged) == list(range(RECORDS))
    assert lost == []
    assert len(set(acknowledged.values())) == RECORDS  # one offset each
    assert set(copies) == set(range(RECORDS))  # nothing in the topic that was never sent
    assert duplicated <= resent
    assert {p for p, _ in acknowledged.values()} == set(range(PARTITIONS))
    moved = _partitions(settings, topic)
    assert all(p["leader_id"] != victim for p in moved)
    assert all(victim not in p["isr_nodes"] for p in moved)

    started = time.monotonic()
    _must("up")  # the killed node only; the others are up
    wait_until(
        lambda: all(len(p["isr_nodes"]) == 3 for p in _partitions(settings, topic)),
        deadline_seconds=CATCH_UP_SECONDS,
        interval=0.5,
        what=f"node {victim} back in every partition's in-sync replicas",
    )
    print(f"node {victim} back in sync {time.monotonic() - started:.1f}s after `up`")
