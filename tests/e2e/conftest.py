"""The real pipeline's processes, started as a user would start them (`make run`'s commands)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask

from arena.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STOP_GRACE_SECONDS = 20


@dataclass(frozen=True)
class Pipeline:
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]]

    def assert_running(self) -> None:
        """Fail at once, with the process's last words, if one of them died."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")


@pytest.fixture(scope="module")
def pipeline(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """A Celery worker, Celery beat (running the relay) and `flask consume`, as subprocesses."""
    logs = tmp_path_factory.mktemp("pipeline-logs")
    environment = os.environ | settings.to_env() | {"FLASK_APP": "app.py"}
    commands = {
        "worker": [
            BIN / "celery",
            "-A",
            "tasks",
            "worker",
            "--loglevel=INFO",
            "--concurrency=2",
            f"--hostname=e2e-{os.getpid()}@%h",
        ],
        "beat": [
            BIN / "celery",
            "-A",
            "tasks",
            "beat",
            "--loglevel=INFO",
            f"--schedule={logs / 'celerybeat-schedule'}",
        ],
        "consumer": [BIN / "flask", "consume"],
    }
    processes = {
        name: subprocess.Popen(
            [str(part) for part in command],
            cwd=ROOT,
            env=environment,
            stdout=(logs / f"{name}.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, command in commands.items()
    }
    try:
        yield Pipeline(logs, processes)
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                print(f"{name} did not stop within {STOP_GRACE_SECONDS}s; killed", file=sys.stderr)
