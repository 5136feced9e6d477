"""Live streams (Server-Sent Events) over the real read model, fed by the real tick path's events.

The streams run in the test's process (Flask's test client, unbuffered), so each frame is read
as the server yields it; their wake-ups come from the real Redis notices of the projection.
Apps of their own (beside the session's, on the same services, as API processes are) have a
small per-client cap or a short lifetime; a client that stops reading talks to a real HTTP
server on loopback through a raw socket.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from arena import create_app
from arena.bootstrap import components
from arena.http import streams
from arena.readmodel.keys import applied_channel
from arena.settings import Settings
from harness.waiting import wait_until
from tests.support.api import arena_path, problem_of
from tests.support.clients import client_at, new_address
from tests.support.dish import Dish

pytestmark = pytest.mark.integration

FRAME_DEADLINE_SECONDS = 10.0  # keep-alives come every second here, so a read never hangs
PER_CLIENT = 2
LIFETIME_SECONDS = 2.0
END_DEADLINE_SECONDS = LIFETIME_SECONDS + 20.0  # a busy machine may be slow to end a stream
SEND_TIMEOUT_SECONDS = 8.0  # twice the lease the stalled-client test gives: it runs out unrenewed
SMALL_BUFFER_BYTES = 4096  # a client's writes back up within a few frames


@contextmanager
def _stream(client: FlaskClient, path: str, **headers: str) -> Iterator[_Frames]:
    response = client.get(path, headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    try:
        yield _Frames(response)
    finally:
        response.close()


class _Frames:
    """The stream's frames as a client parses them: {event, id, data} or a comment."""

    def __init__(self, response: TestResponse) -> None:
        self._chunks = iter(response.response)
        self._pending = ""

    def next(self) -> dict[str, Any]:
        while "\n\n" not in self._pending:  # a frame may come in several chunks
            chunk = next(self._chunks)
            self._pending += chunk.decode() if isinstance(chunk, bytes) else chunk
        text, self._pending = self._pending.split("\n\n", 1)
        frame: dict[str, Any] = {}
        for line in text.strip("\n").split("\n"):
            field, _, value = line.partition(": ")
            if line.startswith(":"):
                frame["comment"] = line[1:].strip()
            elif field == "data":
                frame["data"] = json.loads(value)
            else:
                frame[field] = value
        return frame

    def events(self, *, through_version: int) -> list[dict[str, Any]]:
        """Event frames until the one of `through_version`; comments and `retry:` skipped."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + FRAME_DEADLINE_SECONDS
        while not found or int(found[-1]["id"]) < through_version:
            assert time.monotonic() < deadline, f"no frame of version {through_version}: {found}"
            frame = self.next()
            if "event" in frame:
                found.append(frame)
        return found

    def next_event_or_keepalive(self) -> dict[str, Any]:
        while True:
            frame = self.next()
            if "event" in frame or "comment" in frame:
                return frame


def _until_the_end(frames: _Frames) -> list[dict[str, Any]]:
    """Every frame left, until the server ends the stream."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + END_DEADLINE_SECONDS
    while True:
        assert time.monotonic() < deadline, f"the stream did not end: {found[-3:]}"
        try:
            found.append(frames.next())
        except StopIteration:
            return found


def _refused(client: FlaskClient, path: str) -> TestResponse:
    """A request for a stream that the server must refuse, read unbuffered: a stream opened
    instead fails the test rather than hanging it."""
    response = client.get(path, buffered=False)
    if response.status_code == 200:
        response.close()
        pytest.fail(f"{path}: a stream opened")
    return response


def _app(settings: Settings, **overrides: Any) -> Flask:
    made = create_app(dataclasses.replace(settings, **overrides))
    made.config["TESTING"] = True
    return made


