"""The dead-letter topic's records of one key, read once they arrived."""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaConsumer

from arena.settings import Settings
from harness.pipeline import Pipeline
from harness.waiting import wait_until


def dead_letters_for(
    settings: Settings, key: str, *, count: int, deadline_seconds: float, pipeline: Pipeline
) -> list[dict[str, Any]]:
    """The DLQ records keyed `key`, once `count` of them arrived."""
    consumer = KafkaConsumer(
        settings.kafka_dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        pipeline.assert_running()
        for records in consumer.poll(timeout_ms=200).values():
            found.extend(json.loads(r.value) for r in records if r.key and r.key.decode() == key)
        return len(found) >= count

    try:
        wait_until(
            arrived,
            deadline_seconds=deadline_seconds,
            what=f"{count} DLQ record(s) keyed {key} (logs in {pipeline.logs})",
        )
    finally:
        consumer.close()
    return found
