"""Fixtures shared by the relay tests."""

from __future__ import annotations

import pytest

from arena.messaging.kafka import KafkaPublisher
from arena.messaging.publishers import publisher_for
from arena.outbox.relay import RelayPolicy
from arena.settings import Settings


@pytest.fixture
def publisher(settings: Settings, kafka_topics: None) -> KafkaPublisher:
    """The process-wide producer the Celery relay task uses."""
    return publisher_for(settings, settings.kafka_events_topic)


@pytest.fixture
def policy(settings: Settings) -> RelayPolicy:
    return RelayPolicy.from_settings(settings)