@pytest.fixture(scope="module")
def capped(settings: Settings, app: Flask) -> tuple[Flask, Flask]:
    """Two API processes, as it were, each letting one client address hold PER_CLIENT streams."""
    return (
        _app(settings, stream_max_per_client=PER_CLIENT),
        _app(settings, stream_max_per_client=PER_CLIENT),
    )


@pytest.fixture(scope="module")
def short_lived(settings: Settings, app: Flask) -> Flask:
    """An API that ends every stream after LIFETIME_SECONDS."""
    return _app(settings, stream_max_seconds=LIFETIME_SECONDS)


def _version(dish: Dish) -> int:
    """The version of the arena's view, with every event so far projected."""
    dish.project()
    return int(dish.get("").get_json()["version"])


def test_a_client_connected_before_a_burst_gets_every_event_once_in_order(dish: Dish) -> None:
    before = _version(dish)
    with _stream(dish.client, arena_path(dish.id, "/stream")) as frames:
        assert "retry" in frames.next()
        dish.tick(6)
        after = _version(dish)
        got = frames.events(through_version=after)
    assert [int(f["id"]) for f in got] == list(range(before + 1, after + 1))
    feed = dish.get("/events", limit=50).get_json()["events"][::-1]
    sent = [f["data"] for f in got]
    assert [(e["version"], e["type"]) for e in sent] == [
        (e["version"], e["type"]) for e in feed if e["version"] > before
    ]
    assert all(f["event"] == f["data"]["type"] for f in got)
    ticks = [e for e in sent if e["type"] == "TickAdvanced"]
    assert [e["payload"]["tick"] for e in ticks] == [1, 2, 3, 4, 5, 6]
    history = dish.get("/history", fromTick=1, toTick=6).get_json()["ticks"]
    assert [e["payload"]["delta"] for e in ticks] == [entry["delta"] for entry in history]


def test_a_client_that_reconnects_gets_exactly_what_it_missed(dish: Dish) -> None:
    dish.tick(3)
    start = _version(dish)
    dish.tick(3)
    latest = _version(dish)
    path = arena_path(dish.id, "/stream")
    with _stream(dish.client, path, **{"Last-Event-ID": str(start)}) as frames:
        got = frames.events(through_version=latest)
        assert "comment" in frames.next_event_or_keepalive()  # and nothing after the last one
    assert [int(f["id"]) for f in got] == list(range(start + 1, latest + 1))


def test_a_client_further_behind_than_the_feed_is_told_to_reload(dish: Dish) -> None:
    dish.tick(60)  # more events than the feed keeps
    latest = _version(dish)
    with _stream(dish.client, arena_path(dish.id, "/stream"), **{"Last-Event-ID": "1"}) as frames:
        reset = frames.next_event_or_keepalive()
    assert (reset["event"], int(reset["id"])) == ("reset", latest)
    assert reset["data"]["version"] == latest


def test_a_full_stream_carries_each_ticks_board(dish: Dish) -> None:
    dish.tick(2)
    with _stream(dish.client, arena_path(dish.id, "/stream") + "?mode=FULL") as frames:
        dish.tick(3)
        got = frames.events(through_version=_version(dish))
    boards = [f["data"]["payload"]["board"] for f in got if f["event"] == "TickAdvanced"]
    assert [board["tick"] for board in boards] == [3, 4, 5]
    tick, board_hash, _ = dish.written()
    assert (boards[-1]["tick"], boards[-1]["boardHash"]) == (tick, board_hash)
    assert "delta" not in got[-1]["data"]["payload"]


def test_the_stats_stream_sends_what_the_stats_query_answers(dish: Dish) -> None:
    dish.tick(4)
    with _stream(dish.client, arena_path(dish.id, "/stats/stream")) as frames:
        frame = frames.next_event_or_keepalive()
    assert frame["event"] == "stats"
    queried = dish.get("/stats").get_json()
    for field in ("tick", "organismCount", "version"):
        assert frame["data"][field] == queried[field]


