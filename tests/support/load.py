"""`CommandLoad`: many arenas driven through the command API from a few threads, the way several
clients would, remembering the version each command answered (the end-to-end tests' load).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from harness.arenas import COMMANDS_ONLY
from tests.support.api import ARENAS, arena_path, bearer, set_temperature


@dataclass
class ArenaRun:
    """One arena driven through the API: its credentials and what its commands answered."""

    id: str = ""
    admin_token: str = ""
    players: dict[str, tuple[str, str]] = field(default_factory=dict)  # name → (id, token)
    version: int = 0
    status: str = "PENDING"
    step: int = 0
    finish: bool = False  # stopped (FINISHED) after its script


def _post(client: FlaskClient, path: str, token: str | None = None, **kwargs: Any) -> Any:
    headers = bearer(token) if token else {}
    return client.post(path, headers=headers, **kwargs)


def _create(client: FlaskClient, arena: ArenaRun, name: str) -> Any:
    response = client.post(
        ARENAS, json={"name": name, "displayName": "Ada", "config": COMMANDS_ONLY}
    )
    if response.status_code == 201:
        body = response.get_json()
        arena.id, arena.admin_token = body["id"], body["player"]["token"]
    return response


def _join(who: str) -> Callable[[FlaskClient, ArenaRun, str], Any]:
    def step(client: FlaskClient, arena: ArenaRun, _: str) -> Any:
        response = client.post(arena_path(arena.id, "/players"), json={"displayName": who})
        if response.status_code == 201:
            player = response.get_json()["player"]
            arena.players[who] = (player["id"], player["token"])
        return response

    return step


def _transition(command: str) -> Callable[[FlaskClient, ArenaRun, str], Any]:
    def step(client: FlaskClient, arena: ArenaRun, _: str) -> Any:
        return _post(client, arena_path(arena.id, f"/{command}"), arena.admin_token)

    return step


def _act(who: str | None, value: float) -> Callable[[FlaskClient, ArenaRun, str], Any]:
    def step(client: FlaskClient, arena: ArenaRun, _: str) -> Any:
        token = arena.players[who][1] if who else arena.admin_token
        return _post(client, arena_path(arena.id, "/actions"), token, json=set_temperature(value))

    return step


def _configure(changes: dict[str, Any]) -> Callable[[FlaskClient, ArenaRun, str], Any]:
    def step(client: FlaskClient, arena: ArenaRun, _: str) -> Any:
        return client.patch(
            arena_path(arena.id, "/config"), headers=bearer(arena.admin_token), json=changes
        )

    return step


def _leave(who: str) -> Callable[[FlaskClient, ArenaRun, str], Any]:
    def step(client: FlaskClient, arena: ArenaRun, _: str) -> Any:
        player_id, token = arena.players.pop(who)
        return client.delete(arena_path(arena.id, f"/players/{player_id}"), headers=bearer(token))

    return step


# Every command kind the read model projects, in an order the domain accepts: 11 events.
SCRIPT: tuple[Callable[[FlaskClient, ArenaRun, str], Any], ...] = (
    _create,
    _join("Bob"),
    _join("Cy"),
    _configure({"width": 32, "maxPlayers": 6}),
    _transition("start"),
    _act(None, 30.0),
    _act("Bob", 31.5),
    _transition("pause"),
    _configure({"temperature": {"value": 25.0}}),
    _transition("resume"),
    _leave("Cy"),
)
FINISH = _transition("stop")


class CommandLoad:
    """Threads that each keep a few arenas going, one command at a time, round-robin.

    Arenas advance step by step through `SCRIPT` (and every other one is then stopped), so the
    events of many arenas interleave in the outbox and on each Kafka partition. With `arenas`
    the load ends once that many arenas went through their script; without, it runs until
    `stop()`, opening new arenas as old ones finish. Any command answering other than 2xx is kept
    in `failures`.
    """

    def __init__(
        self,
        app: Flask,
        *,
        name: str,
        threads: int = 4,
        arenas: int | None = None,
        working_set: int = 5,
        pause_seconds: float = 0.0,
    ) -> None:
        self._app = app
        self._name = name
        self._threads_wanted = threads
        self._limit = arenas
        self._working_set = working_set
        self._pause = pause_seconds
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._opened = 0
        self._threads: list[threading.Thread] = []
        self.arenas: list[ArenaRun] = []
        self.commands = 0
        self.failures: list[str] = []
        self.errors: list[BaseException] = []

    def start(self) -> CommandLoad:
        for number in range(self._threads_wanted):
            thread = threading.Thread(target=self._run, name=f"load-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def join(self, timeout: float = 300) -> None:
        for thread in self._threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self._threads), "load did not stop"
        if self.errors:
            raise self.errors[0]

    def run(self) -> CommandLoad:
        self.start()
        self.join()
        return self

    def versions(self) -> dict[str, int]:
        with self._lock:
            return {arena.id: arena.version for arena in self.arenas if arena.id}

    def assert_views_show_last_answers(self, client: FlaskClient) -> None:
        """What the API serves agrees: every arena at its last answered version and status,
        none stalled."""
        for arena in self.arenas:
            view = client.get(arena_path(arena.id)).get_json()
            assert (view["version"], view["status"], view["stalled"]) == (
                arena.version,
                arena.status,
                False,
            ), arena.id

    def _claim(self) -> ArenaRun | None:
        with self._lock:
            if self._limit is not None and self._opened >= self._limit:
                return None
            self._opened += 1
            return ArenaRun(finish=self._opened % 2 == 0)

    def _run(self) -> None:
        try:
            client = self._app.test_client()
            mine: list[ArenaRun] = []
            while not self._stopping.is_set():
                while len(mine) < self._working_set and (claimed := self._claim()):
                    mine.append(claimed)
                if not mine:
                    return
                for arena in list(mine):
                    if self._stopping.is_set():
                        return
                    if not self._advance(client, arena):
                        mine.remove(arena)
                    if self._pause:
                        time.sleep(self._pause)  # a paced client, not a wait for a result
        except BaseException as error:  # noqa: BLE001 - join() raises it in the test
            self.errors.append(error)

    def _advance(self, client: FlaskClient, arena: ArenaRun) -> bool:
        """Run the arena's next command; False once its script is over."""
        if arena.step < len(SCRIPT):
            step = SCRIPT[arena.step]
        elif arena.step == len(SCRIPT) and arena.finish:
            step = FINISH
        else:
            return False
        response = step(client, arena, f"{self._name} {uuid.uuid4().hex[:8]}")
        arena.step += 1
        with self._lock:
            self.commands += 1
            if arena.step == 1 and arena.id:
                self.arenas.append(arena)
            if response.status_code // 100 != 2:
                self.failures.append(
                    f"{response.request.method} {response.request.path}: "
                    f"{response.status_code} {response.get_data(as_text=True)[:300]}"
                )
                return False
            body = response.get_json()
            arena.version = body.get("version", arena.version)
            arena.status = body.get("status", arena.status)
        return True
