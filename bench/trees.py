"""Source trees to measure: the working tree, and a baseline commit checked out with
`git worktree`, so one run can compare the two on the same machine minutes apart.

Each tree's processes run its own code: cwd and PYTHONPATH point at the tree (PYTHONPATH comes
before the venv's editable install of /work/main, whose finder is consulted last), with the same
venv. `probe()` checks that, and reports where the tree's Celery tasks are routed. A tree may
have a broker of its own: one from before RabbitMQ builds a Redis client from CELERY_BROKER_URL
(its projections' in-flight ledger) and fails on an amqp:// URL.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from arena.settings import Settings
from harness.processes import ROOT, Command, flask_command, pipeline_env, run_to_end

SETUP_TIMEOUT_SECONDS = 180
# Run inside each tree, the baseline's too: settings moved from arena.config to arena.settings.
ENSURE_TOPICS = """
try:
    from arena.settings import Settings
except ImportError:
    from arena.config import Settings
from arena.messaging.kafka import ensure_topics
ensure_topics(Settings.from_env())
"""


class TreeReport(TypedDict):
    """What bench/probe_tree.py prints of a tree: where its code came from and where its Celery
    tasks go under the environment it was given."""

    arena: str  # the package's file
    tasks: str
    routes: dict[str, str]  # task name → queue
    default_queues: list[str]  # what a worker started without -Q consumes
    default_queue: str
    view_key: str  # an arena's view key, with bench/tree_views.py's placeholders


@dataclass(frozen=True)
class Tree:
    """A checkout whose code the pipeline's processes run."""

    name: str  # "baseline" or "current": the table's column
    root: Path
    ref: str  # what it is, for the table's title
    broker_url: str | None = None  # its CELERY_BROKER_URL; None: the environment's

    def environment(self, settings: Settings | None) -> dict[str, str]:
        """What its processes get: ours, the run's settings, its code first on the path, and its
        own broker, if it has one (also when `settings` is None: its code would fail without)."""
        broker = {"CELERY_BROKER_URL": self.broker_url} if self.broker_url else {}
        return pipeline_env(settings, PYTHONPATH=str(self.root), **broker)

    def run(self, command: Command, settings: Settings, log: Path) -> None:
        """A one-off command in the tree (migrations, topics); fails with its output."""
        done = run_to_end(
            command, self.environment(settings), timeout=SETUP_TIMEOUT_SECONDS, cwd=self.root
        )
        with log.open("a") as output:
            output.write(done.stdout + done.stderr)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name}: {command[-1]} failed ({done.returncode}):\n{tail}")

    def prepare(self, settings: Settings, log: Path) -> None:
        """The run's database schema and topics, as this tree's own code makes them."""
        self.run(flask_command("db", "upgrade"), settings, log)
        self.run([sys.executable, "-c", ENSURE_TOPICS], settings, log)

    def probe(self, settings: Settings | None) -> TreeReport:
        """Routes of the tree's Celery tasks under `settings` (None: the caller's environment,
        as `make run` would see it), after checking the tree's code is what gets imported."""
        done = run_to_end(
            [sys.executable, ROOT / "bench" / "probe_tree.py"],
            self.environment(settings),
            timeout=SETUP_TIMEOUT_SECONDS,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{self.name}: probing its Celery app failed:\n{done.stderr[-2000:]}"
            )
        report: TreeReport = json.loads(done.stdout.strip().splitlines()[-1])
        for module in ("arena", "tasks"):
            if not Path(report[module]).resolve().is_relative_to(self.root.resolve()):
                raise RuntimeError(
                    f"{self.name}: `{module}` was imported from {report[module]}, not {self.root}"
                )
        return report


def current_tree() -> Tree:
    return Tree("current", ROOT, "working tree")


def _git(*arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *arguments], capture_output=True, text=True, check=True
    ).stdout.strip()


@contextlib.contextmanager
def baseline_tree(ref: str, broker_url: str | None = None) -> Iterator[Tree]:
    """`ref` checked out in a temporary `git worktree`, removed again afterwards; its processes
    use `broker_url` when given."""
    try:
        commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"--baseline {ref}: not a commit ({error.stderr.strip()})") from error
    parent = Path(tempfile.mkdtemp(prefix="arena-bench-baseline-"))
    path = parent / "tree"
    _git("worktree", "add", "--detach", "--quiet", str(path), commit)
    try:
        yield Tree("baseline", path, f"{ref} ({commit[:10]})", broker_url)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "remove", "--force", str(path))
        with contextlib.suppress(subprocess.CalledProcessError):
            _git("worktree", "prune")
        shutil.rmtree(parent, ignore_errors=True)