def test_bad_stream_requests_are_refused_naming_the_field(dish: Dish) -> None:
    dish.project()
    path = arena_path(dish.id, "/stream")
    refused = problem_of(dish.client.get(path + "?mode=SIDEWAYS"), 422, "validation-failed")
    assert [e["field"] for e in refused["errors"]] == ["mode"]
    refused = problem_of(
        dish.client.get(path, headers={"Last-Event-ID": "yesterday"}), 422, "validation-failed"
    )
    assert [e["field"] for e in refused["errors"]] == ["Last-Event-ID"]
    unknown = "/api/v1/arenas/00000000-0000-4000-8000-000000000000/stream"
    problem_of(dish.client.get(unknown), 404, "not-found")


def test_open_streams_are_bounded_and_reported(app: Flask, dish: Dish) -> None:
    slots = components(app).stream_slots
    dish.project()
    path = arena_path(dish.id, "/stream")
    with ExitStack() as held:
        for _ in range(slots.limit):  # each from an address of its own: under its own cap
            held.enter_context(_stream(client_at(app), path))
        assert dish.client.get("/readyz").get_json()["streams"] == {
            "open": slots.limit,
            "limit": slots.limit,
        }
        busy = _refused(client_at(app), path)
        problem_of(busy, 503, "too-many-streams")
        assert busy.headers["Retry-After"]
    assert slots.open == 0  # every closed stream gave its slot back
    with _stream(dish.client, path) as frames:
        assert "retry" in frames.next()


def test_one_client_holds_at_most_its_cap_across_processes_and_others_still_get_in(
    capped: tuple[Flask, Flask], dish: Dish
) -> None:
    dish.project()
    events, stats = arena_path(dish.id, "/stream"), arena_path(dish.id, "/stats/stream")
    greedy = new_address()
    with ExitStack() as held:
        for n in range(PER_CLIENT):  # spread over both processes
            held.enter_context(_stream(client_at(capped[n % 2], greedy), events))
        for refused in (
            _refused(client_at(capped[0], greedy), events),
            _refused(client_at(capped[1], greedy), stats),
        ):
            problem_of(refused, 429, "too-many-client-streams")
            assert int(refused.headers["Retry-After"]) >= 1
        with _stream(client_at(capped[1]), events) as frames:  # another client still gets in
            assert "retry" in frames.next()
        assert (
            components(capped[0]).stream_slots.open + components(capped[1]).stream_slots.open
            == PER_CLIENT
        )
    # The greedy client's streams closed, their places are given back.
    with ExitStack() as held:
        for n in range(PER_CLIENT):
            frames = held.enter_context(_stream(client_at(capped[n % 2], greedy), stats))
            assert "retry" in frames.next()


def test_places_a_dead_process_held_are_freed_once_their_leases_run_out(
    capped: tuple[Flask, Flask], dish: Dish, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "LEASE_SECONDS", 5)
    dish.project()
    path = arena_path(dish.id, "/stats/stream")
    address = new_address()
    # Places taken as a process takes them, by a process that died: nothing renews them.
    for _ in range(PER_CLIENT):
        assert streams.client_lease(components(capped[0]), address).take()

    def reopened() -> TestResponse | None:
        response = client_at(capped[1], address).get(path, buffered=False)
        if response.status_code == 200:
            return response
        problem_of(response, 429, "too-many-client-streams")
        return None

    assert reopened() is None
    wait_until(reopened, deadline_seconds=30, what="the unrenewed places freed").close()


