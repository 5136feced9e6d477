"""The consumer loop on the real broker: it dispatches each record and commits only after."""

from __future__ import annotations

import json
import uuid

import pytest
from kafka import KafkaProducer

from arena.messaging.consumer import consume
from arena.messaging.kafka import events_consumer
from arena.messaging.records import ReceivedRecord
from arena.settings import Settings

pytestmark = pytest.mark.integration


def _produce(settings: Settings, key: str, count: int) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    for n in range(count):
        producer.send(
            settings.kafka_events_topic, key=key.encode(), value=json.dumps({"n": n}).encode()
        )
    producer.flush()
    producer.close()


def _consume_until(settings: Settings, key: str, count: int) -> list[ReceivedRecord]:
    """Run the real loop in a group of our own until `count` records with `key` were dispatched."""
    ours: list[ReceivedRecord] = []

    def dispatch(events: list[ReceivedRecord]) -> None:
        ours.extend(event for event in events if event.key == key)

    consume(events_consumer(settings), dispatch, lambda: len(ours) >= count)
    return ours


def test_records_are_dispatched_in_order_and_offsets_committed(
    settings: Settings, kafka_topics: None
) -> None:
    group_settings = Settings.from_env(
        settings.to_env() | {"KAFKA_CONSUMER_GROUP": f"consumer-test-{uuid.uuid4().hex[:8]}"}
    )
    key = str(uuid.uuid4())
    _produce(group_settings, key, 5)

    first = _consume_until(group_settings, key, 5)
    assert [json.loads(event.value)["n"] for event in first] == [0, 1, 2, 3, 4]
    assert len({event.partition for event in first}) == 1
    assert [event.offset for event in first] == sorted(event.offset for event in first)

    # The group committed past those records: a restarted member only sees new ones.
    _produce(group_settings, key, 1)
    second = _consume_until(group_settings, key, 1)
    assert [json.loads(event.value)["n"] for event in second] == [0]
    assert second[0].offset > first[-1].offset
