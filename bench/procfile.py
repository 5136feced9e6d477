"""Which processes to start for a tree, read from that tree's own Procfile (what `make run`
starts), adapted to the benchmark: its environment, a free port, its own Celery queues, worker
names and state files. So a tree that splits the relay and projection workers, or changes
gunicorn's options, is measured the way it runs, without the bench knowing in advance.

Lines are recognised by their command: `gunicorn` (the API), `celery … worker`, `celery … beat`,
`flask consume`. Others (Flower) are left out and listed in the table's notes.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.trees import Tree, TreeReport
from harness.processes import BIN

RELAY_TASK = "tasks.relay.publish_outbox"  # literal: the baseline may lack the constants' module
PROJECT_TASK = "tasks.projections.project_events"
# What the bench started before it read Procfiles: for a tree without one.
FALLBACK_PROCFILE = """\
api: gunicorn --workers 2 app:app
worker: celery -A tasks worker --loglevel=INFO --concurrency=2
beat: celery -A tasks beat --loglevel=INFO
consumer: flask consume
"""
SHELL_OPERATORS = set(";&|<>()`")

# CPU labels, one per kind of process (bench/cpu.py orders and totals them).
API = "API: gunicorn (incl. its workers)"
RELAY_WORKER = "Celery worker: relay"
PROJECTION_WORKER = "Celery worker: projection"
BOTH_WORKER = "Celery worker: relay + projection (one serves both)"
OTHER_WORKER = "Celery worker: other tasks"
CONSUMER = "flask consume"
BEAT = "Celery beat"


@dataclass(frozen=True)
class ProcessSpec:
    """One process to start: its Procfile name, what kind it is, and its adapted command."""

    name: str
    kind: str  # api | worker | beat | consumer
    label: str  # its CPU row
    argv: list[str]
    queues: tuple[str, ...] = ()


@dataclass
class ProcessPlan:
    """A tree's processes, plus what the bench needs to know about its queues."""

    specs: list[ProcessSpec]
    queues: set[str]  # every queue the tree's tasks go to, all of them the run's own
    skipped: list[str] = field(default_factory=list)

    @property
    def layout(self) -> str:
        parts = [
            f"{s.name} ({s.label.split(': ', 1)[-1].split(' (')[0]})"
            for s in self.specs
            if s.kind == "worker"
        ]
        return "workers: " + ", ".join(parts)


def read_procfile(tree: Tree) -> list[tuple[str, str]]:
    """(name, command) per line of the tree's Procfile, in order."""
    path = tree.root / "Procfile"
    text = path.read_text() if path.exists() else FALLBACK_PROCFILE
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, command = line.split(":", 1)
        lines.append((name.strip(), command.strip()))
    return lines


def expand(command: str, environment: Mapping[str, str]) -> list[str]:
    """The command's words after the shell's expansions (`${CELERY_QUEUE:-arena}`), as honcho's
    `sh -c` would see them under the bench's environment; no globbing."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    if any(set(token) & SHELL_OPERATORS for token in lexer):
        raise ValueError(f"shell operators in a Procfile line are not supported: {command!r}")
    script = f'set -f; for word in {command}; do printf "%s\\0" "$word"; done'
    done = subprocess.run(
        ["/bin/sh", "-c", script], env=dict(environment), capture_output=True, check=True
    )
    return done.stdout.decode().split("\0")[:-1]


def _without(argv: list[str], long: str, short: str | None = None) -> list[str]:
    """argv less an option and its value, in any of its spellings."""
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == long or (short is not None and word == short):
            skip = True
        elif word.startswith(f"{long}=") or (short is not None and word.startswith(short)):
            continue
        else:
            kept.append(word)
    return kept


def _value(argv: list[str], long: str, short: str | None = None) -> str | None:
    for index, word in enumerate(argv):
        if word in (long, short) and index + 1 < len(argv):
            return argv[index + 1]
        if word.startswith(f"{long}="):
            return word.split("=", 1)[1]
        if short is not None and word.startswith(short) and len(word) > len(short):
            return word[len(short) :]
    return None


def _executable(argv: list[str]) -> list[str]:
    local = BIN / argv[0]
    return [str(local) if "/" not in argv[0] and local.exists() else argv[0], *argv[1:]]


def _kind(argv: list[str]) -> str | None:
    program = Path(argv[0]).name
    if program == "gunicorn":
        return "api"
    if program == "celery" and "worker" in argv:
        return "worker"
    if program == "celery" and "beat" in argv:
        return "beat"
    if program == "flask" and "consume" in argv:
        return "consumer"
    return None


def _queue_map(bench: TreeReport, production: TreeReport) -> dict[str, str]:
    """Production queue name → the run's, for Procfiles that spell queue names out."""
    mapping = {production["default_queue"]: bench["default_queue"]}
    for task, queue in production["routes"].items():
        if task in bench["routes"]:
            mapping[queue] = bench["routes"][task]
    return mapping


