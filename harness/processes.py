"""The one process supervisor, shared by the tests and the benchmarks: start the pipeline's
processes (Celery workers and beat, `flask consume`, gunicorn, the `flask` CLI) with a run's
settings, watch them, and stop them without leaving a pool child behind. It needs nothing but
arena's Settings.

Each process runs in a process group of its own, so that a SIGKILL or a stop that runs out of
patience takes a prefork worker's pool (or gunicorn's workers) with it, as on a crashed machine,
and a Ctrl-C in the terminal reaches only the test or bench process, whose clean-up then stops
them in order.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

from arena.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's console scripts, whatever PATH says
STOP_GRACE_SECONDS = 20
READY_SECONDS = 90

Command = Sequence[str | Path]


def pipeline_env(settings: Settings | None, **overrides: str) -> dict[str, str]:
    """The environment a pipeline process (or the CLI) gets for a run's settings; None: the
    caller's own environment, as `make run` would see it."""
    environment = dict(os.environ)
    if settings is not None:
        environment |= settings.to_env()
    return environment | {"FLASK_APP": "app.py"} | overrides


def celery_worker_command(hostname: str, concurrency: int, queue: str | None = None) -> list[str]:
    """A Celery worker node as `make worker` starts it; without `queue` it serves every queue."""
    return [
        str(BIN / "celery"),
        "-A",
        "tasks",
        "worker",
        "--loglevel=INFO",  # INFO: its " ready." line says when it takes tasks
        f"--concurrency={concurrency}",
        f"--hostname={hostname}",
        *(["-Q", queue] if queue else []),
    ]


def celery_beat_command(schedule: Path) -> list[str]:
    """Celery beat as `make beat` starts it, with a schedule file of the run's own."""
    return [str(BIN / "celery"), "-A", "tasks", "beat", "--loglevel=INFO", f"--schedule={schedule}"]


def flask_command(*args: str) -> list[str]:
    """`flask ARGS…` of this venv (`flask consume`, `flask db upgrade`, `flask verify`, …)."""
    return [str(BIN / "flask"), *args]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server of the run's own."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_to_end(
    command: Command, env: Mapping[str, str], *, timeout: float, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """A one-off command, run to its end with its output captured; the caller judges its status."""
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_flask(
    env: Mapping[str, str], *args: str, timeout: float, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run the `flask` CLI as an operator would, with the given (pipeline_env) environment."""
    return run_to_end(flask_command(*args), env, timeout=timeout, cwd=cwd)


class ProcessEnded(AssertionError):
    """A supervised process that should be running has exited."""


class Supervisor:
    """Named subprocesses, each logging to `<logs>/<name>.log` (appended: a restart continues
    the same file after a header line). Restart policies are the callers': `ended()` says which
    processes exited, `restart()` starts one again as it was started."""

    def __init__(self, logs: Path, *, cwd: Path = ROOT) -> None:
        self.logs = logs
        self._cwd = cwd
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._launches: dict[str, tuple[list[str], dict[str, str]]] = {}
        logs.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, command: Command, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        """Start a process (again, once the earlier one under that name has ended)."""
        earlier = self.running.get(name)
        if earlier is not None and earlier.poll() is None:
            raise AssertionError(f"{name} is already running (pid {earlier.pid})")
        self._launches[name] = ([str(part) for part in command], dict(env))
        return self.restart(name)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start the named process again with the command and environment it last had."""
        command, env = self._launches[name]
        with self.log_path(name).open("ab") as log:
            log.write(f"\n=== starting {name} at {time.strftime('%X')} ===\n".encode())
            log.flush()
            self.running[name] = subprocess.Popen(
                command,
                cwd=self._cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.running[name]

    def env_of(self, name: str) -> dict[str, str]:
        """The environment the named process was (last) started with."""
        return self._launches[name][1]

    def roots(self) -> dict[int, str]:
        """pid → name of each process still running (its children are its own business)."""
        return {p.pid: name for name, p in self.running.items() if p.poll() is None}

    def ended(self) -> list[str]:
        """The processes that have exited, on their own or stopped."""
        return [name for name, process in self.running.items() if process.poll() is not None]

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def last_words(self, name: str, chars: int = 3000) -> str:
        return f"{name} exited with {self.running[name].returncode}:\n{self.tail(name, chars)}"

    def assert_running(self, *, besides: Collection[str] = ()) -> None:
        """Fail at once, with its last words, if a process (other than `besides`) exited."""
        for name in self.ended():
            if name not in besides:
                raise ProcessEnded(self.last_words(name))

    def wait_for_line(
        self,
        name: str,
        needle: str,
        *,
        seconds: float = READY_SECONDS,
        check: Callable[[], None] | None = None,
    ) -> None:
        """Until the process logs `needle` (a worker's " ready."), calling `check` between looks
        (by default `assert_running`, so a process that dies on start-up fails at once)."""
        deadline = time.monotonic() + seconds
        while needle not in self.tail(name, chars=10_000_000):
            (check or self.assert_running)()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {seconds:.0f}s ({self.log_path(name)})")
            time.sleep(0.1)

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything in its process group (a prefork pool too)."""
        process = self.running[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def pause(self, name: str) -> None:
        """SIGSTOP the process group: it holds what it has taken and takes nothing more."""
        os.killpg(self.running[name].pid, signal.SIGSTOP)

    def resume(self, name: str) -> None:
        os.killpg(self.running[name].pid, signal.SIGCONT)

    def stop(self, name: str, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM (consumers and workers finish what they hold), then SIGKILL the whole group
        once it stopped or `grace` ran out: whatever is left of it (pool children) goes too."""
        process = self.running.get(name)
        if process is None:
            return
        if process.poll() is None:
            self._terminate(process)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in {grace:g}s; killed", file=sys.stderr)
        # A group outlives its leader while members are left, so its id cannot be reused yet.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        """SIGTERM every process first, so that they stop side by side, then `stop` each."""
        for process in self.running.values():
            if process.poll() is None:
                self._terminate(process)
        for name in list(self.running):
            self.stop(name)

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)  # in case it was paused
            process.send_signal(signal.SIGTERM)
