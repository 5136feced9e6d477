"""Where the CPU went in a window, by kind of process, from /proc: each pipeline process with its
children (gunicorn's and Celery's workers), PostgreSQL's backends of the run's database, the
broker (RabbitMQ's Erlang VM, or an older tree's Redis), the read model's Redis, the Kafka JVM,
this client and everything else. The Redis servers and RabbitMQ are told apart by the TCP ports
they listen on (their sockets in /proc/PID/fd, looked up in /proc/net/tcp): RabbitMQ's command
line does not name its port.

A sampler thread reads /proc once a second and keeps each process's last figure, so processes
that exit inside a window (PostgreSQL backends of short connections, replaced pool processes)
are still counted up to their last second. Processes are keyed by (pid, start time), so a
reused pid is a new process.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from arena.settings import Settings
from bench.brokers import broker_address, is_redis_broker
from bench.processes import READS, REPLAY_CONSUMER
from bench.procfile import (
    API,
    BEAT,
    BOTH_WORKER,
    CONSUMER,
    OTHER_WORKER,
    PROJECTION_WORKER,
    RELAY_WORKER,
)

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 1.0
BUSY_MACHINE_SHARE = 0.15
POSTGRES_OURS = "PostgreSQL: this run's database backends"
POSTGRES_REST = "PostgreSQL: rest of the server (shared)"
RABBITMQ = "RabbitMQ (shared)"
REDIS_BROKER = "Redis broker (shared)"  # an older tree's (pipeline --baseline-broker-url)
REDIS_READ_MODEL = "Redis read model (shared)"
REDIS_OTHER = "Redis, other"
KAFKA = "Kafka JVM (shared)"
CLIENT = "bench client (this process)"
TICK_WRITER = "tick writer (in the bench client, this checkout's code)"
OTHER = "other processes"
WORKERS = "Celery workers, all (relay + projection)"
TOTAL = "Total: pipeline + services"
# The table's order; True: part of the total (the pipeline and the services it uses).
KINDS: tuple[tuple[str, bool], ...] = (
    (API, True),
    (RELAY_WORKER, True),
    (PROJECTION_WORKER, True),
    (BOTH_WORKER, True),
    (OTHER_WORKER, True),
    (CONSUMER, True),
    (BEAT, True),
    (POSTGRES_OURS, True),
    (RABBITMQ, True),
    (REDIS_BROKER, True),
    (REDIS_READ_MODEL, True),
    (KAFKA, True),
    (TICK_WRITER, True),
    (READS, False),
    (REPLAY_CONSUMER, False),
    (CLIENT, False),
    (POSTGRES_REST, False),
    (REDIS_OTHER, False),
    (OTHER, False),
)
WORKER_KINDS = (RELAY_WORKER, PROJECTION_WORKER, BOTH_WORKER, OTHER_WORKER)

Key = tuple[int, int]  # (pid, start time in ticks)
TCP_LISTEN = "0A"  # a socket's state in /proc/net/tcp
PORT_SERVERS = ("redis-server", "beam.smp")  # told apart by port: Redis, RabbitMQ's Erlang VM


def service_ports(settings: Settings) -> dict[int, str]:
    """Port → label of the servers the run talks to that the meter tells apart by port: the read
    model's Redis and the broker."""
    broker = REDIS_BROKER if is_redis_broker(settings.celery_broker_url) else RABBITMQ
    return {
        urlsplit(settings.redis_url).port or 6379: REDIS_READ_MODEL,
        broker_address(settings.celery_broker_url)[1]: broker,
    }


def _proc_table() -> dict[Key, tuple[str, int, float]]:
    """(pid, start) → (command name, parent pid, CPU seconds used so far), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            key = (int(entry.name), int(fields[19]))
            table[key] = (name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return table


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS, sum(values[:8]) / TICKS


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports the process listens on; none if it is gone or not ours to look into."""
    sockets = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                sockets.add(os.readlink(fd))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()  # sl local rem st queues tr retrnsmt uid timeout inode
                if fields[3] == TCP_LISTEN and f"socket:[{fields[9]}]" in sockets:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    return ""


@dataclass(frozen=True)
class Usage:
    """CPU seconds per label in one window, and the machine's figures over it."""

    seconds: dict[str, float]
    busy: float  # the machine's busy core-seconds
    capacity: float  # core-seconds the window had
    events: int = 0

    @property
    def other_share(self) -> float:
        return self.seconds.get(OTHER, 0.0) / self.capacity if self.capacity > 0 else 0.0

    def per_event_us(self, label: str) -> float | None:
        """µs of CPU per event applied; None when no process of that kind ran."""
        if not self.events or label not in self.seconds:
            return None
        return 1e6 * self.seconds[label] / self.events

    def line(self, what: str) -> str:
        parts = ", ".join(
            f"{label.split(' (')[0]} {seconds:.1f}"
            for label, seconds in sorted(self.seconds.items(), key=lambda i: -i[1])
            if seconds >= 0.05
        )
        share = 100 * self.busy / self.capacity if self.capacity else 0.0
        return (
            f"CPU, {what}: {self.busy:.1f} of {self.capacity:.1f} core-seconds busy "
            f"({share:.0f}%): {parts}"
        )


