"""Fixtures shared by the integration tests: the relay's, and a dish ticked by hand."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.messaging.kafka import KafkaPublisher
from arena.outbox.relay import RelayPolicy
from arena.settings import Settings
from tests.support.dish import Dish, seeded_dish


@pytest.fixture
def publisher(app: Flask, kafka_topics: None) -> KafkaPublisher:
    """The process's events producer, as the Celery relay task uses it."""
    return components(app).publishers.events()


@pytest.fixture
def policy(settings: Settings) -> RelayPolicy:
    return RelayPolicy.from_settings(settings)


@pytest.fixture
def dish(app: Flask, client: FlaskClient, sql: psycopg.Connection) -> Dish:
    return seeded_dish(app, client, sql)
