#!/usr/bin/env python
"""Whole-pipeline benchmark: commands/s through the HTTP API, events/s through the projections,
and how long a command takes to show in the read model.

Run from the project root: `.venv/bin/python bench/pipeline.py [options]` (`make bench`). Like
bench/relay.py (whose helpers it imports), it uses the local services on 127.0.0.1 but only
resources of its own, named after a random run id: a database `arena_bench_<id>` (migrated),
topics `arena.events[.dlq].bench-<id>`, a read-model prefix, a Celery queue and consumer groups.
It removes them at the end, also after a failure or Ctrl-C, and prints one table.

The processes are the real ones, started as `make run` starts them, with the bench environment:
gunicorn (`-w 2`, sync workers) for commands, a Celery worker (`--concurrency`), beat and
`flask consume`. A second gunicorn (threaded) answers the `?minVersion=N` reads, which wait in
the server for up to READ_WAIT_SECONDS: on the command server they would hold its two sync
workers and throttle the commands being measured.

Phases:
1. Steady rate: `--rate` commands/s for `--seconds` through the API, a realistic mix (each arena
   goes create → join → start → actions → pause → config → resume → actions → stop, about
   `LIVE_ARENAS` arenas at a time). Every answer's `version` is awaited by polling the store
   directly, and a Kafka consumer notes each event's arrival, to split the time into hops; one
   answer in `--read-every` is also read back with GET /api/v1/arenas/{id}?minVersion=N (what a
   client sees; the server's polling for every answer would take CPU the pipeline needs).
2. Burst: `--burst` commands as fast as `--clients` client threads can send them, with the whole
   pipeline running; then how long until all of them are applied.
3. Projection throughput: the consumer is stopped, the read model pointed at an empty
   generation, and the whole events topic replayed by a fresh consumer group, once with
   PROJECTION_BATCHING=true and once with false, timed from the first projection task the
   consumer sent (Celery's task-sent event) until every arena's view reached its write-model
   version.

Celery's task events show what the worker spent its time on (relay runs vs projections), and
/proc where the machine's CPU went. Everything shares the cores with the services and with
whatever else runs: rows measured while a service was down, the consumer had to be restarted, or
other processes took a good part of the CPU are flagged, and should be measured again.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/pipeline.py` puts bench/ first, not the project
    sys.path.insert(0, str(ROOT))

import click  # noqa: E402 - after the path fix above
import psycopg  # noqa: E402
from flask import Flask  # noqa: E402
from kafka import KafkaAdminClient  # noqa: E402
from redis import Redis  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from arena.config import Settings  # noqa: E402
from arena.readmodel.store import ArenaViews  # noqa: E402
from bench.relay import (  # noqa: E402
    BIN,
    CeleryEventReceiver,
    KafkaArrivals,
    Row,
    Run,
    bench_settings,
    create_resources,
    distribution,
    drop_resources,
    machine_lines,
    percentiles,
    print_table,
    require_loopback,
    wait_for,
    wait_or_kill,
)
from tasks.celery_app import PROJECT_TASK, RELAY_TASK  # noqa: E402

PROCESS_READY_SECONDS = 90
MAX_CONSUMER_RESTARTS = 3
HTTP_TIMEOUT_SECONDS = 30
LIVE_ARENAS = 8  # arenas in play at once at the steady rate (a new one opens when none is free)
READERS = 32  # client threads waiting on ?minVersion reads
READ_SERVER_THREADS = 8  # per worker of the reads gunicorn
WATCH_INTERVAL_SECONDS = 0.005  # store polling; stretched to 2x a poll's own cost
DRAIN_INTERVAL_SECONDS = 0.02
API = "/api/v1/arenas"

# --- options --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        description="Benchmark the whole pipeline (API → … → read model) on the local services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=50.0, help="steady commands per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the steady run")
    parser.add_argument("--burst", type=int, default=2000, help="commands in the burst")
    parser.add_argument("--clients", type=int, default=8, help="client threads in the burst")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--warmup", type=int, default=24, help="unmeasured commands first")
    parser.add_argument(
        "--read-every",
        type=int,
        default=5,
        help="read back every Nth steady command with GET ?minVersion (each one is polled in "
        "the store anyway; the reads' server-side polling costs CPU the pipeline needs)",
    )
    parser.add_argument(
        "--relay-interval",
        type=float,
        default=defaults.outbox_relay_interval_seconds,
        help="Celery beat's relay interval in seconds (OUTBOX_RELAY_INTERVAL_SECONDS)",
    )
    parser.add_argument(
        "--phase-deadline", type=float, default=180.0, help="seconds any one phase may take"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    args = parser.parse_args(argv)
    if min(args.burst, args.clients, args.concurrency, args.read_every) < 1 or args.warmup < 0:
        parser.error("--burst, --clients, --concurrency and --read-every must be at least 1")
    if args.rate <= 0 or args.seconds <= 0 or args.relay_interval <= 0:
        parser.error("--rate, --seconds and --relay-interval must be positive")
    return args


# --- processes ------------------------------------------------------------------------------------


class Processes:
    """The pipeline's processes, each logging to its own file in the run's work directory.

    `flask consume` exits when Kafka goes away (another engineer's tests restart it); like a
    process supervisor, `check()` starts it again, a few times, and notes each restart, since
    figures measured across one are disturbed.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self._specs: dict[str, tuple[list[str | Path], Settings]] = {}
        self.restarts: list[str] = []

    def log_path(self, name: str) -> Path:
        return self._run.workdir / f"{name}.log"

    def start(self, name: str, command: list[str | Path], settings: Settings) -> None:
        environment = os.environ | settings.to_env() | {"FLASK_APP": "app.py"}
        self._specs[name] = (command, settings)
        with self.log_path(name).open("ab") as output:
            self.running[name] = subprocess.Popen(
                [str(part) for part in command],
                cwd=ROOT,
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

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
            if not name.startswith("consumer") or restarted >= MAX_CONSUMER_RESTARTS:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
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


class Outages(threading.Thread):
    """Notes when a service stops taking connections (other engineers' tests restart them), so
    the figures measured meanwhile can be flagged instead of trusted."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="outages", daemon=True)
        database = make_url(settings.database_url)
        redis, broker = urlsplit(settings.redis_url), urlsplit(settings.celery_broker_url)
        kafka_host, _, kafka_port = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")
        self._endpoints = {
            "Kafka": (kafka_host.strip("[] "), int(kafka_port)),
            "PostgreSQL": (database.host or "127.0.0.1", database.port or 5432),
            "read-model Redis": (redis.hostname or "127.0.0.1", redis.port or 6379),
            "broker Redis": (broker.hostname or "127.0.0.1", broker.port or 6379),
        }
        self._stop_flag = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[str, tuple[float, datetime]] = {}
        self.outages: list[tuple[str, float, float, datetime]] = []  # service, from, to, wall

    def run(self) -> None:
        while not self._stop_flag.wait(1.0):
            for service, address in self._endpoints.items():
                try:
                    socket.create_connection(address, timeout=1).close()
                    up = True
                except OSError:
                    up = False
                with self._lock:
                    if not up and service not in self._open:
                        self._open[service] = (time.monotonic(), datetime.now())
                    elif up and service in self._open:
                        began, wall = self._open.pop(service)
                        self.outages.append((service, began, time.monotonic(), wall))

    def _all(self) -> list[tuple[str, float, float, datetime]]:
        with self._lock:
            still = [(s, b, time.monotonic(), w) for s, (b, w) in self._open.items()]
            return self.outages + still

    def during(self, since: float, until: float) -> list[str]:
        return [
            f"{service} down {wall:%H:%M:%S} for {to - began:.0f} s"
            for service, began, to, wall in self._all()
            if began <= until and to >= since
        ]

    def lines(self) -> list[str]:
        return [
            f"{service} down {wall:%H:%M:%S} for {to - began:.0f} s"
            for service, began, to, wall in self._all()
        ]

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)


TICKS = os.sysconf("SC_CLK_TCK")
SERVICE_COMMANDS = {"postgres": "PostgreSQL", "java": "Kafka", "redis-server": "Redis"}
BUSY_MACHINE_SHARE = 0.15
PROCESS_LABELS = {
    "api": "gunicorn (commands)",
    "api-reads": "gunicorn (reads)",
    "worker": "Celery worker",
    "beat": "beat",
    "consumer": "flask consume",
}


def _proc_table() -> dict[int, tuple[str, int, float]]:
    """pid → (command name, parent pid, CPU seconds used so far), from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = (entry / "stat").read_text()
            name = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            table[int(entry.name)] = (
                name,
                int(fields[1]),
                (int(fields[11]) + int(fields[12])) / TICKS,
            )
    return table


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS, sum(values[:8]) / TICKS


class CpuUse:
    """Where the CPU went in a window: each pipeline process (with its children, e.g. gunicorn's
    and Celery's workers), this client, the services, and everything else on the machine."""

    def __init__(self, processes: Processes) -> None:
        self._processes = processes
        self._start: tuple[dict[int, tuple[str, float]], tuple[float, float]] | None = None
        self.other_share = 0.0  # of the machine's CPU, by processes not in the pipeline

    def flag(self, rows: list[Row]) -> None:
        """Figures taken while other work took a good part of the CPU are not this system's."""
        if self.other_share > BUSY_MACHINE_SHARE:
            for row in rows:
                row.notes += f"; BUSY MACHINE: other processes took {self.other_share:.0%} of CPU"

    def _groups(self) -> dict[int, tuple[str, float]]:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (_, parent, _) in table.items():
            children.setdefault(parent, []).append(pid)
        owner: dict[int, str] = {}
        roots = {
            p.pid: PROCESS_LABELS.get(name.split("-batched")[0].split("-single")[0], name)
            for name, p in self._processes.running.items()
        }
        for root, label in roots.items():
            stack = [root]
            while stack:
                pid = stack.pop()
                owner[pid] = label
                stack += children.get(pid, [])
        owner[os.getpid()] = "bench client"  # its threads, not its children (counted above)
        for pid, (name, _, _) in table.items():
            if pid not in owner and name in SERVICE_COMMANDS:
                owner[pid] = SERVICE_COMMANDS[name]
        return {pid: (owner.get(pid, "other"), table[pid][2]) for pid in table}

    def start(self) -> None:
        self._start = (self._groups(), _machine_busy())

    def line(self, what: str) -> str:
        if self._start is None:
            return ""
        (before, (busy0, total0)), after = self._start, self._groups()
        busy1, total1 = _machine_busy()
        used: dict[str, float] = {}
        for pid, (label, seconds) in after.items():
            earlier = before.get(pid, (label, 0.0))[1]
            used[label] = used.get(label, 0.0) + max(0.0, seconds - earlier)
        accounted = sum(v for k, v in used.items() if k != "other")
        used["other"] = max(0.0, (busy1 - busy0) - accounted)  # incl. processes that exited
        capacity = total1 - total0
        self.other_share = used["other"] / capacity if capacity > 0 else 0.0
        parts = ", ".join(
            f"{label} {seconds:.1f}"
            for label, seconds in sorted(used.items(), key=lambda i: -i[1])
            if seconds >= 0.05
        )
        return (
            f"CPU, {what}: {busy1 - busy0:.1f} of {capacity:.1f} core-seconds busy "
            f"({100 * (busy1 - busy0) / capacity:.0f}%): {parts}"
        )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Ports:
    commands: int
    reads: int


def start_pipeline(processes: Processes, run: Run, concurrency: int, settings: Settings) -> Ports:
    """gunicorn x2 (commands, reads), a Celery worker, beat and the consumer, and wait for them."""
    ports = Ports(free_port(), free_port())
    gunicorn = [BIN / "gunicorn", "--workers", "2", "--graceful-timeout", "5"]
    processes.start("api", [*gunicorn, "-b", f"127.0.0.1:{ports.commands}", "app:app"], settings)
    processes.start(
        "api-reads",
        [
            *gunicorn,
            "--threads",
            str(READ_SERVER_THREADS),
            "-b",
            f"127.0.0.1:{ports.reads}",
            "app:app",
        ],
        settings,
    )
    processes.start(
        "worker",
        [
            BIN / "celery",
            "-A",
            "tasks",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            f"--hostname={run.worker_prefix}-pipeline@%h",
        ],
        settings,
    )
    processes.start(
        "beat",
        [
            BIN / "celery",
            "-A",
            "tasks",
            "beat",
            "--loglevel=INFO",
            f"--schedule={run.workdir / 'celerybeat-schedule'}",
        ],
        settings,
    )
    processes.start("consumer", [BIN / "flask", "consume"], settings)
    processes.wait_for_http("api", ports.commands)
    processes.wait_for_http("api-reads", ports.reads)
    processes.wait_for_line("worker", " ready.")
    return ports


# --- the HTTP client ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: int  # 0: no HTTP answer (connection refused, timeout)
    body: Any
    error: str = ""


def call(
    port: int,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    correlation_id: str | None = None,
    timeout: float = HTTP_TIMEOUT_SECONDS,
) -> Reply:
    """One request on a fresh connection (gunicorn's sync workers close each one anyway)."""
    headers = {"Accept": "application/json"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if correlation_id:
        headers["X-Correlation-ID"] = correlation_id
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as error:
        return Reply(0, None, repr(error))
    finally:
        connection.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw[:200].decode(errors="replace")
    return Reply(response.status, parsed)


# --- the workload ---------------------------------------------------------------------------------

# Every command records exactly one event, so commands/s and events/s are the same number.
SCRIPT = (
    "create",
    "join",
    "start",
    "spawn",
    "nutrients",
    "temperature",
    "pause",
    "config",
    "resume",
    "antibiotic",
    "spawn-as-player",
    "stop",
)
ACTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "spawn": ("SPAWN_ORGANISM", {"kind": "BACTERIA", "position": {"x": 12, "y": 40}}),
    "nutrients": (
        "ADD_NUTRIENTS",
        {"area": {"x": 8, "y": 8, "width": 4, "height": 4}, "amount": 2.5},
    ),
    "temperature": ("SET_TEMPERATURE", {"temperature": {"value": 31.5}}),
    "antibiotic": (
        "DROP_ANTIBIOTIC",
        {"area": {"x": 20, "y": 20, "width": 8, "height": 2}, "kind": "A", "concentration": 0.4},
    ),
    "spawn-as-player": ("SPAWN_ORGANISM", {"kind": "FUNGI", "position": {"x": 3, "y": 9}}),
}
MIX = "per arena: create, join, start, 3 actions, pause, config, resume, 2 actions, stop"


@dataclass(slots=True)
class Session:
    """One arena taken through SCRIPT, one command at a time, so its commands never race."""

    number: int
    arena_id: str | None = None
    admin_token: str | None = None
    player_token: str | None = None
    step: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's answer; times are time.monotonic() except `returned_wall`."""

    key: str  # the correlation id, unique in the run
    kind: str
    status: int
    arena_id: str | None
    version: int | None
    sent: float
    returned: float
    returned_wall: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.version is not None

    @property
    def request_ms(self) -> float:
        return 1000 * (self.returned - self.sent)


def _request(session: Session, kind: str) -> tuple[str, str, dict[str, Any] | None, str | None]:
    """(method, path, body, token) of the session's next command."""
    arena = f"{API}/{session.arena_id}"
    if kind == "create":
        return "POST", API, {"name": f"Bench dish {session.number}", "displayName": "Ada"}, None
    if kind == "join":
        return "POST", f"{arena}/players", {"displayName": "Bea"}, None
    if kind in ("start", "pause", "resume", "stop"):
        return "POST", f"{arena}/{kind}", None, session.admin_token
    if kind == "config":
        changes = {"mutationRate": 0.05, "temperature": {"value": 25.0}}
        return "PATCH", f"{arena}/config", changes, session.admin_token
    action_type, payload = ACTIONS[kind]
    token = session.player_token if kind == "spawn-as-player" else session.admin_token
    return "POST", f"{arena}/actions", {"type": action_type, "payload": payload}, token


class Driver:
    """Hands out the next command of some arena, keeping about `live` arenas in play.

    An arena whose previous command has not been answered is never given another, so each arena's
    versions go 1, 2, 3… without conflicts; when every live arena is busy, a new one is opened.
    """

    def __init__(self, port: int, tag: str, live: int) -> None:
        self._port = port
        self._tag = tag
        self._live_target = live
        self._lock = threading.Lock()
        self._ready: deque[Session] = deque()
        self._live = 0
        self._sessions = itertools.count()
        self._commands = itertools.count()

    def take(self) -> Session:
        with self._lock:
            if self._ready and self._live >= self._live_target:
                return self._ready.popleft()
            self._live += 1
            return Session(next(self._sessions))

    def run(self, session: Session) -> Answer:
        """Send the session's next command (in a client thread) and put the session back."""
        kind = SCRIPT[session.step]
        method, path, body, token = _request(session, kind)
        with self._lock:
            key = f"{self._tag}-{next(self._commands)}"
        sent = time.monotonic()
        reply = call(self._port, method, path, body, token=token, correlation_id=key)
        returned, returned_wall = time.monotonic(), time.time()
        answered = isinstance(reply.body, dict) and 200 <= reply.status < 300
        if answered and kind == "create":
            session.arena_id = reply.body["id"]
            session.admin_token = reply.body["player"]["token"]
        elif answered and kind == "join":
            session.player_token = reply.body["player"]["token"]
        answer = Answer(
            key,
            kind,
            reply.status,
            session.arena_id,
            reply.body.get("version") if answered else None,
            sent,
            returned,
            returned_wall,
            "" if answered else f"{reply.status} {reply.error or reply.body}"[:300],
        )
        session.step += 1
        with self._lock:
            if answer.ok and session.step < len(SCRIPT):
                self._ready.append(session)
            else:
                self._live -= 1  # finished, or in a state we no longer know: let it go
        return answer


def steady(
    driver: Driver,
    count: int,
    rate: float,
    pool: ThreadPoolExecutor,
    on_answer: Callable[[Answer], None],
    label: str,
    deadline: float,
) -> list[Answer]:
    """Send `count` commands at `rate`/s, whatever the answers' pace (an open-loop client)."""

    def one(session: Session) -> Answer:
        answer = driver.run(session)
        on_answer(answer)
        return answer

    futures: list[Future[Answer]] = []
    with click.progressbar(range(count), label=label) as bar:
        started = time.monotonic()
        for index in bar:
            due = started + index / rate
            now = time.monotonic()
            if now > deadline:
                break
            if due > now:
                time.sleep(due - now)
            futures.append(pool.submit(one, driver.take()))
    return [future.result(timeout=max(1.0, deadline - time.monotonic())) for future in futures]


def burst(
    driver: Driver, count: int, clients: int, on_answer: Callable[[Answer], None], deadline: float
) -> list[Answer]:
    """Send `count` commands with `clients` always in flight (a closed-loop client)."""
    slots = threading.Semaphore(clients)

    def one(session: Session) -> Answer:
        try:
            answer = driver.run(session)
            on_answer(answer)
            return answer
        finally:
            slots.release()

    futures: list[Future[Answer]] = []
    with (
        ThreadPoolExecutor(clients, thread_name_prefix="burst") as pool,
        click.progressbar(range(count), label="burst: commands      ") as bar,
    ):
        for _ in bar:
            while not slots.acquire(timeout=1):
                if time.monotonic() > deadline:
                    raise RuntimeError("the burst ran past its deadline")
            futures.append(pool.submit(one, driver.take()))
    return [future.result() for future in futures]


# --- watching the read model ----------------------------------------------------------------------


class Visibility(threading.Thread):
    """Polls the read model (one MGET) for the arenas with commands not yet applied, and notes the
    moment each command's version shows. Cheaper and finer-grained than HTTP reads."""

    def __init__(self, views: ArenaViews) -> None:
        super().__init__(name="visibility", daemon=True)
        self._views = views
        self._lock = threading.Lock()
        self._pending: dict[str, list[tuple[int, str]]] = {}
        self._stop_flag = threading.Event()
        self.seen: dict[str, float] = {}
        self.redis_errors = 0

    def expect(self, answer: Answer) -> None:
        if answer.ok and answer.arena_id is not None and answer.version is not None:
            with self._lock:
                self._pending.setdefault(answer.arena_id, []).append((answer.version, answer.key))

    def outstanding(self) -> int:
        with self._lock:
            return sum(len(waiting) for waiting in self._pending.values())

    def run(self) -> None:
        while not self._stop_flag.is_set():
            started = time.monotonic()
            with self._lock:
                arena_ids = list(self._pending)
            if arena_ids:
                try:
                    views = self._views.get_many(arena_ids)
                except RedisError:  # the read model restarting: projections will retry too
                    self.redis_errors += 1
                    self._stop_flag.wait(0.2)
                    continue
                now = time.monotonic()
                with self._lock:
                    for arena_id, view in views.items():
                        waiting = self._pending.get(arena_id, [])
                        still = [(v, key) for v, key in waiting if v > view["version"]]
                        for version, key in waiting:
                            if version <= view["version"]:
                                self.seen.setdefault(key, now)
                        if still:
                            self._pending[arena_id] = still
                        else:
                            self._pending.pop(arena_id, None)
            elapsed = time.monotonic() - started
            self._stop_flag.wait(max(WATCH_INTERVAL_SECONDS, 2 * elapsed))

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=10)


def wait_until_applied(
    visibility: Visibility, answers: list[Answer], processes: Processes, label: str, deadline: float
) -> bool:
    """Wait (bounded) until every accepted command of `answers` shows in the read model."""
    wanted = [a.key for a in answers if a.ok]
    with click.progressbar(length=len(wanted), label=label) as bar:
        shown = 0
        while time.monotonic() < deadline:
            seen = sum(1 for key in wanted if key in visibility.seen)
            bar.update(seen - shown)
            shown = seen
            if seen == len(wanted):
                return True
            processes.check()
            time.sleep(0.1)
    click.echo(f"{label.strip()}: {len(wanted) - shown} commands not applied by the deadline")
    return False


class Readers:
    """Clients reading their own writes: GET …?minVersion=N, which waits in the server."""

    def __init__(self, port: int, deadline: float) -> None:
        self._port = port
        self._deadline = deadline
        self._pool = ThreadPoolExecutor(READERS, thread_name_prefix="reader")
        self._futures: list[Future[None]] = []
        self.seen: dict[str, float] = {}
        self.asked: list[str] = []
        self.behind = 0  # 503 answers: not visible within READ_WAIT_SECONDS; read again
        self.errors: list[str] = []

    def read(self, answer: Answer) -> None:
        if answer.ok:
            self.asked.append(answer.key)
            self._futures.append(self._pool.submit(self._read, answer))

    def _read(self, answer: Answer) -> None:
        path = f"{API}/{answer.arena_id}?minVersion={answer.version}"
        while time.monotonic() < self._deadline:
            reply = call(self._port, "GET", path)
            if reply.status == 200 and reply.body["version"] >= (answer.version or 0):
                self.seen[answer.key] = time.monotonic()
                return
            if reply.status == 503:
                self.behind += 1
                continue
            self.errors.append(f"{reply.status} {reply.error or reply.body}"[:200])
            time.sleep(0.2)

    def wait(self) -> None:
        """Until every read is back, or the deadline (the rows then say how many came back)."""
        for future in self._futures:
            with contextlib.suppress(TimeoutError):
                future.result(timeout=max(0.0, self._deadline - time.monotonic()) + 1)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class QueueDepth(threading.Thread):
    """Samples the Celery queue's length: relay nudges and projection tasks wait there together."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="queue-depth", daemon=True)
        self._broker = Redis.from_url(settings.celery_broker_url, socket_timeout=2)
        self._queue = settings.celery_queue
        self._stop_flag = threading.Event()
        self.samples: list[tuple[float, int]] = []

    def run(self) -> None:
        while not self._stop_flag.wait(0.25):
            with contextlib.suppress(RedisError):
                self.samples.append((time.monotonic(), int(self._broker.llen(self._queue))))

    def peak(self, since: float, until: float) -> int:
        return max((depth for at, depth in self.samples if since <= at <= until), default=0)

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)
        self._broker.close()


class TaskEvents(CeleryEventReceiver):
    """Celery's own task events for this run's relay and projection tasks: when each was sent
    (by the API, beat or the consumer), started, how long it ran, and whether it was retried or
    discarded as expired. Shows what the worker spends its time on."""

    def __init__(self, flask_app: Flask, settings: Settings, worker_prefix: str) -> None:
        super().__init__(flask_app, settings, worker_prefix)
        self._lock = threading.Lock()
        self._tasks: dict[str, dict[str, Any]] = {}

    def _on(self, message: dict[str, Any]) -> None:
        kind, task_id = message.get("type", ""), message.get("uuid")
        if not kind.startswith("task-") or task_id is None:
            return
        with self._lock:
            if kind == "task-sent":  # a retry is sent again under the same id
                name = message.get("name")
                if name in (RELAY_TASK, PROJECT_TASK) and message.get("queue") == self._queue:
                    record = self._tasks.setdefault(task_id, {"name": name, "retries": 0})
                    record.setdefault("sent", message.get("timestamp"))
                return
            record = self._tasks.get(task_id)
            if record is None or not str(message.get("hostname", "")).startswith(
                self._worker_prefix
            ):
                return  # not ours: another engineer's worker on the shared broker
            if kind == "task-started":
                record.setdefault("started", message.get("timestamp"))
            elif kind == "task-retried":
                record["retries"] += 1
            elif kind == "task-succeeded":
                record["runtime"] = message.get("runtime")
                record["result"] = message.get("result")
            elif kind == "task-revoked":
                record["expired"] = bool(message.get("expired"))

    def window(self, name: str, since: float, until: float = float("inf")) -> list[dict[str, Any]]:
        """Tasks `name` first sent between the two wall-clock times."""
        with self._lock:
            return [
                dict(r)
                for r in self._tasks.values()
                if r["name"] == name and since <= (r.get("sent") or 0) <= until
            ]


def worker_rows(tasks: TaskEvents, since: float, until: float) -> list[Row]:
    """What the worker's processes did meanwhile: relay runs (one per command, via the nudge,
    plus beat's) and projection tasks; p = runtime."""
    window = until - since
    rows = []
    for label, name in (("relay tasks", RELAY_TASK), ("projection tasks", PROJECT_TASK)):
        records = tasks.window(name, since, until)
        runtimes = [1000 * r["runtime"] for r in records if r.get("runtime") is not None]
        pickup = percentiles([1000 * (r["started"] - r["sent"]) for r in records if "started" in r])
        expired = sum(1 for r in records if r.get("expired"))
        idle = sum(1 for r in records if name == RELAY_TASK and r.get("result") == "0")
        busy = sum(runtimes) / 1000
        notes = (
            f"p = runtime; {busy:.1f} s of worker time in {window:.1f} s; "
            f"wait in queue p50 {pickup['p50'] or 0:.0f} ms, max {pickup['max'] or 0:.0f} ms"
        )
        retried = sum(r["retries"] for r in records)
        if retried:
            notes += f"; {retried} retries"
        if idle:
            notes += f"; {idle} found nothing to publish"
        if expired:
            notes += f"; {expired} expired unrun"
        rows.append(distribution(f"  · {label} (sent in this window)", runtimes, notes))
        rows[-1].n = len(records)
    return rows


def wait_for_empty_outbox(run: Run, processes: Processes, deadline_seconds: float) -> None:
    """Replays can only catch up with what reached Kafka: wait until nothing is pending."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        with psycopg.connect(run.dsn) as connection:
            (pending,) = connection.execute(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            ).fetchone()
        if pending == 0:
            return
        processes.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending} outbox events still unpublished; replays would stall")
        time.sleep(0.5)


def write_model_versions(run: Run) -> dict[str, int]:
    """Each arena's version in PostgreSQL: how many events it has, and what its view must reach."""
    with psycopg.connect(run.dsn) as connection:
        rows = connection.execute("SELECT id::text, version FROM arenas").fetchall()
    return {arena_id: version for arena_id, version in rows}


def projection_run(
    run: Run,
    app: Flask,
    processes: Processes,
    tasks: TaskEvents,
    batching: bool,
    deadline_seconds: float,
    disturbances: Disturbances,
) -> tuple[Row, str]:
    """Replay the whole topic into an empty generation with a fresh consumer group; time it."""
    tag = "batched" if batching else "single"
    settings = dataclasses.replace(
        run.settings,
        projection_batching=batching,
        kafka_consumer_group=f"{run.settings.kafka_consumer_group}-{tag}",
    )
    targets = write_model_versions(run)
    total = sum(targets.values())
    views: ArenaViews = app.extensions["arena_views"]
    until_redis = time.monotonic() + deadline_seconds
    while True:  # the read model may be restarting (another engineer's tests)
        try:
            views.switch_to(f"replay-{tag}")
            break
        except RedisError:
            if time.monotonic() > until_redis:
                raise
            time.sleep(1)
    since = disturbances.mark()
    since_wall = time.time()
    deadline = time.monotonic() + deadline_seconds
    name = f"consumer-{tag}"
    processes.start(name, [BIN / "flask", "consume"], settings)
    cpu = CpuUse(processes)
    cpu.start()
    try:
        while not tasks.window(PROJECT_TASK, since_wall):  # the group join takes seconds
            processes.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} dispatched nothing in {deadline_seconds:.0f}s")
            time.sleep(0.05)
        remaining = dict(targets)
        finished_wall = time.time()
        reached = dict.fromkeys(targets, 0)
        label = f"replay, PROJECTION_BATCHING={str(batching).lower():5}"
        with click.progressbar(length=total, label=label) as bar:
            while remaining and time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    current = views.get_many(list(remaining))
                except RedisError:
                    time.sleep(0.2)
                    continue
                finished_wall = time.time()
                for arena_id, view in current.items():
                    bar.update(view["version"] - reached[arena_id])
                    reached[arena_id] = view["version"]
                    if view["version"] >= remaining[arena_id]:
                        del remaining[arena_id]
                processes.check()
                elapsed = time.monotonic() - started
                time.sleep(max(DRAIN_INTERVAL_SECONDS, 2 * elapsed))
        usage = cpu.line(f"replay with PROJECTION_BATCHING={str(batching).lower()}, from start")
    finally:
        processes.stop(name)
    records = tasks.window(PROJECT_TASK, since_wall)
    first = min((r["sent"] for r in records), default=finished_wall)
    wall = finished_wall - first
    applied = sum(reached.values())
    retried = sum(r["retries"] for r in records)
    runtimes = [1000 * r["runtime"] for r in records if r.get("runtime") is not None]
    pickup = percentiles([1000 * (r["started"] - r["sent"]) for r in records if "started" in r])
    check = (
        f"{len(targets) - len(remaining)}/{len(targets)} arenas caught up"
        if remaining
        else f"all {len(targets)} arenas caught up"
    )
    row = Row(
        f"Projection replay, PROJECTION_BATCHING={str(batching).lower()}",
        n=applied,
        wall_s=wall,
        rate=applied / wall if wall > 0 else None,
        notes=(
            f"p = task runtime; {len(records):,} tasks ({applied / max(1, len(records)):.1f} "
            f"events/task), {retried:,} retries; wait in queue p50 {pickup['p50'] or 0:.0f} ms, "
            f"max {pickup['max'] or 0:.0f} ms; {check}"
        ),
        ok=not remaining,
        **percentiles(runtimes),
    )
    disturbances.flag([row], since)
    cpu.flag([row])
    return row, usage


