"""The pipeline's processes for one tree, started from its Procfile (bench/procfile.py) with the
run's settings, each logging to its own file in the run's work directory."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from arena.settings import Settings
from bench.httpclient import call
from bench.procfile import API, CONSUMER, Pipeline
from bench.relay import BIN, Run, wait_or_kill
from bench.trees import Tree

PROCESS_READY_SECONDS = 90
MAX_CONSUMER_RESTARTS = 3
READ_SERVER_THREADS = 8  # per worker of the reads gunicorn
READS = "API reads: the bench's ?minVersion gunicorn"
REPLAY_CONSUMER = "flask consume (replay)"


class Processes:
    """The running processes of one tree, by name, with the CPU label of each.

    `flask consume` exits when Kafka goes away (another engineer's tests restart it); like a
    process supervisor, `check()` starts it again, a few times, and notes each restart, since
    figures measured across one are disturbed.
    """

    def __init__(self, run: Run, tree: Tree) -> None:
        self._run = run
        self.tree = tree
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.labels: dict[str, str] = {}
        self._specs: dict[str, tuple[list[str | Path], Settings, str]] = {}
        self.restarts: list[str] = []

    def log_path(self, name: str) -> Path:
        return self._run.workdir / f"{self.tree.name}-{name}.log"

    def start(self, name: str, command: list[str | Path], settings: Settings, label: str) -> None:
        self._specs[name] = (command, settings, label)
        self.labels[name] = label
        with self.log_path(name).open("ab") as output:
            self.running[name] = subprocess.Popen(
                [str(part) for part in command],
                cwd=self.tree.root,
                env=self.tree.environment(settings),
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def roots(self) -> dict[int, str]:
        """pid → CPU label of each running process (their children are counted with them)."""
        return {p.pid: self.labels[name] for name, p in self.running.items() if p.poll() is None}

    def stop(self, name: str) -> None:
        """SIGTERM (consumer and workers finish what they hold), SIGKILL after a grace period."""
        process = self.running.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        wait_or_kill(name, process)

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def check(self) -> None:
        """Restart a consumer that exited; fail, with its last words, if anything else died."""
        for name, process in list(self.running.items()):
            if process.poll() is None:
                continue
            tail = self.log_path(name).read_text(errors="replace")[-3000:]
            restarted = sum(1 for line in self.restarts if line.startswith(f"{name} "))
            is_consumer = self.labels[name] in (CONSUMER, REPLAY_CONSUMER)
            if not is_consumer or restarted >= MAX_CONSUMER_RESTARTS:
                raise RuntimeError(
                    f"{self.tree.name} {name} exited with {process.returncode}:\n{tail}"
                )
            last = tail.strip().splitlines()[-1] if tail.strip() else "?"
            self.restarts.append(
                f"{name} exited with {process.returncode} at {datetime.now():%H:%M:%S} "
                f"({last[:120]}); restarted"
            )
            self.start(name, *self._specs[name])

    def wait_for_line(self, name: str, needle: str) -> None:
        deadline = time.monotonic() + PROCESS_READY_SECONDS
        while needle not in self.log_path(name).read_text(errors="replace"):
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {PROCESS_READY_SECONDS}s")
            time.sleep(0.1)

    def wait_for_http(self, name: str, port: int) -> None:
        deadline = time.monotonic() + PROCESS_READY_SECONDS
        while call(port, "GET", "/healthz", timeout=2).status != 200:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not answering on :{port} after {PROCESS_READY_SECONDS}s"
                )
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Ports:
    commands: int
    reads: int


def start_pipeline(
    processes: Processes, pipeline: Pipeline, ports: Ports, settings: Settings
) -> None:
    """The tree's Procfile processes, plus a threaded gunicorn of the same tree for the
    `?minVersion=N` reads (they wait in the server: on the command server they would hold its
    workers and throttle the commands being measured); waits until they are ready."""
    reads = [BIN / "gunicorn", "--workers", "2", "--threads", str(READ_SERVER_THREADS)]
    reads += ["--graceful-timeout", "5", "--bind", f"127.0.0.1:{ports.reads}", "app:app"]
    processes.start("api-reads", reads, settings, READS)
    for spec in pipeline.specs:
        processes.start(spec.name, list(spec.argv), settings, spec.label)
    for spec in pipeline.specs:
        if spec.label == API:
            processes.wait_for_http(spec.name, ports.commands)
        elif spec.kind == "worker":
            processes.wait_for_line(spec.name, " ready.")
    processes.wait_for_http("api-reads", ports.reads)
