"""/api/v1/pipeline, /metrics and /readyz cost the same per call however much there is to count,
keep their Kafka and AMQP clients, and answer within their deadline when Kafka is away."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from kafka import KafkaAdminClient, KafkaConsumer
from sqlalchemy import event

from arena import create_app
from arena.bootstrap import components
from arena.extensions import db
from arena.readmodel.projection_lag import ARENAS_COMPARED, LISTED
from arena.readmodel.writer import stall, unstall_if_nothing_parked
from arena.settings import Settings
from tests.support.api import create_arena

pytestmark = pytest.mark.integration

ARENAS = 3000  # three times what one look compares
STALLS = LISTED + 5
PARKED_EACH = 200
# Long enough that a busy two-core machine serves a call, and meets the callers past the cap,
# within it; far below kafka-python's own timeouts (tens of seconds), which the bounds below
# tell apart from it.
DEADLINE_SECONDS = 3.0
# The deadline is the Kafka part's; the database's part comes first, on a cold busy machine.
ANSWERED_WITHIN_SECONDS = 2 * DEADLINE_SECONDS + 4.0
REFUSED_WITHIN_SECONDS = DEADLINE_SECONDS  # a refusal waits for no dependency


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once it is closed


@pytest.fixture
def many_arenas(sql: psycopg.Connection, app: Flask) -> Iterator[str]:
    """ARENAS arenas each with a published event, and STALLS stalled arenas with parked events."""
    marker = f"bulk-{uuid.uuid4().hex[:8]}"
    sql.execute(
        "INSERT INTO arenas (id, name, status, config, tick, version, created_at)"
        " SELECT gen_random_uuid(), %s, 'FINISHED', '{}'::jsonb, 0, 1, now()"
        " FROM generate_series(1, %s)",
        (marker, ARENAS),
    )
    sql.execute(
        "INSERT INTO outbox (event_id, event_type, aggregate_id, aggregate_version, envelope,"
        " published_at) SELECT gen_random_uuid(), 'ArenaCreated', id, 1, '{}'::jsonb, now()"
        " FROM arenas WHERE name = %s",
        (marker,),
    )
    views = components(app).views
    stalled = [str(uuid.uuid4()) for _ in range(STALLS)]
    for arena_id in stalled:
        stall(views, arena_id, version=1, raw_event="{}", reason=marker)
        views.redis.zadd(
            views.keys().parked(arena_id), {f"{marker}-{n}": n + 2 for n in range(PARKED_EACH - 1)}
        )
    try:
        yield marker
    finally:
        for arena_id in stalled:
            views.redis.delete(views.keys().parked(arena_id))
            unstall_if_nothing_parked(views, arena_id)
        sql.execute(
            "DELETE FROM outbox WHERE aggregate_id IN (SELECT id FROM arenas WHERE name = %s)",
            (marker,),
        )
        sql.execute("DELETE FROM arenas WHERE name = %s", (marker,))


def _rows_read(app: Flask, call: Callable[[], Any]) -> tuple[Any, int]:
    """What `call` returns, and how many rows the app's SQL statements returned meanwhile."""
    rows = 0

    def count(_conn: Any, cursor: Any, *_: Any) -> None:
        nonlocal rows
        rows += max(cursor.rowcount, 0) if cursor.description is not None else 0

    with app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", count)
    try:
        return call(), rows
    finally:
        event.remove(engine, "after_cursor_execute", count)


def test_the_pipeline_reads_a_bounded_number_of_rows_however_many_arenas_and_stalls(
    app: Flask, many_arenas: str
) -> None:
    client = app.test_client()

    response, rows = _rows_read(app, lambda: client.get("/api/v1/pipeline"))

    assert response.status_code == 200
    assert rows <= ARENAS_COMPARED + 10, rows
    projections = response.get_json()["projections"]
    assert projections["arenas"] >= ARENAS
    assert projections["arenasBehind"] >= 1  # the bulk arenas have no view
    assert projections["stalls"] >= STALLS
    assert len(projections["stalledArenas"]) == LISTED
    assert projections["parkedEvents"] >= STALLS * PARKED_EACH
    scrape, rows = _rows_read(app, lambda: client.get("/metrics"))
    assert scrape.status_code == 200
    assert rows <= ARENAS_COMPARED + 10, rows
    assert f"arena_projection_stalled_arenas {float(projections['stalls'])}" in scrape.text


def _declare_celery_queues(app: Flask) -> None:
    """As a worker would at start (with their priorities), so a passive declare finds them."""
    celery = components(app).celery
    with celery.connection_for_write() as connection:
        for queue in celery.amqp.queues.values():
            queue(connection.default_channel).declare()


