"""The DLQ record: everything an operator needs to understand and replay a failed event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from arena.messaging.records import ReceivedRecord

# The event's text the DLQ record carries: JSON writes a character in at most twelve bytes (a
# character beyond the BMP as two escapes, "\ud83d\ude00"), so this many keep the record within
# a Kafka message (MAX_EVENT_BYTES) whatever the event. Beyond it, the event is still whole in
# its topic (originalTopic/Partition/Offset) and in its arena's stall.
VALUE_MAX_CHARS = 512 * 1024


def dead_letter_record(
    event: ReceivedRecord,
    error: BaseException,
    traceback: str,
    *,
    attempts: int,
    first_failure_at: str | None,
) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "originalTopic": event.topic,
        "originalPartition": event.partition,
        "originalOffset": event.offset,
        "key": event.key,
        "value": event.value[:VALUE_MAX_CHARS],
        "valueChars": len(event.value),
        "errorClass": type(error).__name__,
        "errorMessage": str(error),
        "traceback": traceback,
        "attempts": attempts,
        "firstFailureAt": first_failure_at or now,
        "lastFailureAt": now,
    }
