"""Fixtures for tests on the real services, isolated per test run.

Each run gets its own PostgreSQL database, Redis key prefix, Kafka topics and consumer group, and
Celery queue, so runs never see each other's data and can repeat on the same services. Fixtures
are lazy: unit tests never touch a service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from kafka import KafkaAdminClient
from redis import Redis
from sqlalchemy.engine import make_url

from arena import create_app
from arena.bootstrap import components
from arena.messaging.celery_setup import relay_queue
from arena.messaging.kafka import ensure_topics
from arena.settings import Settings
from harness.services import delete_celery_queues, isolated_settings, libpq_dsn

ROOT = Path(__file__).resolve().parent.parent
RUN_ID = uuid.uuid4().hex[:10]
GENEROUS_RATE_LIMIT = "1000/second"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return isolated_settings(
        Settings.from_env(),
        "test",
        RUN_ID,
        kafka_events_partitions=3,
        outbox_relay_interval_seconds=0.2,
        tick_lease_seconds=5.0,  # a killed tick task holds its arena this long, not 30 s
        stream_keepalive_seconds=1.0,  # a quiet live stream shows it is alive within a second
        pipeline_cache_seconds=0.0,  # the pipeline page shows what a test just did
        # Tests open arenas from 127.0.0.1 by the hundred: limits no test reaches, still counted
        # (tests/integration/test_rate_limits.py sets small ones).
        rate_limit_create=GENEROUS_RATE_LIMIT,
        rate_limit_join=GENEROUS_RATE_LIMIT,
        rate_limit_failed_auth=GENEROUS_RATE_LIMIT,
    )


def _on_server(statement: str) -> None:
    """Run one statement on the configured (non-test) database, where test databases are made."""
    dsn = libpq_dsn(Settings.from_env())
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[str]:
    name = make_url(settings.database_url).database
    _on_server(f'CREATE DATABASE "{name}"')
    try:
        yield settings.database_url
    finally:
        _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def kafka_topics(settings: Settings) -> Iterator[None]:
    ensure_topics(settings)
    yield
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        admin.delete_topics([settings.kafka_events_topic, settings.kafka_dlq_topic])
    finally:
        admin.close()


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Iterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    for key in client.scan_iter(match=f"{settings.read_model_prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def app(settings: Settings, database: str, redis_client: Redis) -> Iterator[Flask]:
    flask_app = create_app(settings)
    flask_app.config["TESTING"] = True
    with flask_app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    yield flask_app
    components(flask_app).publishers.close()  # before pytest closes the streams they log to
    # Drop what no worker took from this run's Celery queues.
    delete_celery_queues(settings.celery_broker_url, [settings.celery_queue, relay_queue(settings)])


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sql(settings: Settings) -> Iterator[psycopg.Connection]:
    """A separate connection to inspect what the application committed."""
    with psycopg.connect(libpq_dsn(settings), autocommit=True) as connection:
        yield connection
