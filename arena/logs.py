"""Logs a person can follow: one line per event at each stage, with the event's correlation id.

A command's events carry its correlation id (the client's `X-Correlation-ID`, or the command's
own id) in their envelope, and from there in the Kafka headers, so the lines of every stage
(`recorded` by the API, `published` by the relay, `applied` by the projection) of one request
share it: grep for it, or filter on `correlationId` with LOG_FORMAT=json. Events a tick makes
log at DEBUG: at hundreds of ticks a second they would drown every other line (and cost more CPU
than the event itself); their batches still log at INFO.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Events made by the tick engine rather than by a person's command.
TICK_EVENTS = frozenset({"TickAdvanced", "SnapshotTaken", "ActionApplied", "ActionRejected"})
EVENT_FIELDS = ("stage", "eventType", "arenaId", "version", "correlationId")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str | int, log_format: str) -> None:
    """Every process's root handler: readable text, or one JSON object per line. Like
    `logging.basicConfig`, it leaves a root logger that someone else configured (pytest) alone;
    called again (by Celery's worker, with its --loglevel), it replaces its own handler."""
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if isinstance(handler, _OurHandler)]
    if root.handlers and not ours:
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = _OurHandler()
    handler.setFormatter(_JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines drown ours


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Standard error, told apart from handlers others installed."""


def log_event(
    logger: logging.Logger,
    stage: str,
    event_type: str,
    arena_id: str,
    version: int,
    correlation_id: str | None,
    detail: str = "",
) -> None:
    """`<stage> <type> v<version> of arena <id> [<correlation>] <detail>`, its fields as extras."""
    level = logging.DEBUG if event_type in TICK_EVENTS else logging.INFO
    if not logger.isEnabledFor(level):
        return
    fields = {
        "stage": stage,
        "eventType": event_type,
        "arenaId": arena_id,
        "version": version,
        "correlationId": correlation_id or "",
    }
    logger.log(
        level,
        "%s %s v%d of arena %s [%s]%s",
        stage,
        event_type,
        version,
        arena_id,
        correlation_id or "-",
        f" {detail}" if detail else "",
        extra=fields,
    )


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in EVENT_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
