"""How far the projection consumer group trails the events topic, per partition."""

from __future__ import annotations

from arena.messaging.kafka import admin_client, topic_partitions, topic_reader
from arena.settings import Settings


def dead_letters(settings: Settings) -> int:
    """How many records the DLQ topic holds (what retention has not yet removed)."""
    reader = topic_reader(settings, "arena-metrics")
    try:
        partitions = topic_partitions(reader, settings.kafka_dlq_topic)
        if not partitions:
            return 0
        ends = reader.end_offsets(partitions)
        starts = reader.beginning_offsets(partitions)
    finally:
        reader.close()
    return sum(ends[partition] - starts[partition] for partition in partitions)


def consumer_lag(settings: Settings) -> dict[str, dict[str, int | None]]:
    """Per partition: end offset, the group's committed offset, and the lag between them."""
    admin = admin_client(settings, "arena-metrics")
    reader = topic_reader(settings, "arena-metrics")
    try:
        partitions = topic_partitions(reader, settings.kafka_events_topic)
        ends = reader.end_offsets(partitions)
        group = settings.kafka_consumer_group
        committed = admin.list_group_offsets({group: partitions}).get(group, {})
    finally:
        reader.close()
        admin.close()
    lag: dict[str, dict[str, int | None]] = {}
    for partition in partitions:
        offset = committed[partition].offset if partition in committed else None
        end = ends[partition]
        lag[str(partition.partition)] = {
            "endOffset": end,
            "committedOffset": offset,
            "lag": end - (offset if offset is not None and offset >= 0 else 0),
        }
    return lag
