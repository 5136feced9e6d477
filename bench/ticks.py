"""The tick path: events written without HTTP, 100 per transaction, through the whole pipeline.

The simulation will write one event per running arena per tick from a Celery task, many arenas
per transaction. Until it exists, this phase stands in for that task: the bench opens 100 arenas
through the API and starts them (not measured), then each transaction loads them in one round
trip and submits one action to each with the command handlers and the unit of work, so every
commit writes 100 outbox rows, at `rate` events/s. The writer is this checkout's code whichever
tree is measured (it only needs the tables); the relay, Kafka, consumer and projections are the
tree's. CPU per event is counted from the first commit until every event shows in the read
model, with the writer's own CPU beside it.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

import psycopg

from arena.domain.actions import ActionType
from arena.domain.model import hash_token
from arena.persistence.idempotency_keys import ReplySealer
from arena.persistence.sql_unit_of_work import SqlUnitOfWork
from arena.services.commands import SubmitAction
from arena.services.handlers import submit_action
from arena.services.unit_of_work import Provenance
from bench.cpu import TICK_WRITER, CpuMeter, Usage
from bench.processes import Processes
from bench.table import Row, distribution
from bench.workload import Answer, Visibility, wait_until_applied
from harness.arenas import COMMANDS_ONLY
from harness.httpclient import call
from harness.resources import Run
from harness.script import ACTIONS, API

EVENTS_PER_TRANSACTION = 100


def tick_path(
    run: Run,
    port: int,
    visibility: Visibility,
    processes: Processes,
    meter: CpuMeter,
    events: int,
    rate: float,
    deadline: float,
) -> tuple[list[Row], Usage]:
    """Write `events` at `rate`/s, 100 per transaction; the row and the CPU window (the writer's
    CPU in it as its own kind)."""
    arenas = _running_arenas(port, EVENTS_PER_TRANSACTION)
    transactions = max(1, events // EVENTS_PER_TRANSACTION)
    window = meter.begin()
    answers, writer_seconds, commit_ms = _write(run, arenas, transactions, rate, visibility)
    wait_until_applied(visibility, answers, processes, "ticks: applied        ", deadline)
    applied = sum(answer.key in visibility.seen for answer in answers)
    usage = meter.end(window, applied)
    usage.seconds[TICK_WRITER] = writer_seconds
    lags = [
        1000 * (visibility.seen[a.key] - a.returned) for a in answers if a.key in visibility.seen
    ]
    row = distribution(
        f"Tick path: {EVENTS_PER_TRANSACTION} events per transaction, commit → visible",
        lags,
        f"{transactions} transactions of the unit of work, {rate:g} events/s offered; "
        f"{applied:,} of {len(answers):,} applied; commit median {commit_ms:.1f} ms",
    )
    row.rate, row.ok = rate, applied == len(answers)
    return [row], usage


def _running_arenas(port: int, count: int) -> list[tuple[str, str]]:
    """Open and start `count` arenas through the API; (arena id, admin token hash) each."""
    arenas = []
    for number in range(count):
        created = call(
            port,
            "POST",
            API,
            {"name": f"Tick dish {number}", "displayName": "Ada", "config": COMMANDS_ONLY},
        )
        if created.status != 201:
            raise RuntimeError(f"could not open a tick arena: {created.status} {created.body}")
        arena_id, token = created.body["id"], created.body["player"]["token"]
        started = call(port, "POST", f"{API}/{arena_id}/start", token=token)
        if started.status != 200:
            raise RuntimeError(f"could not start a tick arena: {started.status} {started.body}")
        arenas.append((arena_id, hash_token(token)))
    return arenas


def _write(
    run: Run,
    arenas: list[tuple[str, str]],
    transactions: int,
    rate: float,
    visibility: Visibility,
) -> tuple[list[Answer], float, float]:
    """The transactions, paced, each event watched for once committed; the answers, the writer
    thread's CPU seconds, the median commit in ms."""
    action_type, payload = ACTIONS["nutrients"]
    answers: list[Answer] = []
    commits: list[float] = []
    interval = EVENTS_PER_TRANSACTION / rate
    sealer = ReplySealer(secrets.token_bytes(32))  # these commands send no Idempotency-Key
    cpu = time.thread_time()
    started = time.monotonic()
    with psycopg.connect(run.dsn) as connection:
        for number in range(transactions):
            time.sleep(max(0.0, started + number * interval - time.monotonic()))
            began = time.monotonic()
            with SqlUnitOfWork(
                connection, Provenance.new(), idempotency_retention=timedelta(0), sealer=sealer
            ) as uow:
                uow.arenas.get_many([arena_id for arena_id, _ in arenas])  # one round trip
                outcomes = [
                    submit_action(
                        uow, SubmitAction(arena_id, ActionType(action_type), payload, None, actor)
                    )
                    for arena_id, actor in arenas
                ]
                uow.commit()
            committed, committed_wall = time.monotonic(), time.time()
            commits.append(1000 * (committed - began))
            committed_events = [
                Answer(
                    f"tick-{number}-{i}",
                    "tick",
                    200,
                    outcome.arena_id,
                    outcome.version,
                    began,
                    committed,
                    committed_wall,
                )
                for i, outcome in enumerate(outcomes)
            ]
            for answer in committed_events:
                visibility.expect(answer)
            answers += committed_events
    return answers, time.thread_time() - cpu, sorted(commits)[len(commits) // 2]
