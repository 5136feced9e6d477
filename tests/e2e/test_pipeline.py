"""End to end: API → PostgreSQL outbox → beat-driven relay → Kafka → consumer → Celery → Redis."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from flask.testing import FlaskClient
from kafka import KafkaConsumer, KafkaProducer

from arena.settings import Settings
from harness.waiting import wait_until
from tests.e2e.conftest import Pipeline

pytestmark = pytest.mark.e2e

# Covers process start-up (worker, beat and the consumer joining its group) on 2 cores.
PIPELINE_DEADLINE_SECONDS = 60


def _create_arena(client: FlaskClient, name: str) -> str:
    response = client.post("/api/v1/arenas", json={"name": name, "displayName": "Ada"})
    assert response.status_code == 201
    return response.get_json()["id"]


def _wait_for_view(client: FlaskClient, arena_id: str, pipeline: Pipeline) -> dict:
    def view() -> dict | None:
        pipeline.assert_running()
        response = client.get(f"/api/v1/arenas/{arena_id}")
        return response.get_json() if response.status_code == 200 else None

    return wait_until(
        view,
        deadline_seconds=PIPELINE_DEADLINE_SECONDS,
        what=f"arena {arena_id} in the read model (process logs in {pipeline.logs})",
    )


def test_a_posted_arena_becomes_readable_through_the_whole_pipeline(
    client: FlaskClient, sql: psycopg.Connection, pipeline: Pipeline
) -> None:
    arena_id = _create_arena(client, "End to end")

    view = _wait_for_view(client, arena_id, pipeline)

    assert view["id"] == arena_id
    assert view["name"] == "End to end"
    assert view["status"] == "PENDING"
    assert view["version"] == 1
    assert [player["displayName"] for player in view["players"]] == ["Ada"]
    (published,) = sql.execute(
        "SELECT published_at IS NOT NULL FROM outbox WHERE aggregate_id = %s", (arena_id,)
    ).fetchone()
    assert published, "the view must have come through the outbox relay and Kafka"
    listed = client.get("/api/v1/arenas?limit=100").get_json()["items"]
    assert arena_id in [item["id"] for item in listed]


def test_a_poison_event_is_dead_lettered_and_other_arenas_keep_flowing(
    client: FlaskClient, settings: Settings, pipeline: Pipeline
) -> None:
    poison_key = f"poison-{uuid.uuid4()}"
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    metadata = producer.send(
        settings.kafka_events_topic, key=poison_key.encode(), value=b'{"not": "an envelope"}'
    ).get(timeout=10)
    producer.close()

    healthy_id = _create_arena(client, "After the poison")
    _wait_for_view(client, healthy_id, pipeline)

    dlq = KafkaConsumer(
        settings.kafka_dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    found: list[dict] = []

    def poison_in_dlq() -> bool:
        pipeline.assert_running()
        for records in dlq.poll(timeout_ms=200).values():
            found.extend(json.loads(r.value) for r in records if r.key.decode() == poison_key)
        return bool(found)

    try:
        wait_until(
            poison_in_dlq,
            deadline_seconds=PIPELINE_DEADLINE_SECONDS,
            what=f"the poison event in the DLQ (logs in {pipeline.logs})",
        )
    finally:
        dlq.close()
    (record,) = found
    assert record["originalTopic"] == settings.kafka_events_topic
    assert (record["originalPartition"], record["originalOffset"]) == (
        metadata.partition,
        metadata.offset,
    )
    assert record["value"] == '{"not": "an envelope"}'
    assert record["errorClass"] == "MalformedEnvelope"
    assert "eventId" in record["errorMessage"]
    assert "Traceback" in record["traceback"]
    assert record["attempts"] == 1
