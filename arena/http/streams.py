"""Live streams of an arena, as Server-Sent Events: its events, and its metrics every few seconds.

Both read the Redis read model only. The events stream sends one frame per event the projection
applied, in version order, each with `id:` its version, so a client that reconnects with
`Last-Event-ID` (a browser's EventSource does) resumes right after the last frame it got,
without a gap or a repeat; the feed keeps the last FEED_LENGTH events of each arena, and a
client further behind gets a `reset` frame (reload the queries, then carry on from its `id`).
A stream waits on this process's notices (`arena.readmodel.live`), never on PostgreSQL or on
the projection: a slow client holds only its own server thread, and only STREAM_MAX_OPEN of
those per process, so commands always find one.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Response
from flask import abort as flask_abort
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from arena.bootstrap import Components, components
from arena.http.board_view import board_body, metrics_body
from arena.http.problems import PROBLEM_MEDIA_TYPE, problem
from arena.http.schemas import (
    MetricsStreamQuerySchema,
    ProblemSchema,
    StreamHeadersSchema,
    StreamQuerySchema,
)
from arena.readmodel.boards import board_at, empty_board, read_board, recent_stats
from arena.readmodel.projector import View
from arena.simulation import delta
from arena.simulation.board import Board

blp = Blueprint(
    "arena_streams", __name__, url_prefix="/api/v1/arenas", description="Live streams (Redis)"
)

EVENT_STREAM = "text/event-stream"
LOOK_AGAIN_SECONDS = 1.0  # how long a stream trusts the notices before it reads the feed anyway
METRICS_EVERY_SECONDS = 2.0
RECONNECT_MILLIS = 1000  # the `retry:` a client waits before it reconnects
RETRY_AFTER_SECONDS = "5"

_STREAM_DOC = {
    "description": "An endless stream of Server-Sent Events, each described here.",
    "content": {
        EVENT_STREAM: {
            "schema": {
                "type": "object",
                "properties": {
                    "event": {"type": "string", "description": "the frame's kind"},
                    "id": {"type": "string", "description": "the arena version it brings"},
                    "data": {"type": "string", "description": "a JSON object"},
                },
                "required": ["data"],
            }
        }
    },
}
_BUSY_DOC = {
    "schema": ProblemSchema,
    "content_type": PROBLEM_MEDIA_TYPE,
    "description": "Every stream slot of this server is taken",
}
_MISSING_DOC = {
    "schema": ProblemSchema,
    "content_type": PROBLEM_MEDIA_TYPE,
    "description": "No such arena",
}


@blp.route("/<uuid:arena_id>/stream")
class ArenaStream(MethodView):
    @blp.arguments(StreamQuerySchema, location="query")
    @blp.arguments(StreamHeadersSchema, location="headers")
    @blp.doc(responses={"200": _STREAM_DOC})
    @blp.alt_response(404, **_MISSING_DOC)
    @blp.alt_response(503, **_BUSY_DOC)
    def get(self, query: dict[str, Any], headers: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """The arena's events as they are projected: `event:` the type, `id:` the version,
        `data:` {version, type, occurredAt, eventId, payload}; TickAdvanced carries its delta
        (mode=DELTA) or its board (mode=FULL). Idle streams get a comment now and then."""
        parts, view = _arena(arena_id)
        resumed = headers.get("last_event_id")
        after = view["version"] if resumed is None else resumed
        frames = _event_frames(parts, view, after, query["mode"] == "FULL")
        return _streaming(parts, frames)


@blp.route("/<uuid:arena_id>/metrics/stream")
class ArenaMetricsStream(MethodView):
    @blp.arguments(MetricsStreamQuerySchema, location="query")
    @blp.doc(responses={"200": _STREAM_DOC})
    @blp.alt_response(404, **_MISSING_DOC)
    @blp.alt_response(503, **_BUSY_DOC)
    def get(self, query: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """`event: metrics` every few seconds, `data:` what GET /metrics answers."""
        parts, view = _arena(arena_id)
        return _streaming(parts, _metrics_frames(parts, view["id"], query["windowSeconds"]))


def _arena(arena_id: uuid.UUID) -> tuple[Components, View]:
    parts = components()
    view = parts.views.get(str(arena_id))
    if view is None:
        abort(404, message=f"Arena {arena_id} not found.")
    assert view is not None  # abort raised
    return parts, view


def _streaming(parts: Components, frames: Generator[str, None, None]) -> Response:
    slots = parts.stream_slots
    if not slots.take():
        refused = problem(
            503,
            f"This server holds {slots.limit} streams already; try again shortly.",
            slug="too-many-streams",
        )
        refused.headers["Retry-After"] = RETRY_AFTER_SECONDS
        flask_abort(refused)
    response = Response(_Held(frames, slots.give_back), mimetype=EVENT_STREAM)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not hold frames back
    return response


class _Held:
    """The frames, and the stream's slot given back when the server closes the response, even
    one whose client left before the first frame (a generator never started has no `finally`)."""

    def __init__(self, frames: Generator[str, None, None], give_back: Callable[[], None]) -> None:
        self._frames = frames
        self._give_back = give_back
        self._held = True

    def __iter__(self) -> Iterator[str]:
        return self._frames

    def close(self) -> None:
        self._frames.close()
        if self._held:
            self._held = False
            self._give_back()


def _frame(data: dict[str, Any], *, event: str, id_: int | None = None) -> str:
    lines = [f"event: {event}"]
    if id_ is not None:
        lines.append(f"id: {id_}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _event_frames(
    parts: Components, view: View, after: int, full: bool
) -> Generator[str, None, None]:
    views, keepalive = parts.views, parts.settings.stream_keepalive_seconds
    arena_id = view["id"]
    boards = _Boards(parts, view) if full else None
    yield f"retry: {RECONNECT_MILLIS}\n\n"
    last, quiet_since = after, time.monotonic()
    while True:
        entries = views.feed_after(arena_id, last)
        if entries is None:
            now = views.get(arena_id) or view
            yield _frame(
                {"version": now["version"], "reason": "behind-feed"},
                event="reset",
                id_=now["version"],
            )
            last = now["version"]
            continue
        for entry in _with_ticks(parts, arena_id, entries, boards):
            yield _frame(entry, event=entry["type"], id_=entry["version"])
            last, quiet_since = entry["version"], time.monotonic()
        if time.monotonic() - quiet_since >= keepalive:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        parts.notices.wait_past(arena_id, last, LOOK_AGAIN_SECONDS)


def _with_ticks(
    parts: Components, arena_id: str, entries: list[dict[str, Any]], boards: _Boards | None
) -> list[dict[str, Any]]:
    """The feed leaves deltas out; a stream puts each tick's back (or, FULL, its board)."""
    ticks = [e["payload"]["tick"] for e in entries if e["type"] == "TickAdvanced"]
    if not ticks:
        return entries
    keys = parts.views.keys()
    recorded = parts.views.redis.hmget(keys.ticks(arena_id), [str(tick) for tick in ticks])
    deltas = {
        tick: json.loads(raw)["delta"] for tick, raw in zip(ticks, recorded, strict=True) if raw
    }
    for entry in entries:
        if entry["type"] != "TickAdvanced":
            continue
        payload, tick = entry["payload"], entry["payload"]["tick"]
        if boards is None:
            payload["delta"] = deltas.get(tick)
        else:
            payload["board"] = boards.at(tick, deltas.get(tick), entry["version"], payload)
    return entries


