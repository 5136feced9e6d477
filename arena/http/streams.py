"""Live streams of an arena, as Server-Sent Events: its events, and its stats every few seconds.

Both read the Redis read model only. The events stream sends one frame per event the projection
applied, in version order, each with `id:` its version, so a client that reconnects with
`Last-Event-ID` (a browser's EventSource does) resumes right after the last frame it got,
without a gap or a repeat; the feed keeps the last FEED_LENGTH events of each arena, and a
client further behind gets a `reset` frame (reload the queries, then carry on from its `id`).
A stream waits on this process's notices (`arena.readmodel.live`), never on PostgreSQL or on
the projection: a slow client holds only its own server thread, and only STREAM_MAX_OPEN of
those per process, so commands always find one.

No client takes every slot: a client address holds at most STREAM_MAX_PER_CLIENT streams at
once, counted across every API process (`Lease`), and 429 past that, for as long as the server
holds each one, read or not; the server ends each stream after its lifetime (STREAM_MAX_SECONDS,
less up to a fifth at random, so that streams opened together do not all reconnect together),
cleanly, so a slot changes hands now and then (an EventSource reconnects by itself, after the
`retry:` it was sent, with its Last-Event-ID); and a write that a client leaves unread for
STREAM_SEND_TIMEOUT_SECONDS ends its stream (`_bound_writes`).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_limiter.util import get_remote_address
from flask_smorest import Blueprint, abort
from redis import Redis
from redis.exceptions import RedisError

from arena.bootstrap import Components, components
from arena.http.dish_bodies import ARRAY, board_json, json_spliced, stats_body
from arena.http.docs import RETRY_AFTER_HEADER
from arena.http.problems import PROBLEM_MEDIA_TYPE, refuse
from arena.http.schemas import (
    ProblemSchema,
    StatsStreamQuerySchema,
    StreamHeadersSchema,
    StreamQuerySchema,
)
from arena.readmodel.boards import board_at, empty_board, read_board, recent_stats
from arena.readmodel.view import ViewJson
from arena.simulation import delta
from arena.simulation.board import Board

log = logging.getLogger(__name__)

blp = Blueprint(
    "arena_streams", __name__, url_prefix="/api/v1/arenas", description="Live streams (Redis)"
)

EVENT_STREAM = "text/event-stream"
LOOK_AGAIN_SECONDS = 1.0  # how long a stream trusts the notices before it reads the feed anyway
STATS_EVERY_SECONDS = 2.0
RECONNECT_MILLIS = 1000  # the `retry:` a client waits before it reconnects
REFUSED_RETRY_SECONDS = 5  # the Retry-After of a stream refused for want of a place or slot
SHORTEST_LIFETIME = 0.8  # a stream lasts this fraction of STREAM_MAX_SECONDS at least
LEASE_SECONDS = 30  # how long a client's place outlives a process that died holding it
HEARTBEAT_SECONDS = 1.0  # how often the heartbeat looks for leases due (each LEASE_SECONDS / 3)

# KEYS[1]: a client's streams, a sorted set: stream id -> when its lease runs out (Redis's clock,
# the one every process shares). ARGV: the stream's id, the cap, LEASE_SECONDS. Drops the leases
# run out, then takes or renews the stream's place, unless the client holds the cap without it
# (with cap 0: renews only, so a place given back or run out is never taken again by a renewal).
_HOLD = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

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
_CLIENT_BUSY_DOC = {
    "schema": ProblemSchema,
    "content_type": PROBLEM_MEDIA_TYPE,
    "description": "This client address holds STREAM_MAX_PER_CLIENT streams already",
    "headers": RETRY_AFTER_HEADER,
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
    @blp.alt_response(429, **_CLIENT_BUSY_DOC)
    @blp.alt_response(503, **_BUSY_DOC)
    def get(self, query: dict[str, Any], headers: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """The arena's events as they are projected: `event:` the type, `id:` the version,
        `data:` {version, type, occurredAt, eventId, payload}; TickAdvanced carries its delta
        (mode=DELTA) or its board (mode=FULL). Idle streams get a comment now and then."""
        parts, view = _arena(arena_id)
        resumed = headers.get("last_event_id")
        after = view["version"] if resumed is None else resumed
        full = query["mode"] == "FULL"
        return _streaming(parts, lambda lease: _event_frames(parts, view, after, full, lease))


@blp.route("/<uuid:arena_id>/stats/stream")
class ArenaStatsStream(MethodView):
    @blp.arguments(StatsStreamQuerySchema, location="query")
    @blp.doc(responses={"200": _STREAM_DOC})
    @blp.alt_response(404, **_MISSING_DOC)
    @blp.alt_response(429, **_CLIENT_BUSY_DOC)
    @blp.alt_response(503, **_BUSY_DOC)
    def get(self, query: dict[str, Any], arena_id: uuid.UUID) -> Response:
        """`event: stats` every few seconds, `data:` what GET /stats answers."""
        parts, view = _arena(arena_id)
        window = query["windowSeconds"]
        return _streaming(parts, lambda lease: _stats_frames(parts, view["id"], window, lease))


def _arena(arena_id: uuid.UUID) -> tuple[Components, ViewJson]:
    parts = components()
    view = parts.views.get(str(arena_id))
    if view is None:
        abort(404, message=f"Arena {arena_id} not found.")
    assert view is not None  # abort raised
    return parts, view


def _streaming(
    parts: Components, frames: Callable[[Lease], Generator[str, None, None]]
) -> Response:
    settings, slots = parts.settings, parts.stream_slots
    lease = client_lease(parts, get_remote_address())
    if not lease.take():
        refuse(
            429,
            f"This address holds {lease.cap} streams already; close one first.",
            "too-many-client-streams",
            REFUSED_RETRY_SECONDS,
        )
    if not slots.take():
        lease.give_back()
        refuse(
            503,
            f"This server holds {slots.limit} streams already; try again shortly.",
            "too-many-streams",
            REFUSED_RETRY_SECONDS,
        )
    _HEARTBEAT.add(lease)
    _bound_writes(settings.stream_send_timeout_seconds)

    def give_back() -> None:
        _HEARTBEAT.remove(lease)
        slots.give_back()  # before the place: whoever sees the place free finds the slot free
        lease.give_back()

    response = Response(_Held(frames(lease), give_back), mimetype=EVENT_STREAM)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not hold frames back
    return response


def _bound_writes(timeout_seconds: float) -> None:
    """A write that waits on the client longer than `timeout_seconds` fails, which ends the
    stream and closes the response (`_Held.close`: its slot and place given back).

    gunicorn's gthread and werkzeug's threaded server write with no timeout of their own, so a
    client that stops reading but keeps its connection open would hold its thread and slot for
    good. Both hand the app the connection's socket; this timeout lasts for the rest of the
    request (gunicorn makes the socket blocking again before the connection's next one)."""
    connection = request.environ.get("gunicorn.socket") or request.environ.get("werkzeug.socket")
    if isinstance(connection, socket.socket):
        connection.settimeout(timeout_seconds)


def client_lease(parts: Components, address: str) -> Lease:
    """A new stream's lease among those of the client at `address`, not taken yet."""
    settings = parts.settings
    lifetime = settings.stream_max_seconds * random.uniform(SHORTEST_LIFETIME, 1.0)
    return Lease(
        parts.views.redis,
        f"{settings.read_model_prefix}:stream-clients:{address}",
        settings.stream_max_per_client,
        time.monotonic() + lifetime,
    )


@dataclass
class Lease:
    """A stream's place among its client address's STREAM_MAX_PER_CLIENT, and its lifetime.

    The places are counted in the read model's Redis (`_HOLD`), so every API process counts the
    same ones. The process's heartbeat renews the lease while the server holds the stream, read
    or not, and the stream gives it back when it closes; one whose process died without giving
    it back drops out once its lease runs out (LEASE_SECONDS), so no place is lost for good. A
    stream goes on only while it holds its place and is within its lifetime.
    """

    redis: Redis
    key: str
    cap: int
    ends_at: float  # time.monotonic()
    stream: str = field(default_factory=lambda: uuid.uuid4().hex)
    renewed_at: float = 0.0
    lost: bool = False

    def take(self) -> bool:
        """Take the place: False when the client holds `cap` streams already."""
        return self._hold(self.cap)

    def renew(self) -> None:
        """Renew the place if still held; a stream whose place ran out (Redis away for a lease's
        length) or was given back stops at its next frame."""
        try:
            self.lost = not self._hold(0)
        except RedisError as error:  # the lease has until it runs out to be renewed
            log.warning("live streams: a client's place not renewed (%r)", error)

    def due(self) -> bool:
        return time.monotonic() - self.renewed_at >= LEASE_SECONDS / 3

    def running(self) -> bool:
        """Whether the stream may go on."""
        return not self.lost and time.monotonic() < self.ends_at

    def remaining(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    def give_back(self) -> None:
        try:
            self.redis.zrem(self.key, self.stream)
        except RedisError as error:  # the lease runs out by itself
            log.warning("live streams: a client's place not given back (%r)", error)

    def _hold(self, cap: int) -> bool:
        held = self.redis.register_script(_HOLD)(
            keys=[self.key], args=[self.stream, cap, LEASE_SECONDS]
        )
        self.renewed_at = time.monotonic()
        return bool(held)


class _Heartbeat:
    """Renews the lease of every stream this process holds, from one thread of its own: a
    stream's generator cannot, since one whose client stopped reading waits in a write, and its
    place must count against its client for as long as the stream holds a slot."""

    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}  # by stream id
        self._lock = threading.Lock()
        self._beating: threading.Thread | None = None

    def add(self, lease: Lease) -> None:
        """Renew `lease` until `remove`. The thread starts on first use, so in the process that
        serves (after a fork)."""
        with self._lock:
            self._leases[lease.stream] = lease
            if self._beating is None or not self._beating.is_alive():
                self._beating = threading.Thread(
                    target=self._beat, name="stream-leases", daemon=True
                )
                self._beating.start()

    def remove(self, lease: Lease) -> None:
        with self._lock:
            self._leases.pop(lease.stream, None)

    def _beat(self) -> None:
        while True:
            time.sleep(HEARTBEAT_SECONDS)
            with self._lock:
                due = [lease for lease in self._leases.values() if lease.due()]
            for lease in due:
                lease.renew()


_HEARTBEAT = _Heartbeat()


class _Held:
    """The frames, and the stream's slot and place given back when the server closes the
    response: at its end, when a write fails or times out, and for a client that left before the
    first frame (a generator never started has no `finally`)."""

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


def _frame(
    data: dict[str, Any], *, event: str, id_: int | None = None, board: Iterable[str] = ()
) -> Iterator[str]:
    """One event, in pieces; with `board`, the board's JSON text goes where `ARRAY` stands in
    `data`, built a few organisms at a time as it goes out."""
    head = f"event: {event}\n" + ("" if id_ is None else f"id: {id_}\n") + "data: "
    if not board:
        yield head + json.dumps(data, separators=(",", ":")) + "\n\n"
        return
    yield head
    yield from json_spliced(data, board)
    yield "\n\n"


def _event_frames(
    parts: Components, view: ViewJson, after: int, full: bool, lease: Lease
) -> Generator[str, None, None]:
    views, keepalive = parts.views, parts.settings.stream_keepalive_seconds
    arena_id = view["id"]
    boards = _Boards(parts, view) if full else None
    yield f"retry: {RECONNECT_MILLIS}\n\n"
    last, quiet_since = after, time.monotonic()
    while lease.running():
        entries = views.feed_after(arena_id, last)
        if entries is None:
            now = views.get(arena_id) or view
            yield from _frame(
                {"version": now["version"], "reason": "behind-feed"},
                event="reset",
                id_=now["version"],
            )
            last = now["version"]
            continue
        for entry, board in _with_ticks(parts, arena_id, entries, boards):
            yield from _frame(entry, event=entry["type"], id_=entry["version"], board=board)
            last, quiet_since = entry["version"], time.monotonic()
        if time.monotonic() - quiet_since >= keepalive:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        parts.notices.wait_past(arena_id, last, min(LOOK_AGAIN_SECONDS, lease.remaining()))


def _with_ticks(
    parts: Components, arena_id: str, entries: list[dict[str, Any]], boards: _Boards | None
) -> Iterator[tuple[dict[str, Any], Iterable[str]]]:
    """The feed leaves deltas out; a stream puts each tick's back (or, FULL, its board, as JSON
    text in pieces: each entry is to go out before the next one's board is made)."""
    ticks = [e["payload"]["tick"] for e in entries if e["type"] == "TickAdvanced"]
    deltas: dict[int, Any] = {}
    if ticks:
        keys = parts.views.keys()
        recorded = parts.views.redis.hmget(keys.ticks(arena_id), [str(tick) for tick in ticks])
        found = zip(ticks, recorded, strict=True)
        deltas = {tick: json.loads(raw)["delta"] for tick, raw in found if raw}
    for entry in entries:
        if entry["type"] != "TickAdvanced":
            yield entry, ()
            continue
        payload, tick = entry["payload"], entry["payload"]["tick"]
        if boards is None:
            payload["delta"] = deltas.get(tick)
            yield entry, ()
            continue
        board = boards.at(tick, deltas.get(tick), entry["version"], payload)
        payload["board"] = None if board is None else ARRAY
        yield entry, board or ()


@dataclass
class _Boards:
    """A FULL stream's board, carried from tick to tick by the deltas it sends."""

    parts: Components
    view: ViewJson
    board: Board | None = None

    def at(
        self, tick: int, wire: dict[str, Any] | None, version: int, payload: dict[str, Any]
    ) -> Iterator[str] | None:
        if self.board is not None and wire is not None and self.board.tick == tick - 1:
            self.board = delta.apply(self.board, delta.decode(wire))
        else:
            views, arena_id, empty = self.parts.views, self.view["id"], empty_board(self.view)
            current = read_board(views.redis, views.keys(), arena_id, empty)
            self.board = board_at(views.redis, views.keys(), arena_id, tick, current, empty)
        if self.board is None:
            return None
        shown = {"id": self.view["id"], "version": version, "stats": payload.get("stats")}
        return board_json(self.board, shown)


def _stats_frames(
    parts: Components, arena_id: str, window_seconds: int, lease: Lease
) -> Generator[str, None, None]:
    views = parts.views
    yield f"retry: {RECONNECT_MILLIS}\n\n"
    while lease.running():
        view = views.get(arena_id)
        if view is not None:
            keys = views.keys()
            board = read_board(views.redis, keys, arena_id, empty_board(view))
            recent = recent_stats(views.redis, keys, arena_id, views.history_ticks)
            body = stats_body(board, recent, window_seconds, datetime.now(UTC))
            data = {"arenaId": arena_id, "version": view["version"]} | body
            yield from _frame(data, event="stats", id_=view["version"])
        time.sleep(min(STATS_EVERY_SECONDS, lease.remaining()))