def plan(
    tree: Tree,
    environment: Mapping[str, str],
    bench: TreeReport,
    production: TreeReport,
    *,
    run_id: str,
    worker_prefix: str,
    workdir: Path,
    port: int,
    concurrency: int | None,
) -> ProcessPlan:
    """The tree's Procfile as the bench starts it. Refuses any queue that is not the run's own,
    so a bench worker never takes another engineer's tasks (the broker is shared)."""
    ours = set(bench["routes"].values()) | set(bench["default_queues"])
    foreign = sorted(q for q in ours if run_id not in q)
    if foreign:
        raise RuntimeError(
            f"{tree.name}: its tasks go to queues not named after the run: {foreign}"
        )
    mapping = _queue_map(bench, production)
    specs: list[ProcessSpec] = []
    skipped: list[str] = []
    for name, command in read_procfile(tree):
        argv = expand(command, environment)
        kind = _kind(argv) if argv else None
        if kind is None:
            skipped.append(name)
            continue
        argv = _executable(argv)
        state = workdir / f"{tree.name}-{name}"
        if kind == "api":
            argv = _without(argv, "--bind", "-b")
            argv = [*argv[:-1], "--bind", f"127.0.0.1:{port}", argv[-1]]  # app:app stays last
            if _value(argv, "--graceful-timeout") is None:
                argv[-1:-1] = ["--graceful-timeout", "5"]
            specs.append(ProcessSpec(name, kind, API, argv))
            continue
        if kind in ("worker", "beat"):
            for long, short in (("--logfile", "-f"), ("--pidfile", None), ("--loglevel", "-l")):
                argv = _without(argv, long, short)
            argv += ["--loglevel=INFO", f"--pidfile={state}.pid"]  # INFO: the " ready." line
        if kind == "beat":
            argv = [*_without(argv, "--schedule", "-s"), f"--schedule={state}.schedule"]
            specs.append(ProcessSpec(name, kind, BEAT, argv))
        elif kind == "worker":
            given = _value(argv, "--queues", "-Q")
            queues = []
            for queue in given.split(",") if given else bench["default_queues"]:
                if queue not in ours and queue not in mapping:
                    raise RuntimeError(f"{tree.name}: Procfile {name}: unknown queue {queue!r}")
                queues.append(queue if queue in ours else mapping[queue])
            argv = _without(_without(argv, "--queues", "-Q"), "--hostname", "-n")
            argv += [f"--queues={','.join(queues)}", f"--hostname={worker_prefix}-{name}@%h"]
            argv = [*_without(argv, "--statedb", "-S")]
            if concurrency is not None:
                argv = [*_without(argv, "--concurrency", "-c"), f"--concurrency={concurrency}"]
            relay = bench["routes"].get(RELAY_TASK) in queues
            projection = bench["routes"].get(PROJECT_TASK) in queues
            label = {
                (True, True): BOTH_WORKER,
                (True, False): RELAY_WORKER,
                (False, True): PROJECTION_WORKER,
            }.get((relay, projection), OTHER_WORKER)
            specs.append(ProcessSpec(name, kind, label, argv, tuple(queues)))
        else:
            specs.append(ProcessSpec(name, kind, CONSUMER, argv))
    kinds = {s.kind for s in specs}
    missing = {"api", "worker", "consumer"} - kinds
    if missing:
        raise RuntimeError(f"{tree.name}: its Procfile starts no {', '.join(sorted(missing))}")
    served = set().union(*(s.queues for s in specs if s.kind == "worker"))
    for task in (RELAY_TASK, PROJECT_TASK):
        if bench["routes"].get(task) not in served:
            raise RuntimeError(f"{tree.name}: no worker in its Procfile consumes {task}'s queue")
    return ProcessPlan(specs, ours, skipped)
