"""The pipeline's processes for one tree, started from its Procfile (bench/procfile.py) with the
run's settings by the shared supervisor (harness/processes.py), each logging to its own
file in the tree's directory of the run's work directory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from arena.settings import Settings
from bench.procfile import API, CONSUMER, ProcessPlan
from bench.trees import Tree
from harness.httpclient import call
from harness.processes import BIN, Supervisor
from harness.resources import Run

MAX_CONSUMER_RESTARTS = 3
READ_SERVER_THREADS = 8  # per worker of the reads gunicorn
READS = "API reads: the bench's ?minVersion gunicorn"
REPLAY_CONSUMER = "flask consume (replay)"
READY_SECONDS = 90


class Processes:
    """The running processes of one tree, by name, with the CPU label of each.

    `flask consume` exits when Kafka goes away (another engineer's tests restart it); like a
    process supervisor, `check()` starts it again, a few times, and notes each restart, since
    figures measured across one are disturbed.
    """

    def __init__(self, run: Run, tree: Tree) -> None:
        self.tree = tree
        self._supervisor = Supervisor(run.workdir / tree.name, cwd=tree.root)
        self.labels: dict[str, str] = {}  # of the processes started and not stopped
        self.restarts: list[str] = []

    @property
    def logs(self) -> Path:
        return self._supervisor.logs

    def start(self, name: str, command: list[str | Path], settings: Settings, label: str) -> None:
        self.labels[name] = label
        self._supervisor.start(name, command, self.tree.environment(settings))

    def roots(self) -> dict[int, str]:
        """pid → CPU label of each running process (their children are counted with them)."""
        running = self._supervisor.roots().items()
        return {pid: self.labels[name] for pid, name in running if name in self.labels}

    def stop(self, name: str) -> None:
        """SIGTERM (consumer and workers finish what they hold), SIGKILL after a grace period."""
        del self.labels[name]
        self._supervisor.stop(name)

    def stop_all(self) -> None:
        self.labels.clear()
        self._supervisor.stop_all()

    def check(self) -> None:
        """Restart a consumer that exited; fail, with its last words, if anything else died."""
        for name in self._supervisor.ended():
            if name not in self.labels:
                continue
            restarted = sum(1 for line in self.restarts if line.startswith(f"{name} "))
            is_consumer = self.labels[name] in (CONSUMER, REPLAY_CONSUMER)
            if not is_consumer or restarted >= MAX_CONSUMER_RESTARTS:
                raise RuntimeError(f"{self.tree.name} {self._supervisor.last_words(name)}")
            tail = self._supervisor.tail(name).strip()
            last = tail.splitlines()[-1] if tail else "?"
            code = self._supervisor.running[name].returncode
            self.restarts.append(
                f"{name} exited with {code} at {datetime.now():%H:%M:%S} ({last[:120]}); restarted"
            )
            self._supervisor.restart(name)

    def wait_for_line(self, name: str, needle: str) -> None:
        self._supervisor.wait_for_line(name, needle, seconds=READY_SECONDS, check=self.check)

    def wait_for_http(self, name: str, port: int) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while call(port, "GET", "/healthz", timeout=2).status != 200:
            self.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not answering on :{port} after {READY_SECONDS}s")
            time.sleep(0.1)


@dataclass(frozen=True)
class Ports:
    commands: int
    reads: int


def start_pipeline(
    processes: Processes, pipeline: ProcessPlan, ports: Ports, settings: Settings
) -> None:
    """The tree's Procfile processes, plus a threaded gunicorn of the same tree for the
    `?minVersion=N` reads (they wait in the server: on the command server they would hold its
    workers and throttle the commands being measured); waits until they are ready."""
    reads: list[str | Path] = [BIN / "gunicorn", "--workers", "2"]
    reads += ["--threads", str(READ_SERVER_THREADS)]
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
