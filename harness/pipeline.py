"""The real pipeline's processes, as the end-to-end tests and the chaos matrix run them.

`Pipeline` runs `celery -A tasks worker`, `celery -A tasks beat` and `flask consume` as
subprocesses with a run's settings (harness/processes.py supervises them), plus what failure
tests need: per-process environment overrides, SIGKILL of one process (its whole process group,
so a prefork worker dies with its pool, as on a crashed machine), restart, and the operator's
CLI (`flask verify`, `flask projections rebuild`, `flask dlq …`) run with the same environment.
`produce` puts envelopes on the run's events topic as the relay would.
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaProducer

from arena.domain.envelope import EventEnvelope
from arena.messaging.celery_setup import relay_queue
from arena.settings import Settings
from harness.processes import (
    Supervisor,
    celery_beat_command,
    celery_worker_command,
    flask_command,
    pipeline_env,
    run_flask,
)

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
    """Named subprocesses of one pipeline (harness/processes.py runs them).

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

    def cli(
        self, *args: str, timeout: float = CLI_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        """Run `flask ARGS…` as an operator would, with this pipeline's environment."""
        return run_flask(self.env, *args, timeout=timeout)

    def verify(self, wait_seconds: float) -> subprocess.CompletedProcess[str]:
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
