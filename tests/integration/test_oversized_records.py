"""A record too large for any broker message, on the real stack (issue 23, item 4): `flask
consume`'s dispatcher sends nothing to RabbitMQ, dead-letters it to the DLQ topic with its reason
and stalls its arena in the read model, and the consumer goes on (the dispatch answers)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from kafka import KafkaConsumer

from arena.bootstrap import components
from arena.cli.consume import dead_letter_via
from arena.messaging.dispatch import MESSAGE_OVERHEAD_BYTES, ProjectionDispatcher
from arena.messaging.records import ReceivedRecord
from arena.settings import Settings
from harness.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def dlq(settings: Settings, kafka_topics: None) -> Iterator[KafkaConsumer]:
    consumer = KafkaConsumer(
        settings.kafka_dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    yield consumer
    consumer.close()


def _dead_letters(consumer: KafkaConsumer, key: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        for records in consumer.poll(timeout_ms=200).values():
            found.extend(json.loads(r.value) for r in records if r.key and r.key.decode() == key)
        return bool(found)

    wait_until(arrived, deadline_seconds=20, what=f"a DLQ record keyed {key}")
    return found


def test_a_record_too_large_for_the_broker_is_dead_lettered_not_sent(
    app: Flask, settings: Settings, dlq: KafkaConsumer
) -> None:
    arena_id = str(uuid.uuid4())
    envelope = {
        "eventId": str(uuid.uuid4()),
        "eventType": "ArenaCreated",
        "aggregateId": arena_id,
        "aggregateVersion": 1,
        "padding": "x" * 100_000,
    }
    record = ReceivedRecord(json.dumps(envelope), arena_id, settings.kafka_events_topic, 0, 41)
    small = ReceivedRecord('{"next": 2}', arena_id, settings.kafka_events_topic, 0, 42)
    with app.app_context():
        parts = components()
        sent: list[str] = []

        class RabbitMQ:
            """The app's Celery, writing down what it sends."""

            def send_task(self, name: str, *, args: list[Any], task_id: str) -> object:
                sent.append(task_id)
                return parts.celery.send_task(name, args=args, task_id=task_id)

        dispatch = ProjectionDispatcher(
            RabbitMQ(),
            threading.Event(),
            dead_letter_via(parts),
            max_message_bytes=MESSAGE_OVERHEAD_BYTES + 50_000,  # a broker that takes 50 kB
        )

        assert dispatch([record]) is None  # its lane is free at once: nothing runs for it
        assert sent == []
        assert dispatch([small]) == sent[0]  # the next record goes on, confirmed by RabbitMQ
        [stall] = [s for s in parts.views.stalls() if s.arena_id == arena_id]
        assert stall.stalled_at_version == 1
        assert "TooLargeForBroker" in stall.reason
        assert parts.views.parked(arena_id) == [(record.value, 1)]
    [dead] = _dead_letters(dlq, arena_id)
    assert dead["errorClass"] == "TooLargeForBroker"
    assert "BROKER_MAX_MESSAGE_BYTES" in dead["errorMessage"]
    assert (dead["originalPartition"], dead["originalOffset"]) == (0, 41)
    assert dead["value"] == record.value
