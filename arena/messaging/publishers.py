"""One long-lived Kafka producer per process and topic (producers are thread-safe and costly)."""

from __future__ import annotations

import functools

from arena.config import Settings
from arena.messaging.kafka import KafkaPublisher, ensure_topics


@functools.cache
def publisher_for(settings: Settings, topic: str) -> KafkaPublisher:
    ensure_topics(settings)
    return KafkaPublisher(settings, topic)
