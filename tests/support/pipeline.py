"""The real pipeline's processes, and the load and tools the end-to-end tests drive it with.

`Pipeline` runs `celery -A tasks worker`, `celery -A tasks beat` and `flask consume` as
subprocesses with a run's settings (what `tests/e2e/conftest.py` does), plus what failure tests
need: per-process environment overrides, SIGKILL of one process (its whole process group, so a
prefork worker dies with its pool, as on a crashed machine), restart, and the operator's CLI
(`flask verify`, `flask projections rebuild`, `flask dlq …`) run with the same environment.

`CommandLoad` drives many arenas through the command API from a few threads, the way several
clients would, and remembers the version each command answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from kafka import KafkaConsumer, KafkaProducer

from arena.domain.envelope import EventEnvelope
from arena.messaging.celery import relay_queue
from arena.settings import Settings
from tests.support.api import ARENAS, COMMANDS_ONLY, arena_path, bearer, set_temperature
from tests.support.processes import ROOT as ROOT  # the e2e tests import it from here
from tests.support.processes import (
    Supervisor,
    celery_beat_command,
    celery_worker_command,
    flask_command,
    pipeline_env,
    run_flask,
)
from tests.support.waiting import wait_until

CLI_TIMEOUT_SECONDS = 240
ARENA_ID = re.compile(r"arena ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
MAX_RESTARTS = 10  # a process dying more often than this is broken, not unlucky

# --- processes ---------------------------------------------------------------------------------


def worker_command(name: str, concurrency: int, queue: str | None = None) -> list[str]:
    """A Celery worker node; without `queue` it serves every queue, as `make worker` does."""
    hostname = f"{name}-{os.getpid()}-{uuid.uuid4().hex[:6]}@%h"
    return celery_worker_command(hostname, concurrency, queue)


class ProcessRestarted(UserWarning):
    """A pipeline process died on its own and the test's supervisor started it again."""


@dataclass
class Pipeline:
    """Named subprocesses of one pipeline (tests/support/processes.py runs them).

    Like the compose file's `restart: unless-stopped`, a supervisor thread starts again a process
    that exits on its own (not one the test stopped or killed), and says so: a line in the
    process's log and a `ProcessRestarted` warning in the test report. A process that keeps
    dying fails the test (`assert_running`).
    """

    settings: Settings
    logs: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    _processes: Supervisor = field(init=False)
    _supervised: set[str] = field(default_factory=set)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _closing: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._processes = Supervisor(self.logs)

    @property
    def env(self) -> dict[str, str]:
        return pipeline_env(self.settings, **self.env_overrides)

    def env_of(self, name: str) -> dict[str, str]:
        """The environment the named process was (last) started with."""
        return self._processes.env_of(name)

    def start(self, name: str, command: list[str] | None = None, **overrides: str) -> None:
        """Start (or start again) a process; its output is appended to `<logs>/<name>.log`."""
        with self._lock:
            if command is not None:
                self.commands[name] = command
            self._processes.start(name, self.commands[name], self.env | overrides)
            self._supervised.add(name)

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything in its process group (a prefork pool too)."""
        with self._lock:
            self._supervised.discard(name)
            self._processes.kill(name)

    def pause(self, name: str) -> None:
        """SIGSTOP the process group: it holds what it has taken and takes nothing more."""
        self._processes.pause(name)

    def resume(self, name: str) -> None:
        self._processes.resume(name)

    def stop(self, name: str) -> None:
        """SIGTERM (a graceful stop), then SIGKILL the group if it does not stop in time."""
        with self._lock:
            self._supervised.discard(name)
            self._processes.stop(name)

    def stop_all(self) -> None:
        self._closing.set()
        with self._lock:
            self._supervised.clear()
            self._processes.stop_all()

    def supervise(self, interval: float = 0.5) -> None:
        """The supervisor's loop (run in a thread until `stop_all`)."""
        while not self._closing.wait(interval):
            with self._lock:
                for name in sorted(self._supervised.intersection(self._processes.ended())):
                    code = self._processes.running[name].returncode
                    note = f"{name} exited with {code} at {time.strftime('%X')}"
                    self.restarts.append(f"{note}:\n{self.tail(name, 1500)}")
                    print(f"{note}; starting it again", file=sys.stderr)
                    self._processes.restart(name)

    def assert_running(self) -> None:
        """Fail at once, with its last words, if a process died and was not restarted, or
        keeps dying."""
        with self._lock:
            self._processes.assert_running(besides=self._supervised)
        if len(self.restarts) > MAX_RESTARTS:
            raise AssertionError(
                f"pipeline processes died {len(self.restarts)} times; last:\n{self.restarts[-1]}"
            )

    def tail(self, name: str, chars: int = 3000) -> str:
        return self._processes.tail(name, chars)

    def log_lines_about(self, report: str, limit: int = 30) -> str:
        """The worker's last log lines on each arena a `flask verify` report names."""
        arena_ids = sorted(set(ARENA_ID.findall(report)))[:5]
        lines = self.tail("worker", chars=10_000_000).splitlines()
        return "\n".join(
            f"worker log on arena {arena_id}:\n"
            + "\n".join([line for line in lines if arena_id in line][-limit:])
            for arena_id in arena_ids
        )

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        """Run `flask ARGS…` as an operator would, with this pipeline's environment."""
        return run_flask(self.env, *args, timeout=timeout)

    def verify(self, wait_seconds: float) -> subprocess.CompletedProcess:
        return self.cli("verify", "--wait", str(wait_seconds), timeout=wait_seconds + 120)

    def assert_verified(self, wait_seconds: float) -> str:
        result = self.verify(wait_seconds)
        assert result.returncode == 0, (
            f"`flask verify --wait {wait_seconds}` exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}\n"
            f"{self.log_lines_about(result.stdout)}\n"
            f"(process logs in {self.logs}; restarts: {len(self.restarts)})"
        )
        return result.stdout


