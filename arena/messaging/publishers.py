"""The Kafka producers of one process, one per topic (producers are thread-safe and costly).

Built by the composition root with the other collaborators, but a producer itself is made on
first use: its I/O thread would not survive a worker's fork, so one inherited from a parent
process is forgotten, never used. A producer whose sends failed is discarded, so the next use
builds a fresh one: a producer that lived through a broker restart has been seen to stay
broken for minutes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from arena.messaging.kafka import KafkaPublisher, ensure_topics
from arena.settings import Settings

log = logging.getLogger(__name__)


class Publishers:
    """Invariant: every producer held was built in this process (`_pid`) for `settings`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._by_topic: dict[str, KafkaPublisher] = {}
        self._pid = os.getpid()

    def for_topic(self, topic: str) -> KafkaPublisher:
        with self._lock:
            self._forget_inherited()
            publisher = self._by_topic.get(topic)
            if publisher is None:
                ensure_topics(self._settings)
                publisher = self._by_topic[topic] = KafkaPublisher(self._settings, topic)
            return publisher

    def events(self) -> KafkaPublisher:
        return self.for_topic(self._settings.kafka_events_topic)

    def dead_letters(self) -> KafkaPublisher:
        return self.for_topic(self._settings.kafka_dlq_topic)

    def discard(self, topic: str) -> None:
        """Drop the topic's producer after a failure."""
        with self._lock:
            self._forget_inherited()
            publisher = self._by_topic.pop(topic, None)
        if publisher is not None:
            log.info("discarding the Kafka producer for %s after a failed send", topic)
            _close_quietly(publisher, timeout_seconds=1.0)

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Flush and close every producer, at process shutdown: nothing is left in flight and
        no producer thread outlives the logging it writes to."""
        with self._lock:
            self._forget_inherited()
            publishers = list(self._by_topic.values())
            self._by_topic.clear()
        for publisher in publishers:
            _close_quietly(publisher, timeout_seconds)

    def _forget_inherited(self) -> None:
        if self._pid != os.getpid():
            self._by_topic.clear()  # the parent's producers: their threads are not ours
            self._pid = os.getpid()


def _close_quietly(publisher: KafkaPublisher, timeout_seconds: float) -> None:
    """Closing a broken producer (or one whose broker is gone) may fail too; it goes anyway."""
    with contextlib.suppress(Exception):
        publisher.close(timeout_seconds=timeout_seconds)
