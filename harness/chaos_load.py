"""The chaos matrix's load: clients that retry as real ones do, and watchers of what shows.

Each client thread drives arenas through SCRIPT (harness/script.py) over HTTP, one command at a
time per arena. A command that gets no answer (the API killed), a 5xx (PostgreSQL away) or a 429 is
sent again with the same Idempotency-Key until it is answered, so a command is accepted at most
once however often it was sent. Every accepted command is handed to a watcher, which reads the
arena with ?minVersion until the view shows it: the time from the answer to that moment is the
command's visibility latency.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from harness.httpclient import Reply, call
from harness.script import SCRIPT, Session, command_request

API = "/api/v1/arenas"
RETRY_PAUSE_SECONDS = 0.2
WATCHERS = 8
VISIBLE_WITHIN_SECONDS = 600.0  # a watcher gives up on a command after this long


def worth_again(reply: Reply) -> bool:
    """No answer (the API down), a 5xx (PostgreSQL away) or a 429: send it again."""
    return reply.status == 0 or reply.status >= 500 or reply.status == 429


def send_until_answered(
    port: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    deadline_seconds: float = VISIBLE_WITHIN_SECONDS,
) -> tuple[Reply, int]:
    """Send with one Idempotency-Key until a reply is not worth sending again, or the deadline;
    answers the last reply and how many times the command was sent."""
    key = uuid.uuid4().hex
    deadline = time.monotonic() + deadline_seconds
    for attempt in itertools.count(1):
        reply = call(port, method, path, body, token=token, idempotency_key=key)
        if not worth_again(reply) or time.monotonic() > deadline:
            return reply, attempt
        time.sleep(RETRY_PAUSE_SECONDS)
    raise AssertionError("unreachable")


@dataclass(slots=True)
class Accepted:
    """An accepted command; times are time.monotonic()."""

    arena_id: str
    version: int
    answered: float
    visible: float | None = None

    @property
    def visible_ms(self) -> float | None:
        return None if self.visible is None else 1000 * max(0.0, self.visible - self.answered)


@dataclass
class RetryingLoad:
    port: int
    clients: int = 4
    arenas_per_client: int = 3
    pause_seconds: float = 0.05
    accepted: list[Accepted] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # 4xx other than 429: a bug in the load
    resent: int = 0  # sends beyond each command's first: what the faults cost the clients
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shown: queue.Queue[Accepted | None] = field(default_factory=queue.Queue)
    _threads: list[threading.Thread] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)

    def start(self) -> RetryingLoad:
        for number in range(self.clients):
            self._spawn(self._client, f"chaos-client-{number}")
        for number in range(WATCHERS):
            self._spawn(self._watcher, f"chaos-watcher-{number}")
        return self

    def stop_sending(self) -> None:
        """Clients stop after the command in hand (answered, however many attempts it takes)."""
        self._stop.set()
        for thread in self._threads:
            if thread.name.startswith("chaos-client"):
                thread.join()

    def wait_visible(self, deadline_seconds: float) -> None:
        """Until every accepted command is visible (or the deadline); then the watchers end."""
        deadline = time.monotonic() + deadline_seconds
        while time.monotonic() < deadline and any(a.visible is None for a in self.snapshot()):
            time.sleep(0.1)
        for _ in range(WATCHERS):
            self._shown.put(None)
        for thread in self._threads:
            thread.join(timeout=VISIBLE_WITHIN_SECONDS)

    def snapshot(self) -> list[Accepted]:
        with self._lock:
            return list(self.accepted)

    def arenas(self) -> set[str]:
        return {a.arena_id for a in self.snapshot()}

    def _spawn(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _client(self) -> None:
        sessions = [Session(next(self._numbers)) for _ in range(self.arenas_per_client)]
        while not self._stop.is_set():
            for number, session in enumerate(sessions):
                if self._stop.is_set():
                    return
                if session.step == len(SCRIPT):  # through its life: a new arena takes its place
                    session = sessions[number] = Session(next(self._numbers))
                self._send(session)
                time.sleep(self.pause_seconds)  # a paced client, not a wait for a result

    def _send(self, session: Session) -> None:
        kind = SCRIPT[session.step]
        method, path, body, token = command_request(session, kind)
        reply, attempts = send_until_answered(self.port, method, path, body, token=token)
        with self._lock:
            self.resent += attempts - 1
        if not (200 <= reply.status < 300 and isinstance(reply.body, dict)):
            with self._lock:
                self.refused.append(f"{method} {path}: {reply.status} {reply.body}"[:300])
            session.step = len(SCRIPT)  # its state is unknown now: let the arena go
            return
        if kind == "create":
            session.arena_id = reply.body["id"]
            session.admin_token = reply.body["player"]["token"]
        elif kind == "join":
            session.player_token = reply.body["player"]["token"]
        session.step += 1
        accepted = Accepted(str(session.arena_id), int(reply.body["version"]), time.monotonic())
        with self._lock:
            self.accepted.append(accepted)
        self._shown.put(accepted)

    def _watcher(self) -> None:
        while (accepted := self._shown.get()) is not None:
            path = f"{API}/{accepted.arena_id}?minVersion={accepted.version}"
            give_up = accepted.answered + VISIBLE_WITHIN_SECONDS
            while time.monotonic() < give_up:
                reply = call(self.port, "GET", path)
                if reply.status == 200:
                    accepted.visible = time.monotonic()
                    break
                time.sleep(RETRY_PAUSE_SECONDS)  # the read model away, or behind past the wait