def test_repeated_calls_keep_one_kafka_client_and_one_broker_connection(
    settings: Settings, app: Flask, kafka_topics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []

    class CountedAdmin(KafkaAdminClient):  # type: ignore[misc]
        def __init__(self, **configs: Any) -> None:
            made.append("kafka admin")
            super().__init__(**configs)

    class CountedConsumer(KafkaConsumer):  # type: ignore[misc]
        def __init__(self, *topics: str, **configs: Any) -> None:
            made.append("kafka consumer")
            super().__init__(*topics, **configs)

    monkeypatch.setattr("arena.messaging.kafka.KafkaAdminClient", CountedAdmin)
    monkeypatch.setattr("arena.messaging.kafka.KafkaConsumer", CountedConsumer)
    counted = create_app(settings)  # its own clients; asks afresh every call (no cache in tests)
    _declare_celery_queues(counted)
    celery = components(counted).celery
    connect = celery.connection_for_read

    def counted_connection(*args: Any, **kwargs: Any) -> Any:
        made.append("amqp connection")
        return connect(*args, **kwargs)

    monkeypatch.setattr(celery, "connection_for_read", counted_connection)
    client = counted.test_client()

    for _ in range(5):
        status = client.get("/api/v1/pipeline").get_json()
        assert status["consumer"]["lagByPartition"] is not None, status["consumer"]
        assert status["deadLetters"]["records"] is not None, status["deadLetters"]
        assert status["broker"]["queues"] is not None, status["broker"]
        assert client.get("/metrics").status_code == 200
        assert client.get("/readyz").get_json()["checks"]["kafka"] is True

    assert sorted(made) == ["amqp connection", "kafka admin"]


@pytest.fixture
def kafka_away(settings: Settings, app: Flask) -> Flask:
    """An app whose Kafka is a closed loopback port; the rest is the real stack (`app`'s)."""
    away = dataclasses.replace(
        settings,
        kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}",
        pipeline_deadline_seconds=DEADLINE_SECONDS,
        pipeline_max_calls=2,
    )
    return create_app(away)


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_with_kafka_away_the_pipeline_and_readiness_answer_within_the_deadline(
    kafka_away: Flask,
) -> None:
    client = kafka_away.test_client()

    response, took = _timed(lambda: client.get("/api/v1/pipeline"))

    assert response.status_code == 200
    assert took < ANSWERED_WITHIN_SECONDS, took
    status = response.get_json()
    assert status["consumer"]["lagByPartition"] is None and status["consumer"]["error"]
    assert status["deadLetters"]["records"] is None
    assert status["outbox"]["backlog"] >= 0  # the other parts are there
    ready, took = _timed(lambda: client.get("/readyz"))
    assert took < ANSWERED_WITHIN_SECONDS, took
    assert ready.status_code == 503
    assert ready.get_json()["checks"] == {"postgres": True, "redis": True, "kafka": False}


def test_with_rabbitmq_away_the_pipeline_answers_within_the_deadline(
    settings: Settings, app: Flask
) -> None:
    away = dataclasses.replace(
        settings,
        celery_broker_url=f"amqp://guest:guest@127.0.0.1:{_closed_port()}//",
        pipeline_deadline_seconds=DEADLINE_SECONDS,
    )
    client = create_app(away).test_client()

    for _ in range(2):  # each asks RabbitMQ again (no cache in tests)
        response, took = _timed(lambda: client.get("/api/v1/pipeline"))
        assert response.status_code == 200
        assert took < ANSWERED_WITHIN_SECONDS, took
        broker = response.get_json()["broker"]
        assert broker["queues"] is None and broker["error"], broker


def _kafka_threads() -> int:
    return sum(thread.name.startswith("kafka-") for thread in threading.enumerate())


def test_each_try_while_kafka_is_away_leaves_no_thread_behind(kafka_away: Flask) -> None:
    client = kafka_away.test_client()
    client.get("/api/v1/pipeline")  # the probes' own threads, made once
    before = _kafka_threads()

    for _ in range(4):  # each asks Kafka again (no cache in tests)
        assert client.get("/api/v1/pipeline").get_json()["consumer"]["lagByPartition"] is None

    assert _kafka_threads() <= before


def test_calls_past_the_cap_get_503_at_once_and_commands_still_answer(kafka_away: Flask) -> None:
    callers = 8
    start = threading.Barrier(callers + 1)
    answers: list[tuple[int, float]] = []
    refusals: list[tuple[str, str | None]] = []  # problem type, Retry-After

    def scrape(path: str) -> None:
        client = kafka_away.test_client()
        start.wait()
        response, took = _timed(lambda: client.get(path))
        answers.append((response.status_code, took))
        if response.status_code == 503:
            refusals.append((response.get_json()["type"], response.headers.get("Retry-After")))

    threads = [
        threading.Thread(target=scrape, args=("/metrics" if n % 2 else "/api/v1/pipeline",))
        for n in range(callers)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    created, took = _timed(lambda: create_arena(kafka_away.test_client()))
    for thread in threads:
        thread.join(timeout=30)

    assert created[0] and took < ANSWERED_WITHIN_SECONDS, took
    refused = [took for status, took in answers if status == 503]
    served = [took for status, took in answers if status == 200]
    assert len(refused) + len(served) == callers, answers
    assert len(served) >= 1 and len(refused) >= callers - 2 * 2, answers  # two slots, reused once
    assert max(refused) < REFUSED_WITHIN_SECONDS, answers
    assert {kind for kind, _ in refusals} == {"/problems/pipeline-busy"}, refusals
    assert all(retry and int(retry) >= 1 for _, retry in refusals), refusals
    assert max(served) < ANSWERED_WITHIN_SECONDS, answers
