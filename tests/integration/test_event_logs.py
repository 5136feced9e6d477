"""A request's correlation id in the log line of every stage its events pass: recorded by the
API, published by the relay (real Kafka), applied by the projection (real Redis)."""

from __future__ import annotations

import logging
import uuid

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.messaging.kafka import KafkaPublisher
from arena.messaging.records import ReceivedRecord
from arena.outbox.relay import RelayPolicy
from arena.readmodel.intake import project_batch
from arena.settings import Settings
from tests.support.outbox import relay

pytestmark = pytest.mark.integration


def _lines(caplog: pytest.LogCaptureFixture, correlation: str) -> list[tuple[str, str]]:
    return [
        (record.stage, record.eventType)  # type: ignore[attr-defined]
        for record in caplog.records
        if getattr(record, "correlationId", None) == correlation
    ]


def test_a_requests_correlation_id_is_in_every_stages_line(
    app: Flask,
    client: FlaskClient,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    correlation = f"trace-{uuid.uuid4().hex[:8]}"
    body = {"name": "Traced dish", "displayName": "Ada"}
    created = client.post("/api/v1/arenas", json=body, headers={"X-Correlation-ID": correlation})
    assert created.status_code == 201
    arena_id = created.get_json()["id"]
    assert _lines(caplog, correlation) == [("recorded", "ArenaCreated")]

    while relay(app, publisher, policy).published:
        pass
    assert ("published", "ArenaCreated") in _lines(caplog, correlation)

    (envelope,) = sql.execute(
        "SELECT envelope::text FROM outbox WHERE aggregate_id = %s", (arena_id,)
    ).fetchone() or (None,)
    received = ReceivedRecord(envelope, arena_id, settings.kafka_events_topic, 0, 0)
    with app.app_context():
        project_batch(components().views, [received])
    assert _lines(caplog, correlation)[-1] == ("applied", "ArenaCreated")
    (line,) = [
        r
        for r in caplog.records
        if getattr(r, "stage", None) == "applied"
        and getattr(r, "correlationId", None) == correlation
    ]
    assert line.getMessage() == f"applied ArenaCreated v1 of arena {arena_id} [{correlation}]"
