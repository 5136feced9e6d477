"""The chaos matrix: one fault at a time under load, nothing lost or doubled. `python -m bench
chaos` (`make chaos`) runs every fault and prints the table; tests/e2e/test_chaos_matrix.py runs
the short list and asserts each row clean.

One pipeline (a gunicorn API, a relay worker, a projection worker, beat and `flask consume`) runs
on resources of its own. For each fault, a fresh set of arenas is driven by retrying HTTP clients
(harness/chaos_load.py) and a few more arenas tick; after a quiet spell the fault is injected,
held, and recovered (harness/faults.py); the load goes on for a while, stops, and then:

- commands accepted: answered 2xx (each records exactly one event);
- in Kafka: distinct events of those arenas on the whole events topic (duplicates are allowed);
- applied: distinct events in the arenas' read-model feeds (each application appends one line);
- lost: accepted commands whose event (the arena, the version it answered) is in no feed line;
- applied twice: feed lines beyond the distinct events, plus events the write model holds beyond
  the accepted commands (a retried command that ran twice);
- converge: from the recovery until the last command answered before it was visible;
- visible p99 before / during: answer → view, for commands answered before the fault and while
  it lasted (at least 5 s from its start);
- ticks: the ticking arenas' ticks in PostgreSQL run 1, 2, 3… with none missing or twice, and
  more were made after the recovery;
- verify: `flask verify --wait` on the whole run, clean.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import psycopg
from kafka import KafkaConsumer, TopicPartition

from arena.bootstrap import components
from arena.settings import Settings
from harness.arenas import TICKING, ticks_recorded
from harness.chaos_load import Accepted, RetryingLoad, send_until_answered
from harness.faults import Fault, Lab
from harness.pipeline import Pipeline, running_pipeline
from harness.processes import BIN, free_port
from harness.resources import (
    Run,
    bench_settings,
    create_resources,
    drop_resources,
    on_kafka,
    wait_for,
)
from harness.stats import percentiles

API = "/api/v1/arenas"
TICKING_ARENAS = 2
VERIFY_WAIT_SECONDS = 180.0
VISIBLE_WAIT_SECONDS = 300.0
DURING_AT_LEAST_SECONDS = 5.0
KAFKA_READ_SECONDS = 120.0
HEADERS = [
    "fault",
    "accepted",
    "in Kafka",
    "applied",
    "lost",
    "applied twice",
    "converge s",
    "visible p99 before ms",
    "visible p99 during ms",
    "ticks",
    "verify",
    "notes",
]


@dataclass(frozen=True)
class Windows:
    quiet_seconds: float = 10.0  # load before the fault: the baseline
    fault_seconds: float = 10.0  # how long a service stays down
    after_seconds: float = 10.0  # load after the recovery


@dataclass(frozen=True)
class Outcome:
    fault: str
    accepted: int
    in_kafka: int
    applied: int
    lost: int
    applied_twice: int
    converge_seconds: float | None
    p99_before_ms: float | None
    p99_during_ms: float | None
    ticks_ok: bool
    verified: bool
    notes: str

    @property
    def clean(self) -> bool:
        return (
            self.lost == 0
            and self.applied_twice == 0
            and self.in_kafka == self.accepted
            and self.applied == self.accepted
            and self.ticks_ok
            and self.verified
        )

    def cells(self) -> list[str]:
        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        converge = "never" if self.converge_seconds is None else f"{self.converge_seconds:.1f}"
        counts = (self.accepted, self.in_kafka, self.applied, self.lost, self.applied_twice)
        return [
            self.fault,
            *(str(count) for count in counts),
            converge,
            ms(self.p99_before_ms),
            ms(self.p99_during_ms),
            "ok" if self.ticks_ok else "GAP/TWICE",
            "clean" if self.verified else "DIVERGED",
            self.notes,
        ]


def api_command(port: int) -> list[str]:
    """The API as the Procfile runs it (gunicorn, threads), on a port of the run's own."""
    return [
        str(BIN / "gunicorn"),
        "-c",
        "python:arena.http.gunicorn_hooks",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "16",
        "app:app",
    ]


