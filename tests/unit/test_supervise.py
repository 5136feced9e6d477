"""`make run`'s supervisor (scripts/supervise.py) on throwaway commands: a process that dies is
started again with a growing delay, one killed with SIGKILL too, and SIGINT stops every process
group, escalating to SIGKILL for one that ignores SIGTERM. No services; about two seconds."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = """\
steady: sleep 1000
crashing: echo up; exit 3
stubborn: trap '' TERM; sleep 1000
polite: trap 'echo bye; exit 0' TERM; while :; do sleep 0.05; done
"""


class Output:
    """The supervisor's lines as they come, read on a thread so a wait can have a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line)

    def wait_for(self, pattern: str, timeout: float = 3.0) -> re.Match[str]:
        expression, deadline = re.compile(pattern), time.monotonic() + timeout
        for line in self.lines:
            if found := expression.search(line):
                return found
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            self.lines.append(line)
            if found := expression.search(line):
                return found
        raise AssertionError(f"no line matches {pattern!r} in:\n" + "".join(self.lines))


def live_members(group: int) -> list[int]:
    """Processes (zombies aside) whose process group is `group`."""
    members = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        state, _parent, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(int(entry.name))
    return members


def test_restarts_what_dies_with_backoff_and_stops_every_group_on_sigint(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text(PROCFILE)
    command = [sys.executable, str(ROOT / "scripts" / "supervise.py"), "Procfile"]
    options = ["--first-delay", "0.2", "--max-delay", "0.4", "--stop-timeout", "0.5"]
    supervisor = subprocess.Popen(
        command + options, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output = Output(supervisor)
    try:
        steady = int(output.wait_for(r"steady\.1 started \(pid=(\d+)\)")[1])
        output.wait_for(r"crashing\.1 +\| up")
        # The delay doubles from 0.2 s and stays at the 0.4 s ceiling.
        for delay, restart in (("0.2", 1), ("0.4", 2), ("0.4", 3)):
            output.wait_for(rf"crashing\.1 exited \(rc=3\) after [\d.]+s; restarting in {delay}s")
            output.wait_for(rf"crashing\.1 restarted \(pid=\d+, restart {restart}\)")

        os.kill(steady, signal.SIGKILL)
        output.wait_for(r"steady\.1 exited \(killed by SIGKILL\).*restarting in 0\.2s")
        output.wait_for(r"steady\.1 restarted \(pid=\d+, restart 1\)")

        output.wait_for(r"polite\.1 started")
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=5) == 128 + signal.SIGINT
    finally:
        supervisor.kill()
    output.wait_for(r"SIGINT received, stopping every process")
    output.wait_for(r"polite\.1 +\| bye")
    output.wait_for(r"sending SIGKILL to stubborn\.1")
    output.wait_for(r"stubborn\.1 stopped \(killed by SIGKILL\)")
    groups = {int(pid) for pid in re.findall(r"pid=(\d+)", "".join(output.lines))}
    assert {group: live_members(group) for group in groups if live_members(group)} == {}