# --- rows -----------------------------------------------------------------------------------------


def api_row(name: str, answers: list[Answer], notes: str) -> Row:
    """Commands accepted per second, from the first send to the last answer; p = request time."""
    accepted = [a for a in answers if a.ok]
    failed = len(answers) - len(accepted)
    wall = (max(a.returned for a in answers) - min(a.sent for a in answers)) if answers else 0.0
    return Row(
        name,
        n=len(accepted),
        wall_s=wall,
        rate=len(accepted) / wall if wall > 0 else None,
        notes=f"p = request time; {notes}" + (f"; {failed} FAILED" if failed else ""),
        ok=failed == 0,
        **percentiles([a.request_ms for a in accepted]),
    )


def latency_rows(
    answers: list[Answer],
    readers: Readers,
    visibility: Visibility,
    arrivals: KafkaArrivals,
    read_wait_seconds: float,
    read_every: int,
) -> list[Row]:
    """Answer → visible to a client (?minVersion), and the hops it splits into."""
    accepted = [a for a in answers if a.ok]
    by_read = [1000 * (readers.seen[a.key] - a.returned) for a in accepted if a.key in readers.seen]
    in_store = [a for a in accepted if a.key in visibility.seen]
    applied = [1000 * max(0.0, visibility.seen[a.key] - a.returned) for a in in_store]
    reached_kafka = [(a, arrivals.arrivals[a.key]) for a in in_store if a.key in arrivals.arrivals]
    to_send = [1000 * (k.created_wall - a.returned_wall) for a, k in reached_kafka]
    send_to_receive = [1000 * (k.received_wall - k.created_wall) for _, k in reached_kafka]
    receive_to_applied = [
        1000 * (visibility.seen[a.key] - k.received_mono) for a, k in reached_kafka
    ]
    asked = len(readers.asked)
    missing = asked - len(by_read)
    extra = []
    if readers.behind:
        extra.append(f"{readers.behind} x 503 after {read_wait_seconds:g} s, re-read")
    if readers.errors:
        extra.append(f"{len(readers.errors)} read errors, e.g. {readers.errors[0]}")
    return [
        Row(
            "Command answer → visible via GET ?minVersion=N",
            n=len(by_read),
            notes="; ".join(
                [
                    f"{len(by_read)}/{asked} read back (1 command in {read_every})",
                    "threaded reads gunicorn",
                    *extra,
                ]
            ),
            ok=missing == 0,
            **percentiles(by_read),
        ),
        distribution(
            "  · answer → applied in Redis (store poll)",
            applied,
            f"MGET every ≥{1000 * WATCH_INTERVAL_SECONDS:.0f} ms; ?minVersion polls each 20 ms",
        ),
        distribution(
            "  · answer → relay send() (Kafka CreateTime)",
            to_send,
            "nudge → Celery → relay claim (ms clock)",
        ),
        distribution(
            "  · relay send() → Kafka receive",
            send_to_receive,
            "linger, acks=all, fetch (ms clock)",
        ),
        distribution(
            "  · Kafka receive → applied in Redis",
            receive_to_applied,
            "consumer poll → Celery task → projection",
        ),
    ]