@contextmanager
def chaos_pipeline(run: Run, port: int) -> Iterator[Pipeline]:
    with running_pipeline(run.settings, run.workdir, concurrency=2, relay_workers=1) as pipeline:
        pipeline.start("api", api_command(port))
        yield pipeline


def run_matrix(
    faults: Sequence[Fault], windows: Windows, workdir: Path, *, kafka_topology: str = "single"
) -> list[Outcome]:
    """Every fault in turn on one pipeline, on the Kafka of `kafka_topology` (stack/topology.py:
    `single`, `make services`' node, or `cluster`, the three nodes, which must be up); the
    resources are dropped at the end."""
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    settings = bench_settings(
        base, run_id, base.outbox_relay_interval_seconds, kafka_topology=kafka_topology
    )
    run = Run(run_id, base, settings, workdir)
    services = on_kafka(base, kafka_topology)  # the servers the run's resources are made on
    wait_for(services, "PostgreSQL", "RabbitMQ", "Redis", "Kafka")
    app = create_resources(run)
    port = free_port()
    outcomes: list[Outcome] = []
    try:
        with chaos_pipeline(run, port) as pipeline:
            lab = Lab(pipeline, run.settings, components(app).views, components(app).celery)
            _wait_for_api(port, pipeline)
            _warm_up(port, windows.quiet_seconds)
            for fault in faults:
                lab.notes.clear()
                outcomes.append(_scenario(lab, fault, windows, port, run))
                click.echo(" | ".join(outcomes[-1].cells()), err=True)
    finally:
        wait_for(services, "PostgreSQL", "RabbitMQ", "Redis", "Kafka")
        for problem in drop_resources(run, [app]):
            click.echo(problem, err=True)
    return outcomes


