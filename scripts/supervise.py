"""Run every line of a Procfile and start again any process that dies: `make run`'s supervisor.

    python scripts/supervise.py Procfile

`honcho start` stops the whole stack when one process exits, so one crashed worker took the API,
the consumer and the rest down with it. This keeps honcho's Procfile format, process names
(`worker.1`) and "time name | line" output (its parser and `Printer`), and adds what compose's
`restart: unless-stopped` does: a process that exits is started again after a delay of 1 s,
doubling up to 30 s while it keeps dying, back to 1 s once a run has lasted 30 s.

Each process runs in a process group of its own, so a SIGKILL reaches all of it (Celery's
prefork children, gunicorn's workers) and Ctrl-C at the terminal reaches only this supervisor.
Ctrl-C, SIGTERM or SIGHUP stops everything: SIGTERM to each command (its warm shutdown), SIGKILL
to each group with anything left after 10 s (at once on a second Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from honcho.colour import get_colours
from honcho.environ import expand_processes, parse_procfile
from honcho.printer import Message, Printer

SYSTEM = "system"  # the name on the supervisor's own lines, as honcho's
POLL_SECONDS = 0.1
KILL_WAIT_SECONDS = 5.0  # after SIGKILL, how long to wait for the output to close


@dataclass
class Backoff:
    """The wait before each restart: `first`, doubling up to `most` while a process keeps dying;
    a run that lasted `stable` seconds counts as healthy, and the next wait is `first` again."""

    first: float = 1.0
    most: float = 30.0
    stable: float = 30.0


@dataclass
class Child:
    """One Procfile process: its command, its current run, and when it is due to start again."""

    name: str
    command: str
    env: dict[str, str]
    colour: str
    run: subprocess.Popen[bytes] | None = None
    reader: threading.Thread | None = None
    started: float = 0.0
    delay: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Starts the children, prints their lines, restarts the ones that die, stops them all on a
    signal. Only the main thread touches children; one thread per run reads its output."""

    def __init__(self, children: Sequence[Child], backoff: Backoff, stop_timeout: float) -> None:
        self.children = list(children)
        self.backoff = backoff
        self.stop_timeout = stop_timeout
        self.printer = Printer(sys.stdout)
        self.printer.width = max(len(SYSTEM), *(len(child.name) for child in self.children))
        self.lines: queue.Queue[Message] = queue.Queue()
        self.signals: list[int] = []
        for child in self.children:
            child.delay = backoff.first

    def run(self) -> int:
        """Supervise until SIGINT, SIGTERM or SIGHUP (the terminal closed: the children, in
        sessions of their own, would not hear of it); the exit status is 128 + its number."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        try:
            for child in self.children:
                self._start(child)
            while not self.signals:
                self._print_lines(POLL_SECONDS)
                now = time.monotonic()
                for child in self.children:
                    if child.run is not None and (returncode := child.run.poll()) is not None:
                        self._schedule_restart(child, returncode, now)
                    if child.restart_at is not None and now >= child.restart_at:
                        self._start(child)
        except BaseException:
            self._stop("the supervisor failed")  # leave nothing running behind it
            raise
        self._stop(f"{signal.Signals(self.signals[0]).name} received")
        return 128 + self.signals[0]

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals.append(signum)

    def _start(self, child: Child) -> None:
        child.run = subprocess.Popen(
            child.command,
            shell=True,
            env=child.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session, so its own process group (pgid = pid)
        )
        child.started, child.restart_at = time.monotonic(), None
        assert child.run.stdout is not None
        child.reader = threading.Thread(target=self._read, args=(child, child.run.stdout))
        child.reader.daemon = True
        child.reader.start()
        if child.restarts:
            self._say(f"{child.name} restarted (pid={child.run.pid}, restart {child.restarts})")
        else:
            self._say(f"{child.name} started (pid={child.run.pid})")

    def _read(self, child: Child, output: IO[bytes]) -> None:
        for line in iter(output.readline, b""):
            self.lines.put(Message("line", line, datetime.datetime.now(), child.name, child.colour))
        output.close()

    def _schedule_restart(self, child: Child, returncode: int, now: float) -> None:
        """The run ended by itself: clear what is left of its group, then wait and start again."""
        assert child.run is not None
        lasted = now - child.started
        leftovers = _signal_group(child.run.pid, signal.SIGKILL)
        child.run = None
        if lasted >= self.backoff.stable:
            child.delay = self.backoff.first
        child.restart_at = now + child.delay
        child.restarts += 1
        self._say(
            f"{child.name} exited ({_describe(returncode)}) after {lasted:.1f}s"
            + (", SIGKILL sent to the rest of its process group" if leftovers else "")
            + f"; restarting in {child.delay:g}s"
        )
        child.delay = min(child.delay * 2, self.backoff.most)

    def _stop(self, why: str) -> None:
        """SIGTERM to every process, SIGKILL to every group after the timeout (or a second
        signal), then reap.

        SIGTERM goes to the shell and the commands it started, not to their children: Celery's
        pool processes and gunicorn's workers die at once on a SIGTERM of their own, while their
        parent's warm shutdown lets them finish their tasks and requests first. A run is over
        once the shell has exited and its output is closed, so the command's last lines (and its
        exit) are waited for."""
        self._say(f"{why}, stopping every process")
        signals_before = len(self.signals)
        running = [child for child in self.children if child.run is not None]
        for child in self.children:
            child.restart_at = None
        for child in running:
            assert child.run is not None
            self._say(f"sending SIGTERM to {child.name} (pid={child.run.pid})")
            _terminate(child.run.pid)
        deadline = time.monotonic() + self.stop_timeout
        killed: float | None = None
        while (left := [child for child in running if not _over(child)]) and (
            killed is None or time.monotonic() < killed + KILL_WAIT_SECONDS
        ):
            self._print_lines(POLL_SECONDS)
            if killed is None and (
                time.monotonic() >= deadline or len(self.signals) > signals_before
            ):
                killed = time.monotonic()
                for child in left:
                    assert child.run is not None
                    self._say(f"sending SIGKILL to {child.name} (pid={child.run.pid})")
                    _signal_group(child.run.pid, signal.SIGKILL)
        for child in running:
            assert child.run is not None
            _signal_group(child.run.pid, signal.SIGKILL)  # any that closed its output early
            self._say(f"{child.name} stopped ({_describe(child.run.wait())})")
        self._print_lines(0)

    def _print_lines(self, wait: float) -> None:
        """Print every line read so far, waiting up to `wait` seconds for the first."""
        try:
            message = self.lines.get(timeout=wait) if wait else self.lines.get_nowait()
            while True:
                self._write(message)
                message = self.lines.get_nowait()
        except queue.Empty:
            pass

    def _say(self, text: str) -> None:
        self._write(Message("line", text, datetime.datetime.now(), SYSTEM, None))

    def _write(self, message: Message) -> None:
        """Print a line; once the output is gone (a closed pipe), supervise on without it."""
        try:
            self.printer.write(message)
        except OSError:
            self.printer.output = open(os.devnull, "w")  # noqa: SIM115 (open for the rest of the run)


def _over(child: Child) -> bool:
    """The run's shell has exited and every process holding its output has closed it."""
    assert child.run is not None and child.reader is not None
    return child.run.poll() is not None and not child.reader.is_alive()


def _terminate(pid: int) -> None:
    """SIGTERM to the shell `pid` and to the processes it started (read from /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for target in [pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target, signal.SIGTERM)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send a signal to a process group; False if the group has no process left."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"rc={returncode}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a Procfile, restarting what dies.")
    parser.add_argument("procfile", type=Path)
    parser.add_argument("--first-delay", type=float, default=Backoff.first, metavar="SECONDS")
    parser.add_argument("--max-delay", type=float, default=Backoff.most, metavar="SECONDS")
    parser.add_argument("--stable-after", type=float, default=Backoff.stable, metavar="SECONDS")
    parser.add_argument("--stop-timeout", type=float, default=10.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    processes = parse_procfile(args.procfile.read_text()).processes
    colours = get_colours()
    children = [
        Child(params.name, params.cmd, {**os.environ, **params.env}, next(colours))
        for params in expand_processes(processes)
    ]
    if not children:
        parser.error(f"{args.procfile} names no process")
    backoff = Backoff(args.first_delay, args.max_delay, args.stable_after)
    return Supervisor(children, backoff, args.stop_timeout).run()


if __name__ == "__main__":
    sys.exit(main())
