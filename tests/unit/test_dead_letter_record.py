"""The DLQ record fits a Kafka message whatever the event it names."""

import json

from arena.messaging.dead_letter import VALUE_MAX_CHARS, dead_letter_record
from arena.messaging.kafka import MAX_EVENT_BYTES
from arena.messaging.records import ReceivedRecord


def test_a_dlq_record_of_the_largest_event_of_escaped_text_still_fits_a_kafka_message():
    # A record's largest text, each character escaped to six ("\u0001"), as JSON writes it.
    event = ReceivedRecord("\x01" * MAX_EVENT_BYTES, "arena-1", "arena.events", 0, 3)

    record = dead_letter_record(
        event, ValueError("too large"), "trace", attempts=1, first_failure_at=None
    )

    assert len(json.dumps(record, separators=(",", ":")).encode()) < MAX_EVENT_BYTES
    assert record["value"] == event.value[:VALUE_MAX_CHARS]
    assert record["valueChars"] == MAX_EVENT_BYTES
    assert (record["originalTopic"], record["originalPartition"], record["originalOffset"]) == (
        "arena.events",
        0,
        3,
    )