@dataclass
class _Boards:
    """A FULL stream's board, carried from tick to tick by the deltas it sends."""

    parts: Components
    view: View
    board: Board | None = None

    def at(
        self, tick: int, wire: dict[str, Any] | None, version: int, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        if self.board is not None and wire is not None and self.board.tick == tick - 1:
            self.board = delta.apply(self.board, delta.decode(wire))
        else:
            views, arena_id, empty = self.parts.views, self.view["id"], empty_board(self.view)
            current = read_board(views.redis, views.keys(), arena_id, empty)
            self.board = board_at(views.redis, views.keys(), arena_id, tick, current, empty)
        if self.board is None:
            return None
        shown = {"id": self.view["id"], "version": version, "stats": payload.get("stats")}
        return board_body(self.board, shown)


def _metrics_frames(
    parts: Components, arena_id: str, window_seconds: int
) -> Generator[str, None, None]:
    views = parts.views
    yield f"retry: {RECONNECT_MILLIS}\n\n"
    while True:
        view = views.get(arena_id)
        if view is not None:
            keys = views.keys()
            board = read_board(views.redis, keys, arena_id, empty_board(view))
            recent = recent_stats(views.redis, keys, arena_id, views.history_ticks)
            body = metrics_body(board, recent, window_seconds, datetime.now(UTC))
            data = {"arenaId": arena_id, "version": view["version"]} | body
            yield _frame(data, event="metrics", id_=view["version"])
        time.sleep(METRICS_EVERY_SECONDS)
