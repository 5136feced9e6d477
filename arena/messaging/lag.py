"""How far the projection consumer group trails the events topic, and what the DLQ holds."""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaAdminClient, TopicPartition
from kafka.admin import OffsetSpec

from arena.messaging.kafka import admin_client
from arena.messaging.kept import Kept
from arena.settings import Settings

PartitionLag = dict[str, int | None]


@dataclass(frozen=True, slots=True)
class KafkaFigures:
    lag_by_partition: dict[str, PartitionLag]  # partition number → endOffset, committedOffset, lag
    dead_letters: int  # records the DLQ topic holds (what retention has not yet removed)


class KafkaOffsets:
    """One admin client per process for the pipeline's Kafka figures (`Kept`), so a call costs
    a few requests on open connections. Every request gives up within `timeout_ms`."""

    def __init__(self, settings: Settings, timeout_ms: int) -> None:
        self._settings = settings
        self._admin = Kept(
            lambda: admin_client(settings, "arena-pipeline", timeout_ms), KafkaAdminClient.close
        )

    def figures(self) -> KafkaFigures:
        """The group's lag per partition and the DLQ's size; raises if Kafka does not answer."""
        return self._admin.use(lambda admin: _figures(admin, self._settings))

    def close(self) -> None:
        self._admin.close()


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
