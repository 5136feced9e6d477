"""What running a service on this machine takes, whatever the engine: installing a Debian package,
finding a process by its pid file and command line, a port that answers, waiting with a deadline,
and the last lines of a log when something fails. Standard library only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


class Failure(Exception):
    """A service could not be brought where it was asked to be; the message says why."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"[{service}] ERROR: {message}")


def say(service: str, message: str) -> None:
    print(f"[{service}] {message}", flush=True)


def warn(service: str, message: str) -> None:
    print(f"[{service}] WARNING: {message}", file=sys.stderr, flush=True)


def show_tail(paths: Iterable[Path], lines: int = 30) -> None:
    """The last lines of each log that exists, to stderr."""
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if text:
            print(f"----- last lines of {path} -----", file=sys.stderr)
            print("\n".join(text.splitlines()[-lines:]), file=sys.stderr, flush=True)


_apt_updated = False


def apt_install(log_file: Path, *packages: str) -> None:
    """`apt-get install` as scripts/services.sh does it: root only, quiet, its output in
    `log_file`, `apt-get update` once per process."""
    global _apt_updated
    wanted = " ".join(packages)
    if os.geteuid() != 0:
        raise Failure("setup", f"need root to apt-get install {wanted}; install it yourself")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_SUSPEND": "1"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    steps = [("apt-get install " + wanted, install)]
    if not _apt_updated:
        steps.insert(0, ("apt-get update", ["apt-get", "update", "-q"]))
    log_file.parent.mkdir(parents=True, exist_ok=True)
    for what, command in steps:
        say("setup", f"{what} (output in {log_file})")
        with log_file.open("ab") as out:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, check=False
            )
        if done.returncode != 0:
            show_tail([log_file])
            raise Failure("setup", f"{what} failed (see {log_file})")
    _apt_updated = True


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def pid_matching(pid_file: Path, needle: str) -> int | None:
    """The pid in `pid_file` if that process runs with `needle` in its command line; otherwise
    the first running process whose command line holds `needle` (a lost or stale pid file)."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid and running(pid) and needle in cmdline(pid):
        return pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and needle in cmdline(int(entry.name)) and running(int(entry.name)):
            return int(entry.name)
    return None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for(
    service: str,
    seconds: float,
    ready: Callable[[], bool],
    alive: Callable[[], bool],
    logs: Sequence[Path],
    what: str = "an answer",
) -> None:
    """Poll `ready` until it holds; fail at once when `alive` says the process died, or when the
    deadline passes, showing the logs' tails."""
    deadline = time.monotonic() + seconds
    while not ready():
        if not alive():
            show_tail(logs)
            raise Failure(
                service, f"the process exited during start-up (see {', '.join(map(str, logs))})"
            )
        if time.monotonic() >= deadline:
            show_tail(logs)
            raise Failure(
                service, f"no {what} within {seconds:.0f}s (see {', '.join(map(str, logs))})"
            )
        time.sleep(0.5)


def wait_exit(pid: int, seconds: float) -> bool:
    """Wait for the process to exit; False if it still runs after `seconds`."""
    deadline = time.monotonic() + seconds
    while running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True