def _wait_for_api(port: int, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + 60
    while send_until_answered(port, "GET", "/healthz", deadline_seconds=1)[0].status != 200:
        pipeline.assert_running()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API is not answering on :{port}")


def _warm_up(port: int, seconds: float) -> None:
    """The same load once before the first fault, so its baseline is not the processes' start."""
    load = RetryingLoad(port).start()
    time.sleep(seconds)
    load.stop_sending()
    load.wait_visible(VISIBLE_WAIT_SECONDS)


def _scenario(lab: Lab, fault: Fault, windows: Windows, port: int, run: Run) -> Outcome:
    click.echo(f"— {fault.name}", err=True)
    ticking = _ticking_arenas(port)
    load = RetryingLoad(port).start()
    try:
        time.sleep(windows.quiet_seconds)  # the baseline window: load with no fault
        fault_at = time.monotonic()
        try:
            fault.inject(lab)
            hold = windows.fault_seconds if fault.hold_seconds is None else fault.hold_seconds
            time.sleep(hold)  # the fault lasting is the scenario
        finally:
            fault.recover(lab)
        recovered_at = time.monotonic()
        ticks_at_recovery = _ticks_made(run, ticking)
        time.sleep(windows.after_seconds)
    finally:
        load.stop_sending()
    for arena_id, token in ticking:
        send_until_answered(port, "POST", f"{API}/{arena_id}/stop", token=token)
    load.wait_visible(VISIBLE_WAIT_SECONDS)
    verified = lab.pipeline.verify(VERIFY_WAIT_SECONDS).returncode == 0
    return _outcome(
        lab, fault, load, ticking, run, (fault_at, recovered_at), ticks_at_recovery, verified
    )


def _ticks_made(run: Run, ticking: list[tuple[str, str]]) -> dict[str, int]:
    with psycopg.connect(run.dsn) as sql:
        return {arena_id: len(ticks_recorded(sql, arena_id)) for arena_id, _ in ticking}


def _ticking_arenas(port: int) -> list[tuple[str, str]]:
    made = []
    for number in range(TICKING_ARENAS):
        body = {"name": f"Chaos dish {number}", "displayName": "Ada", "config": TICKING}
        created = send_until_answered(port, "POST", API, body)[0].body
        assert isinstance(created, dict), f"could not create a ticking arena: {created}"
        arena_id, token = created["id"], created["player"]["token"]
        send_until_answered(port, "POST", f"{API}/{arena_id}/start", token=token)
        made.append((arena_id, token))
    return made


def _outcome(
    lab: Lab,
    fault: Fault,
    load: RetryingLoad,
    ticking: list[tuple[str, str]],
    run: Run,
    window: tuple[float, float],
    ticks_at_recovery: dict[str, int],
    verified: bool,
) -> Outcome:
    fault_at, recovered_at = window
    accepted = load.snapshot()
    arenas = {a.arena_id for a in accepted}
    feeds = {arena_id: lab.views.feed(arena_id, 1000) for arena_id in arenas}
    applied = {(arena_id, line["eventId"]) for arena_id, lines in feeds.items() for line in lines}
    lines = sum(len(feed) for feed in feeds.values())
    # Each accepted command is one event: (arena, the version it answered).
    expected = {(a.arena_id, a.version) for a in accepted}
    shown = {(arena_id, line["version"]) for arena_id, lines in feeds.items() for line in lines}
    with psycopg.connect(run.dsn) as sql:
        rows = sql.execute(
            "SELECT id::text, version FROM arenas WHERE id = ANY(%s::uuid[])", (list(arenas),)
        ).fetchall()
        written: dict[str, int] = {arena_id: version for arena_id, version in rows}
        ticks = {arena_id: ticks_recorded(sql, arena_id) for arena_id, _ in ticking}
    # 1, 2, 3… with none missing or twice, and going on after the recovery.
    ticks_ok = all(
        made == list(range(1, len(made) + 1)) and len(made) > ticks_at_recovery.get(arena_id, 0)
        for arena_id, made in ticks.items()
    )
    written_twice = max(0, sum(written.values()) - len(accepted))
    return Outcome(
        fault=fault.name,
        accepted=len(accepted),
        in_kafka=len(_in_kafka(lab.settings, arenas)),
        applied=len(applied),
        lost=len(expected - shown),
        applied_twice=(lines - len(applied)) + written_twice,
        converge_seconds=_converge_seconds(accepted, recovered_at),
        p99_before_ms=_p99(accepted, 0.0, fault_at),
        p99_during_ms=_p99(
            accepted, fault_at, max(recovered_at, fault_at + DURING_AT_LEAST_SECONDS)
        ),
        ticks_ok=ticks_ok,
        verified=verified,
        notes="; ".join(
            [
                *lab.notes,
                *([f"{load.resent} commands sent again"] if load.resent else []),
                *(f"refused: {r}" for r in load.refused[:1]),
            ]
        ),
    )


def _in_kafka(settings: Settings, arenas: set[str]) -> set[tuple[str, int]]:
    """The distinct (arena, version) pairs of these arenas on the whole events topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    try:
        partitions = [
            TopicPartition(settings.kafka_events_topic, p)
            for p in consumer.partitions_for_topic(settings.kafka_events_topic) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: set[tuple[str, int]] = set()
        deadline = time.monotonic() + KAFKA_READ_SECONDS
        while any(consumer.position(p) < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the events topic not read to its end in {KAFKA_READ_SECONDS}s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key and record.key.decode() in arenas:
                        envelope = json.loads(record.value)
                        found.add((envelope["aggregateId"], envelope["aggregateVersion"]))
        return found
    finally:
        consumer.close()


def _converge_seconds(accepted: list[Accepted], recovered_at: float) -> float | None:
    """How long after the recovery the last command answered before it became visible."""
    before = [a for a in accepted if a.answered <= recovered_at]
    if any(a.visible is None for a in before):
        return None
    return max((max(0.0, a.visible - recovered_at) for a in before if a.visible), default=0.0)


def _p99(accepted: list[Accepted], since: float, until: float) -> float | None:
    shown = [a.visible_ms for a in accepted if since <= a.answered < until]
    return percentiles([ms for ms in shown if ms is not None])["p99"]
