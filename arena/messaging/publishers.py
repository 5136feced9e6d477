"""One long-lived Kafka producer per process and topic (producers are thread-safe and costly).

A producer whose sends failed is discarded, so the next use builds a fresh one: a producer that
lived through a broker restart has been seen to stay broken for minutes.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from arena.messaging.kafka import KafkaPublisher, ensure_topics
from arena.settings import Settings

log = logging.getLogger(__name__)

_publishers: dict[tuple[Settings, str], KafkaPublisher] = {}
_lock = threading.Lock()


def publisher_for(settings: Settings, topic: str) -> KafkaPublisher:
    with _lock:
        publisher = _publishers.get((settings, topic))
        if publisher is None:
            ensure_topics(settings)
            publisher = _publishers[(settings, topic)] = KafkaPublisher(settings, topic)
        return publisher


def discard_publisher(settings: Settings, topic: str) -> None:
    """Drop the cached producer after a failure."""
    with _lock:
        publisher = _publishers.pop((settings, topic), None)
    if publisher is not None:
        log.info("discarding the Kafka producer for %s after a failed send", topic)
        _close_quietly(publisher, timeout_seconds=1.0)


def close_publishers(timeout_seconds: float = 5.0) -> None:
    """Flush and close every cached producer, at process shutdown: nothing is left in flight and
    no producer thread outlives the logging it writes to."""
    with _lock:
        publishers = list(_publishers.values())
        _publishers.clear()
    for publisher in publishers:
        _close_quietly(publisher, timeout_seconds)


def _close_quietly(publisher: KafkaPublisher, timeout_seconds: float) -> None:
    """Closing a broken producer (or one whose broker is gone) may fail too; it goes anyway."""
    with contextlib.suppress(Exception):
        publisher.close(timeout_seconds=timeout_seconds)
