"""How far the projection consumer group trails the events topic, per partition."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from arena.config import Settings
from arena.messaging.kafka import KAFKA_TIMEOUT_MS


def consumer_lag(settings: Settings) -> dict[str, dict[str, int | None]]:
    """Per partition: end offset, the group's committed offset, and the lag between them."""
    admin = KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="arena-metrics",
        bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="arena-metrics",
        group_id=None,
        request_timeout_ms=KAFKA_TIMEOUT_MS,
    )
    try:
        topic = settings.kafka_events_topic
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
        group = settings.kafka_consumer_group
        committed = admin.list_group_offsets({group: partitions}).get(group, {})
    finally:
        consumer.close()
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