@dataclass(frozen=True)
class Window:
    began: dict[Key, float]
    machine: tuple[float, float]


class CpuMeter(threading.Thread):
    """Samples every process's CPU time; `begin()`/`end()` give a window's use per label."""

    def __init__(
        self, roots: Callable[[], dict[int, str]], database: str, ports: dict[int, str]
    ) -> None:
        super().__init__(name="cpu-meter", daemon=True)
        self._roots = roots
        self._database = database
        self._ports = ports  # `service_ports`
        self._lock = threading.Lock()
        self._last: dict[Key, tuple[str, float]] = {}
        self._service_labels: dict[Key, str] = {}
        self._stop_flag = threading.Event()

    def _service(self, key: Key, name: str) -> str:
        """The label of a process outside the pipeline, from its command line (cached)."""
        if key not in self._service_labels:
            label = OTHER
            if name == "postgres":  # titles read "postgres: user database host state"
                words = _cmdline(key[0]).split()
                if words[:1] != ["postgres:"]:  # just forked: not titled yet, look again
                    return POSTGRES_REST
                label = POSTGRES_OURS if self._database in words[2:3] else POSTGRES_REST
            elif name in PORT_SERVERS:
                ours = [self._ports[p] for p in _listening_ports(key[0]) if p in self._ports]
                if not ours:  # not the run's, or not listening yet (RabbitMQ boots for seconds)
                    return REDIS_OTHER if name == "redis-server" else OTHER
                label = ours[0]
            elif name == "java" and "kafka" in _cmdline(key[0]).lower():
                label = KAFKA
            self._service_labels[key] = label
        return self._service_labels[key]

    def sample(self) -> None:
        table = _proc_table()
        roots = self._roots()
        children: dict[int, list[Key]] = {}
        for key, (_, parent, _) in table.items():
            children.setdefault(parent, []).append(key)
        by_pid = {key[0]: key for key in table}
        owner: dict[Key, str] = {}
        for pid, label in roots.items():
            stack = [by_pid[pid]] if pid in by_pid else []
            while stack:
                key = stack.pop()
                owner[key] = label
                stack += children.get(key[0], [])
        me = by_pid.get(os.getpid())
        if me is not None:
            owner[me] = CLIENT  # its threads; its children are the pipeline, counted above
        with self._lock:
            for key, (name, _, seconds) in table.items():
                label = owner.get(key) or self._service(key, name)
                self._last[key] = (label, seconds)

    def run(self) -> None:
        while not self._stop_flag.wait(SAMPLE_SECONDS):
            self.sample()

    def begin(self) -> Window:
        self.sample()
        with self._lock:
            return Window(
                {key: seconds for key, (_, seconds) in self._last.items()}, _machine_busy()
            )

    def end(self, window: Window, events: int = 0) -> Usage:
        self.sample()
        busy1, total1 = _machine_busy()
        used: dict[str, float] = {}
        with self._lock:
            for key, (label, seconds) in self._last.items():
                spent = seconds - window.began.get(key, 0.0)  # born in the window: all of it
                if spent > 0 and label != OTHER:
                    used[label] = used.get(label, 0.0) + spent
        busy = busy1 - window.machine[0]
        used[OTHER] = max(0.0, busy - sum(used.values()))  # incl. processes that exited
        return Usage(used, busy, total1 - window.machine[1], events)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)


def flag_busy(usage: Usage, notes: list[str]) -> None:
    """Figures taken while other work took a good part of the CPU are not this system's."""
    if usage.other_share > BUSY_MACHINE_SHARE:
        notes.append(f"BUSY MACHINE: other processes took {usage.other_share:.0%} of CPU")


def per_event(usage: Usage) -> dict[str, float | None]:
    """µs per event of every kind, the workers' sum and the total (None: no such process)."""
    figures = {label: usage.per_event_us(label) for label, _ in KINDS}
    workers = [us for k in WORKER_KINDS if (us := figures[k]) is not None]
    figures[WORKERS] = sum(workers) if workers else None
    total = [us for k, counted in KINDS if counted and (us := figures[k]) is not None]
    figures[TOTAL] = sum(total) if total else None
    return figures