@dataclass
class Disturbances:
    """Service outages and consumer restarts, to flag the rows measured while they happened."""

    processes: Processes
    outages: Outages

    def mark(self) -> tuple[int, float]:
        return len(self.processes.restarts), time.monotonic()

    def flag(self, rows: list[Row], since: tuple[int, float]) -> None:
        restarts, began = since
        reasons = self.outages.during(began, time.monotonic())
        if len(self.processes.restarts) > restarts:
            reasons.append("consumer restarted")
        if reasons:
            for row in rows:
                row.notes += f"; DISTURBED: {', '.join(reasons)}"


def burst_drain_row(answers: list[Answer], visibility: Visibility) -> Row:
    """The whole pipeline under the burst: first command sent → last one applied in Redis."""
    accepted = [a for a in answers if a.ok]
    applied = [a for a in accepted if a.key in visibility.seen]
    if not applied:
        return Row("Burst: first command → all applied in Redis", n=0, ok=False)
    wall = max(visibility.seen[a.key] for a in applied) - min(a.sent for a in answers)
    return Row(
        "Burst: first command → all applied in Redis",
        n=len(applied),
        wall_s=wall,
        rate=len(applied) / wall if wall > 0 else None,
        notes=f"p = answer → applied; {len(applied)}/{len(accepted)} applied; whole pipeline",
        ok=len(applied) == len(accepted),
        **percentiles([1000 * max(0.0, visibility.seen[a.key] - a.returned) for a in applied]),
    )