@contextlib.contextmanager
def running_pipeline(
    settings: Settings,
    logs: Path,
    *,
    concurrency: int = 2,
    workers: int = 1,
    relay_workers: int = 0,
    consumers: int = 1,
    **env_overrides: str,
) -> Iterator[Pipeline]:
    """`workers` Celery worker nodes (`worker`, `worker-2`, …), beat and `consumers` times `flask
    consume` (`consumer`, `consumer-2`, …). With `relay_workers`, nodes `relay`, `relay-2`, …
    (one process each) serve the relay queue and the `workers` only the projection queue, as
    `make run` splits them."""
    pipeline = Pipeline(settings, logs, dict(env_overrides))
    supervisor = threading.Thread(target=pipeline.supervise, name="supervisor", daemon=True)
    projection_queue = settings.celery_queue if relay_workers else None
    try:
        for name in _numbered("worker", workers):
            pipeline.start(name, worker_command(name, concurrency, projection_queue))
        for name in _numbered("relay", relay_workers):
            pipeline.start(name, worker_command(name, 1, relay_queue(settings)))
        pipeline.start("beat", celery_beat_command(logs / "celerybeat-schedule"))
        for name in _numbered("consumer", consumers):
            pipeline.start(name, flask_command("consume"))
        supervisor.start()
        yield pipeline
    finally:
        pipeline.stop_all()
        if supervisor.is_alive():
            supervisor.join(timeout=10)
        for restart in pipeline.restarts:
            warnings.warn(ProcessRestarted(restart), stacklevel=1)


def _numbered(name: str, count: int) -> list[str]:
    return [name if number == 1 else f"{name}-{number}" for number in range(1, count + 1)]


# --- the command API, many arenas at once --------------------------------------------------------


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


# --- Kafka ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Produced:
    envelope: EventEnvelope
    value: str
    partition: int
    offset: int


def produce(settings: Settings, envelopes: list[EventEnvelope]) -> list[Produced]:
    """Publish envelopes to the run's events topic, keyed by arena id, as the relay does."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        produced = []
        for envelope in envelopes:
            value = json.dumps(envelope.to_dict(), separators=(",", ":"))
            metadata = producer.send(
                settings.kafka_events_topic,
                key=envelope.aggregate_id.encode(),
                value=value.encode(),
            ).get(timeout=10)
            produced.append(Produced(envelope, value, metadata.partition, metadata.offset))
        return produced
    finally:
        producer.close()


def dead_letters_for(
    settings: Settings, key: str, *, count: int, deadline_seconds: float, pipeline: Pipeline
) -> list[dict[str, Any]]:
    """The DLQ records keyed `key`, once `count` of them arrived."""
    consumer = KafkaConsumer(
        settings.kafka_dlq_topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    found: list[dict[str, Any]] = []

    def arrived() -> bool:
        pipeline.assert_running()
        for records in consumer.poll(timeout_ms=200).values():
            found.extend(json.loads(r.value) for r in records if r.key and r.key.decode() == key)
        return len(found) >= count

    try:
        wait_until(
            arrived,
            deadline_seconds=deadline_seconds,
            what=f"{count} DLQ record(s) keyed {key} (logs in {pipeline.logs})",
        )
    finally:
        consumer.close()
    return found
