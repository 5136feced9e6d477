"""The log format: one line per event with its fields, ticks' events below INFO, JSON lines."""

from __future__ import annotations

import json
import logging

import pytest

from arena.logs import _JsonLines, log_event


def _record(caplog_records: list[logging.LogRecord]) -> logging.LogRecord:
    (record,) = caplog_records
    return record


def test_a_commands_event_logs_at_info_with_its_fields(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    log_event(logging.getLogger("t"), "published", "ArenaStarted", "a-1", 3, "c-9")
    record = _record(caplog.records)
    assert record.levelno == logging.INFO
    assert record.getMessage() == "published ArenaStarted v3 of arena a-1 [c-9]"
    line = json.loads(_JsonLines().format(record))
    assert {k: line[k] for k in ("stage", "eventType", "arenaId", "version", "correlationId")} == {
        "stage": "published",
        "eventType": "ArenaStarted",
        "arenaId": "a-1",
        "version": 3,
        "correlationId": "c-9",
    }
    assert (line["level"], line["logger"]) == ("INFO", "t")


def test_a_ticks_events_log_at_debug_and_cost_nothing_above_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    log_event(logging.getLogger("t"), "applied", "TickAdvanced", "a-1", 40, None)
    assert caplog.records == []
    caplog.set_level(logging.DEBUG)
    log_event(logging.getLogger("t"), "applied", "TickAdvanced", "a-1", 40, None)
    assert _record(caplog.records).levelno == logging.DEBUG
