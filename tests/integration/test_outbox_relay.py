"""The outbox relay publishes committed events to the real Kafka topic, keyed by arena id."""

from __future__ import annotations

import json

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from kafka import KafkaConsumer

from arena.config import Settings
from arena.extensions import db
from arena.messaging.publishers import publisher_for
from arena.outbox.relay import RelayPolicy, relay_pending
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


def _read_topic(settings: Settings, wanted_keys: set[str]) -> dict[str, list]:
    """Read the events topic from the start until every wanted key was seen."""
    consumer = KafkaConsumer(
        settings.kafka_events_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    seen: dict[str, list] = {}

    def poll_all_wanted() -> bool:
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                seen.setdefault(record.key.decode(), []).append(record)
        return wanted_keys <= set(seen)

    try:
        wait_until(poll_all_wanted, deadline_seconds=20, what="the relayed events on Kafka")
    finally:
        consumer.close()
    return seen


def test_relay_publishes_pending_rows_and_marks_them_published(
    app: Flask, client: FlaskClient, sql: psycopg.Connection, settings: Settings, kafka_topics: None
) -> None:
    arena_ids = [
        client.post("/api/v1/arenas", json={"name": f"Relay {n}", "displayName": "Ada"}).get_json()[
            "id"
        ]
        for n in range(3)
    ]

    with app.app_context():
        publisher = publisher_for(settings, settings.kafka_events_topic)
        policy = RelayPolicy.from_settings(settings)
        assert relay_pending(db.session, lambda: publisher, policy).published >= 3
        assert relay_pending(db.session, lambda: publisher, policy).published == 0

    pending = sql.execute(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY(%s::uuid[]) AND published_at IS NULL",
        (arena_ids,),
    ).fetchone()
    assert pending == (0,)

    records = _read_topic(settings, set(arena_ids))
    for arena_id in arena_ids:
        (record,) = records[arena_id]
        envelope = json.loads(record.value)
        (stored,) = sql.execute(
            "SELECT envelope FROM outbox WHERE aggregate_id = %s", (arena_id,)
        ).fetchone()
        assert envelope == stored
        headers = {name: value.decode() for name, value in record.headers}
        assert headers == {
            "eventType": "ArenaCreated",
            "eventId": envelope["eventId"],
            "schemaVersion": "1",
            "correlationId": envelope["correlationId"],
        }