@contextmanager
def _served(app: Flask) -> Iterator[int]:
    """The app on a real threaded HTTP server on loopback (its port), each connection with a
    small send buffer (inherited from the listening socket)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER_BYTES)
    serving = threading.Thread(target=server.serve_forever, name="stalled-web", daemon=True)
    serving.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_that_stops_reading_counts_against_its_cap_until_the_server_ends_its_stream(
    settings: Settings, dish: Dish, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "LEASE_SECONDS", 4)
    stalling = _app(
        settings, stream_max_per_client=1, stream_send_timeout_seconds=SEND_TIMEOUT_SECONDS
    )
    slots = components(stalling).stream_slots
    dish.project()
    path = arena_path(dish.id, "/stream") + "?mode=FULL"  # a board a tick
    address = new_address()
    with _served(stalling) as port, socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER_BYTES)
        stalled.bind((address, 0))
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert b" 200 " in stalled.recv(64)  # the stream is open; from here on, never read

        def freed() -> bool:
            dish.tick()  # a board more that the client does not read
            again = client_at(stalling, address).get(path, buffered=False)
            try:
                if again.status_code == 429:  # its stream still counts, however long unread
                    problem_of(again, 429, "too-many-client-streams")
                    return False
                assert again.status_code == 200, again.get_data(as_text=True)
                assert slots.open == 1  # this one alone: the stalled stream's slot went first
                return True
            finally:
                again.close()

        wait_until(freed, deadline_seconds=60, what="the stalled stream ended by the server")
        stalled.settimeout(FRAME_DEADLINE_SECONDS)
        while stalled.recv(65536):  # what the buffers held, then the end: the server hung up
            pass
    assert slots.open == 0


def test_lifetimes_are_spread_so_streams_opened_together_reconnect_apart(
    short_lived: Flask,
) -> None:
    parts = components(short_lived)
    opened = time.monotonic()
    leases = [streams.client_lease(parts, new_address()) for _ in range(20)]
    assert all(
        opened + streams.SHORTEST_LIFETIME * LIFETIME_SECONDS
        <= lease.ends_at
        <= time.monotonic() + LIFETIME_SECONDS
        for lease in leases
    )
    assert len({lease.ends_at for lease in leases}) > 1


def test_the_server_ends_a_stream_after_its_lifetime_and_the_client_resumes(
    short_lived: Flask, dish: Dish
) -> None:
    dish.tick(2)
    start = _version(dish)
    path = arena_path(dish.id, "/stream")
    client = client_at(short_lived)
    opened = time.monotonic()
    with _stream(client, path) as frames:
        assert frames.next() == {"retry": "1000"}  # what EventSource waits before reconnecting
        _until_the_end(frames)  # keep-alives, then a clean end: no error, nothing half sent
    assert time.monotonic() - opened >= streams.SHORTEST_LIFETIME * LIFETIME_SECONDS
    assert components(short_lived).stream_slots.open == 0
    dish.tick(2)
    latest = _version(dish)
    # Reconnecting as EventSource does, with the last id it got: exactly what it missed.
    with _stream(client, path, **{"Last-Event-ID": str(start)}) as frames:
        got = frames.events(through_version=latest)
    assert [int(f["id"]) for f in got] == list(range(start + 1, latest + 1))
    with _stream(client, arena_path(dish.id, "/stats/stream")) as frames:
        assert any(frame.get("event") == "stats" for frame in _until_the_end(frames))


def test_a_notice_of_the_projection_wakes_a_waiting_stream(app: Flask, settings: Settings) -> None:
    notices = components(app).notices
    arena_id = str(uuid.uuid4())
    woken: list[bool] = []
    waiter = threading.Thread(target=lambda: woken.append(notices.wait_past(arena_id, 4, 30)))
    waiter.start()
    publisher = Redis.from_url(settings.redis_url)
    try:
        # The listener subscribes on its own thread: say it until the waiter has heard it.
        wait_until(
            lambda: (
                publisher.publish(applied_channel(settings.read_model_prefix), f"{arena_id} 5")
                is not None
                and not waiter.is_alive()
            ),
            deadline_seconds=10,
            what="the waiting stream woken",
        )
    finally:
        publisher.close()
    assert woken == [True]
    assert notices.wait_past(arena_id, 4, 0.0)  # already past: no wait at all
    assert not notices.wait_past(arena_id, 5, 0.05)  # nothing past 5 yet: the timeout
