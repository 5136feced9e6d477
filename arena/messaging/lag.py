"""How far the projection consumer group trails the events topic, and what the DLQ holds."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from arena.messaging.kafka import admin_client
from arena.settings import Settings

PartitionLag = dict[str, int | None]


@dataclass(frozen=True, slots=True)
class KafkaFigures:
    lag_by_partition: dict[str, PartitionLag]  # partition number → endOffset, committedOffset, lag
    dead_letters: int  # records the DLQ topic holds (what retention has not yet removed)


class KafkaOffsets:
    """One admin client per process for the pipeline's Kafka figures.

    Made on first use and kept, so a call costs a few requests on open connections; dropped after
    any failure, so the next call bootstraps afresh. Every request gives up within `timeout_ms`.
    Calls are serialised: the client is not meant for several threads at once.
    """

    def __init__(self, settings: Settings, timeout_ms: int) -> None:
        self._settings = settings
        self._timeout_ms = timeout_ms
        self._admin: KafkaAdminClient | None = None
        self._lock = threading.Lock()

    def figures(self) -> KafkaFigures:
        """The group's lag per partition and the DLQ's size; raises if Kafka does not answer."""
        with self._lock:
            if self._admin is None:
                self._admin = admin_client(self._settings, "arena-metrics", self._timeout_ms)
            try:
                return _figures(self._admin, self._settings)
            except Exception:
                self._drop()
                raise

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._admin is not None:
            admin, self._admin = self._admin, None
            admin.close()


def _figures(admin: KafkaAdminClient, settings: Settings) -> KafkaFigures:
    events, dlq = settings.kafka_events_topic, settings.kafka_dlq_topic
    partitions = _partitions(admin, [events, dlq])
    ends = _offsets(admin, partitions, OffsetSpec.LATEST)
    dlq_partitions = [partition for partition in partitions if partition.topic == dlq]
    starts = _offsets(admin, dlq_partitions, OffsetSpec.EARLIEST)
    event_partitions = [partition for partition in partitions if partition.topic == events]
    group = settings.kafka_consumer_group
    committed = (
        admin.list_group_offsets({group: event_partitions}).get(group, {})
        if event_partitions
        else {}
    )
    lag: dict[str, PartitionLag] = {}
    for partition in event_partitions:
        offset = committed[partition].offset if partition in committed else None
        end = ends[partition]
        lag[str(partition.partition)] = {
            "endOffset": end,
            "committedOffset": offset,
            "lag": end - (offset if offset is not None and offset >= 0 else 0),
        }
    dead = sum(ends[partition] - starts[partition] for partition in dlq_partitions)
    return KafkaFigures(lag_by_partition=lag, dead_letters=dead)


def _partitions(admin: KafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """The topics' partitions; a topic not made yet has none (the broker answers, not raises)."""
    return [
        TopicPartition(topic["name"], partition["partition_index"])
        for topic in admin.describe_topics(topics)
        for partition in sorted(topic["partitions"], key=lambda p: p["partition_index"])
    ]


def _offsets(
    admin: KafkaAdminClient, partitions: list[TopicPartition], spec: OffsetSpec
) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    found = admin.list_partition_offsets({partition: spec for partition in partitions})
    return {partition: found[partition].offset for partition in partitions}