# --- clean-up -------------------------------------------------------------------------------------


def delete_consumer_groups(settings: Settings, groups: list[str]) -> list[str]:
    """The replay groups (drop_resources deletes only the run's main group)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id="arena-bench-admin"
        )
    except Exception as error:  # noqa: BLE001 - report, clean up the rest regardless
        return [f"could not delete consumer groups {groups}: {error!r}"]
    try:
        outcomes = dict(admin.delete_groups(groups))  # {group: "OK" or the error's name}
        return [
            f"could not delete consumer group {group}: {outcome}"
            for group, outcome in outcomes.items()
            if str(outcome) not in {"OK", "GroupIdNotFoundError"}
        ]
    except Exception as error:  # noqa: BLE001
        return [f"could not delete consumer groups {groups}: {error!r}"]
    finally:
        admin.close()


def forget_unacked(settings: Settings) -> list[str]:
    """Tasks our worker still held when stopped (retries waiting out their countdown) stay in
    the broker's shared `unacked` hash, and another engineer's worker would later restore them
    into our deleted queue: remove ours (kombu stores [message, exchange, routing key])."""
    broker = Redis.from_url(settings.celery_broker_url, socket_timeout=5)
    try:
        ours = []
        for tag, raw in broker.hscan_iter("unacked", count=1000):
            with contextlib.suppress(ValueError, IndexError, TypeError):
                if json.loads(raw)[2] == settings.celery_queue:
                    ours.append(tag)
        if ours:
            broker.hdel("unacked", *ours)
            broker.zrem("unacked_index", *ours)
        return []
    except RedisError as error:
        return [f"could not clear our unacked Celery tasks: {error!r}"]
    finally:
        broker.close()


# --- main -----------------------------------------------------------------------------------------


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # run the clean-up in `finally`


@contextlib.contextmanager
def thread(started: threading.Thread, stop: Callable[[], None]) -> Iterator[None]:
    started.start()
    try:
        yield
    finally:
        stop()


def live_phases(
    args: argparse.Namespace,
    run: Run,
    app: Flask,
    processes: Processes,
    ports: Ports,
    rows: list[Row],
    disturbances: Disturbances,
    tasks: TaskEvents,
    details: list[str],
) -> None:
    """Phases 1 and 2: the steady rate with its latencies, then the burst and its drain."""
    views: ArenaViews = app.extensions["arena_views"]
    deadline = time.monotonic() + args.phase_deadline
    visibility = Visibility(views)
    arrivals = KafkaArrivals(run.settings, 3 * args.phase_deadline)
    readers = Readers(ports.reads, deadline)
    depth = QueueDepth(run.settings)
    cpu = CpuUse(processes)
    with (
        thread(visibility, visibility.stop),
        thread(arrivals, arrivals.stop),
        thread(depth, depth.stop),
        ThreadPoolExecutor(READERS, thread_name_prefix="client") as pool,
    ):
        if args.warmup:  # producers, connections, the consumer's group join; not measured
            warm = steady(
                Driver(ports.commands, "warm", 2),
                args.warmup,
                args.rate,
                pool,
                visibility.expect,
                "warm-up               ",
                deadline,
            )
            wait_until_applied(visibility, warm, processes, "warm-up: applied      ", deadline)

        read_back = itertools.count()

        def measured(answer: Answer) -> None:
            visibility.expect(answer)
            if next(read_back) % args.read_every == 0:
                readers.read(answer)

        since, since_wall = disturbances.mark(), time.time()
        cpu.start()
        answers = steady(
            Driver(ports.commands, "steady", LIVE_ARENAS),
            round(args.rate * args.seconds),
            args.rate,
            pool,
            measured,
            f"steady: {args.rate:g} commands/s ",
            deadline,
        )
        wait_until_applied(visibility, answers, processes, "steady: applied       ", deadline)
        details.append(cpu.line("steady run until all applied"))
        readers.wait()
        readers.close()
        first = len(rows)
        rows.append(
            api_row(
                "API, steady rate: commands accepted",
                answers,
                f"offered {args.rate:g}/s for {args.seconds:g} s, open loop",
            )
        )
        rows += latency_rows(
            answers, readers, visibility, arrivals, run.settings.read_wait_seconds, args.read_every
        )
        rows[-1].notes += f"; Celery queue peak {depth.peak(since[1], time.monotonic())}"
        rows += worker_rows(tasks, since_wall, time.time())
        disturbances.flag(rows[first:], since)
        cpu.flag(rows[first:])

        deadline = time.monotonic() + args.phase_deadline
        since, since_wall = disturbances.mark(), time.time()
        cpu.start()
        bursted = burst(
            Driver(ports.commands, "burst", 2 * args.clients),
            args.burst,
            args.clients,
            visibility.expect,
            deadline,
        )
        wait_until_applied(visibility, bursted, processes, "burst: applied        ", deadline)
        details.append(cpu.line("burst until all applied"))
        first = len(rows)
        rows.append(
            api_row(
                "API, burst: commands accepted",
                bursted,
                f"{args.clients} client threads, closed loop, pipeline running",
            )
        )
        rows.append(burst_drain_row(bursted, visibility))
        rows[-1].notes += f"; Celery queue peak {depth.peak(since[1], time.monotonic())}"
        rows += worker_rows(tasks, since_wall, time.time())
        disturbances.flag(rows[first:], since)
        cpu.flag(rows[first:])
    if visibility.redis_errors:
        rows[first].notes += f"; read model unreachable {visibility.redis_errors}x (retried)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base = Settings.from_env()
    require_loopback(base)
    run_id = uuid.uuid4().hex[:8]
    run = Run(
        run_id,
        base,
        bench_settings(base, run_id, args.relay_interval),
        Path(tempfile.mkdtemp(prefix=f"arena-bench-pipeline-{run_id}-")),
    )
    # The app's INFO lines go to a file, not over the progress bars.
    logging.basicConfig(
        filename=run.workdir / "bench.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    click.echo(f"pipeline benchmark, run {run_id} (logs in {run.workdir})")
    wait_for(base, "PostgreSQL", "Redis", "Kafka")
    started = time.monotonic()
    load_before = os.getloadavg()
    rows: list[Row] = []
    details: list[str] = []
    apps: list[Flask] = []
    processes = Processes(run)
    outages = Outages(base)
    outages.start()
    disturbances = Disturbances(processes, outages)
    failed = True
    error: Exception | None = None
    replay_groups = [f"{run.settings.kafka_consumer_group}-{t}" for t in ("batched", "single")]
    try:
        app = create_resources(run)
        apps.append(app)
        click.echo("starting gunicorn x2, Celery worker and beat, flask consume…")
        ports = start_pipeline(processes, run, args.concurrency, run.settings)
        details.append(
            f"set-up (database, migrations, topics, processes ready): "
            f"{time.monotonic() - started:.0f} s"
        )
        tasks = TaskEvents(app, run.settings, run.worker_prefix)
        with thread(tasks, tasks.stop):
            tasks.ready.wait(timeout=10)
            live_phases(args, run, app, processes, ports, rows, disturbances, tasks, details)
            processes.stop("consumer")  # the replays have their own consumers and groups
            wait_for_empty_outbox(run, processes, args.phase_deadline)
            replays: dict[bool, Row] = {}
            for batching in (True, False):
                replays[batching], usage = projection_run(
                    run, app, processes, tasks, batching, args.phase_deadline, disturbances
                )
                rows.append(replays[batching])
                details.append(usage)
        if replays[True].rate and replays[False].rate:
            rows.append(
                Row(
                    "Speed-up of PROJECTION_BATCHING=true over false",
                    rate=replays[True].rate / replays[False].rate,
                    notes="events/s column = factor (x)",
                )
            )
        failed = False
    except Exception as caught:  # noqa: BLE001 - still clean up and show what was measured
        error = caught
        click.echo(traceback.format_exc(), err=True)
    finally:
        processes.stop_all()
        with contextlib.suppress(SystemExit):  # a service mid-restart: wait, then clean up
            wait_for(base, "PostgreSQL", "Redis", "Kafka")
        problems = forget_unacked(run.settings)
        problems += delete_consumer_groups(run.settings, replay_groups)
        problems += drop_resources(run, apps)
        for problem in problems:
            click.echo(f"clean-up: {problem}", err=True)
        if failed or args.keep_logs or problems:
            click.echo(f"logs kept in {run.workdir}", err=True)
        else:
            shutil.rmtree(run.workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    machine = machine_lines(run, load_before)
    machine.append(
        f"gunicorn -w 2 (sync) for commands, -w 2 --threads {READ_SERVER_THREADS} for reads; "
        f"Celery worker --concurrency={args.concurrency}; beat every {args.relay_interval:g} s; "
        f"OUTBOX_NUDGE={str(run.settings.outbox_nudge).lower()}; live consumer "
        f"PROJECTION_BATCHING={str(run.settings.projection_batching).lower()}; "
        f"{MIX} (one event per command, so commands/s = events/s)"
    )
    machine += details
    outages.stop()
    machine += [f"DISTURBED: {line}" for line in processes.restarts + outages.lines()]
    if error is not None:
        first_line = (str(error).strip() or "no message").splitlines()[0]
        machine.append(f"INCOMPLETE: {type(error).__name__}: {first_line[:200]}")
    print_table(
        f"Pipeline benchmark — run {run_id}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{elapsed:.0f} s",
        machine,
        rows,
    )
    return 0 if error is None and all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
