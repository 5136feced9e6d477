"""Kafka clients built from `Settings`: topic set-up, the event publisher, the consumer."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
)
from kafka.producer.future import FutureRecordMetadata
from kafka.serializer import Serializer

from arena.messaging.ports import MessageRejected
from arena.settings import Settings

log = logging.getLogger(__name__)

KAFKA_TIMEOUT_MS = 5000
SEND_TIMEOUT_SECONDS = 2 * KAFKA_TIMEOUT_MS / 1000
RECONNECT_BACKOFF_MAX_MS = 2000
PRODUCER_BATCH_BYTES = 1024 * 1024
# How the relay's producer sends, chosen by measurement (docs/benchmarks.md): every record
# acknowledged by all in-sync replicas, no duplicates on retry, lz4 and large batches (half the
# producer's CPU per record against the defaults), no client-side metrics.
THROUGHPUT_PRODUCER_OPTIONS: dict[str, object] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "compression_type": "lz4",
    "batch_size": PRODUCER_BATCH_BYTES,
    "metrics_enabled": False,
}
# The largest event (or DLQ record) the pipeline carries: a snapshot of a 512 x 512 board can pass
# Kafka's default of 1 MiB (docs/simulation.md). Producer, topics and consumers all allow this
# much; a bigger event is held in the outbox as too large.
MAX_EVENT_BYTES = 8 * 1024 * 1024
# Events are the source of truth for rebuilding the read model: keep them forever.
EVENTS_TOPIC_CONFIG = {
    "retention.ms": "-1",
    "cleanup.policy": "delete",
    "max.message.bytes": str(MAX_EVENT_BYTES),
}


def admin_client(
    settings: Settings, client_id: str, timeout_ms: int = KAFKA_TIMEOUT_MS
) -> KafkaAdminClient:
    """An admin client that gives up within `timeout_ms` when no broker answers.

    When it gives up, kafka-python leaves the client's IO thread running (its close() passes over
    a client whose __init__ did not finish): closed here, or each try while Kafka is away would
    leave a thread behind.
    """
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=client_id,
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
    except Exception:
        if hasattr(admin, "_net"):  # started its IO thread, then failed to bootstrap
            admin._closed = False
            admin.close()
        raise
    return admin


def topic_reader(settings: Settings, client_id: str) -> KafkaConsumer:
    """A consumer outside any group, for reading a topic at chosen offsets."""
    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=KAFKA_TIMEOUT_MS,
        max_partition_fetch_bytes=MAX_EVENT_BYTES,
    )


def topic_partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


def min_insync_replicas(replicas: int) -> int:
    """How many copies hold a record before the broker acknowledges it (acks=all): a majority, so
    that with 3 replicas one broker may be lost and every acknowledged record is still on another
    (1 of 1, 2 of 3). The brokers of stack/topology.py default to the same."""
    return replicas // 2 + 1


def topic_config(replicas: int) -> dict[str, str]:
    """The events and DLQ topics' settings, for a topic with `replicas` copies of each partition.
    A replica that fell behind never becomes leader (no unclean election): a failover may refuse
    writes for a moment, never drop acknowledged ones."""
    return {
        **EVENTS_TOPIC_CONFIG,
        "min.insync.replicas": str(min_insync_replicas(replicas)),
        "unclean.leader.election.enable": "false",
    }


def ensure_topics(settings: Settings) -> None:
    """Create the events and DLQ topics if missing (the broker does not auto-create them), with
    KAFKA_REPLICATION_FACTOR copies of each partition; set the settings of those that exist.

    Kafka never changes an existing topic's replication by itself: one made with fewer copies
    keeps them (a warning says so; reassign its partitions to add copies), and gets the
    `min.insync.replicas` its own copies allow, so that it stays writable."""
    replicas = settings.kafka_replication_factor
    partitions = {settings.kafka_events_topic: settings.kafka_events_partitions}
    partitions[settings.kafka_dlq_topic] = 1
    admin = admin_client(settings, "arena-admin")
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, count, replicas, topic_configs=topic_config(replicas))
            for name, count in partitions.items()
            if name not in existing
        ]
        if missing:
            # Another process may create them between our look and our request.
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
            log.info(
                "created Kafka topic(s) %s with %d replica(s) each",
                ", ".join(topic.name for topic in missing),
                replicas,
            )
        older = [name for name in partitions if name in existing]
        if older:  # made by an earlier version, perhaps with a smaller message limit
            copies = _replicas(admin, older)
            for name in older:
                if copies.get(name, replicas) != replicas:
                    log.warning(
                        "Kafka topic %s has %d replica(s), KAFKA_REPLICATION_FACTOR asks for %d:"
                        " Kafka keeps a topic's replication; reassign its partitions to change it",
                        name,
                        copies[name],
                        replicas,
                    )
            admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC,
                        name,
                        configs=topic_config(copies[name])
                        if name in copies
                        else EVENTS_TOPIC_CONFIG,
                    )
                    for name in older
                ]
            )
    finally:
        admin.close()


def _replicas(admin: KafkaAdminClient, topics: list[str]) -> dict[str, int]:
    """Each topic's replication factor, as its partitions' replica lists say (absent when the
    broker told none)."""
    found = {}
    for topic in admin.describe_topics(topics):
        copies = [len(partition["replica_nodes"]) for partition in topic["partitions"]]
        if copies and min(copies) > 0:
            found[topic["name"]] = min(copies)
    return found


def kafka_reachable(settings: Settings, timeout_seconds: float = 2.0) -> bool:
    """True when a broker answers a metadata request within the timeout."""
    try:
        admin = admin_client(settings, "arena-readiness", int(timeout_seconds * 1000))
    except Exception:  # noqa: BLE001 - any failure to connect means "not reachable"
        return False
    try:
        admin.list_topics()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
    finally:
        admin.close()


class TextSerializer(Serializer):
    def serialize(self, topic: str, headers: object, value: str) -> bytes:
        return value.encode()


@dataclass(frozen=True, slots=True)
class KafkaDelivery:
    future: FutureRecordMetadata

    def confirm(self) -> None:
        if not self.future.is_done:
            raise KafkaTimeoutError("not acknowledged by the broker in time")
        self.future.get()  # done: returns, or raises the send's KafkaError


class KafkaPublisher:
    """Idempotent, acks=all producer of encoded values (the outbox's stored envelopes).

    The arena id is the key, so each arena's events stay in one partition, in order.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        self._topic = topic
        self._producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id="arena-outbox-relay",
            **THROUGHPUT_PRODUCER_OPTIONS,
            max_request_size=MAX_EVENT_BYTES,
            # Fail a send within seconds when the broker is away: the relay backs the rows off.
            max_block_ms=KAFKA_TIMEOUT_MS,
            request_timeout_ms=KAFKA_TIMEOUT_MS,
            delivery_timeout_ms=2 * KAFKA_TIMEOUT_MS,
            bootstrap_timeout_ms=KAFKA_TIMEOUT_MS,
            # Reconnect within seconds once the broker is back (the default backs off to 30 s).
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            key_serializer=TextSerializer(),
        )

    def publish(self, key: str, value: bytes, headers: dict[str, str]) -> KafkaDelivery:
        encoded_headers = [(name, text.encode()) for name, text in headers.items()]
        try:
            future = self._producer.send(self._topic, key=key, value=value, headers=encoded_headers)
        except (MessageSizeTooLargeError, ValueError, TypeError) as error:
            raise MessageRejected(f"{type(error).__name__}: {error}") from error
        return KafkaDelivery(future)

    def flush(self) -> None:
        self._producer.flush(timeout=SEND_TIMEOUT_SECONDS)

    def close(self, timeout_seconds: float = SEND_TIMEOUT_SECONDS) -> None:
        self._producer.close(timeout=timeout_seconds)


def events_consumer(settings: Settings) -> KafkaConsumer:
    """A group member that commits offsets itself, only after its records were handed on."""
    return KafkaConsumer(
        settings.kafka_events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.kafka_consumer_group,
        client_id="arena-projection-consumer",
        enable_auto_commit=False,
        # A member that died holds its partitions until this runs out (Kafka's default, 45 s, is
        # that long a pause of every projection after a crash); heartbeats go every third of it.
        session_timeout_ms=int(settings.kafka_session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(settings.kafka_session_timeout_seconds * 1000 / 3),
        reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_EVENT_BYTES,
        metrics_enabled=False,
    )
