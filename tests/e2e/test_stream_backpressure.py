"""A live-stream client that stops reading holds up nothing but its own stream.

A raw socket with a tiny receive buffer asks for a FULL stream of a ticking arena (a board per
tick, so the server's writes back up within a few ticks) and then never reads. Meanwhile the
arena it watches keeps being projected, and another arena's commands reach the read model as
fast as before the client stalled: measured, and printed beside each other.
"""

from __future__ import annotations

import socket
import statistics
import time
from urllib.parse import urlsplit

import pytest

from harness.waiting import wait_until
from tests.support.http import send
from tests.support.reads import send_at_version

pytestmark = pytest.mark.e2e

COMMANDS = 20
DEADLINE_SECONDS = 60


def _arena(site: str, name: str, tick_millis: int) -> tuple[str, str]:
    body = {"name": name, "displayName": "Ada", "config": {"tickMillis": tick_millis}}
    created = send(f"{site}/api/v1/arenas", body)
    return str(created["id"]), str(created["player"]["token"])  # type: ignore[index]


def _visible_seconds(site: str, arena_id: str, token: str) -> list[float]:
    """Per command (an action on a paused arena): from its answer until the view shows it."""
    seconds = []
    for n in range(COMMANDS):
        action = {
            "type": "ADD_NUTRIENTS",
            "payload": {"area": {"x": 0, "y": 0, "width": 2, "height": 2}, "amount": n + 1},
        }
        answered = send(f"{site}/api/v1/arenas/{arena_id}/actions", action, token)
        started = time.monotonic()
        view = send_at_version(f"{site}/api/v1/arenas/{arena_id}", answered["version"])
        assert view["version"] >= answered["version"]
        seconds.append(time.monotonic() - started)
    return seconds


def test_a_client_that_stops_reading_delays_no_projection(site: str) -> None:
    watched, watched_token = _arena(site, "Watched dish", 100)
    other, other_token = _arena(site, "Other dish", 3_600_000)
    everywhere = {"x": 0, "y": 0, "width": 32, "height": 32}
    feed = {"type": "ADD_NUTRIENTS", "payload": {"area": everywhere, "amount": 5}}
    for arena_id, token in ((watched, watched_token), (other, other_token)):
        send(f"{site}/api/v1/arenas/{arena_id}/start", {}, token)
        send(f"{site}/api/v1/arenas/{arena_id}/actions", feed, token)
    send(f"{site}/api/v1/arenas/{other}/pause", {}, other_token)
    _visible_seconds(site, other, other_token)  # warm-up: the first commands wake every stage
    before = _visible_seconds(site, other, other_token)

    address = urlsplit(site)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((address.hostname, address.port))
    try:
        stalled.sendall(
            f"GET /api/v1/arenas/{watched}/stream?mode=FULL HTTP/1.1\r\n"
            f"Host: {address.netloc}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        assert b"200" in stalled.recv(64)  # the stream is open; from here on, never read

        def watched_version() -> int:
            return int(send(f"{site}/api/v1/arenas/{watched}")["version"])  # type: ignore[arg-type]

        stalled_at = watched_version()
        # The watched arena's own projection goes on while its one client reads nothing ...
        wait_until(
            lambda: watched_version() >= stalled_at + 50,
            deadline_seconds=DEADLINE_SECONDS,
            what="the watched arena projected 50 more events with its client stalled",
        )
        # ... and so do other arenas'.
        during = _visible_seconds(site, other, other_token)
    finally:
        stalled.close()

    print(
        f"\ncommand → visible, {COMMANDS} commands: p50/max "
        f"{statistics.median(before) * 1000:.0f}/{max(before) * 1000:.0f} ms before the client "
        f"stalled, {statistics.median(during) * 1000:.0f}/{max(during) * 1000:.0f} ms with it"
    )
    assert len(during) == COMMANDS  # every command became visible
