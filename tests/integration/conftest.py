"""Fixtures shared by the relay tests."""

from __future__ import annotations

import pytest
from flask import Flask

from arena.bootstrap import components
from arena.messaging.kafka import KafkaPublisher
from arena.outbox.relay import RelayPolicy
from arena.settings import Settings


@pytest.fixture
def publisher(app: Flask, kafka_topics: None) -> KafkaPublisher:
    """The process's events producer, as the Celery relay task uses it."""
    return components(app).publishers.events()


@pytest.fixture
def policy(settings: Settings) -> RelayPolicy:
    return RelayPolicy.from_settings(settings)
