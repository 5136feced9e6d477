#!/usr/bin/env python
"""Outbox relay benchmark: batched vs one-row-at-a-time throughput, and commit → Kafka latency.

Run from the project root: `.venv/bin/python bench/relay.py [options]` (`make bench-relay`).
It uses the local services (PostgreSQL, Redis, Kafka on 127.0.0.1) but only resources of its own,
named after a random run id: a database `arena_bench_<id>` (migrated), topics
`arena.events[.dlq].bench-<id>`, a Celery queue and a consumer group. It removes them at the end,
also after a failure or Ctrl-C, and prints one table. docs/benchmarks.md explains the figures.

1. Batched relay: COPY N pending outbox rows, drain them in-process with the real `relay_pending`
   at the configured batch size; check Kafka got N records and nothing is left pending.
2. One-row relay: the same code with batch size 1 over fresh rows (what batching buys).
3. Latency: a real Celery worker and beat as subprocesses, commands through the API in-process at
   a steady rate, a Kafka consumer thread timing each event's arrival; once with the nudge
   (OUTBOX_NUDGE=true) and once with beat only. Kafka record timestamps and Celery's own task
   events split the latency into its hops.

A phase disturbed by a Kafka outage (another engineer's tests restart it) is measured again once
Kafka is back, up to --attempts times.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import io
import itertools
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/relay.py` puts bench/, not the project, on the path
    sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import psycopg  # noqa: E402
from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from flask_migrate import upgrade  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from arena import create_app  # noqa: E402
from arena.settings import Settings  # noqa: E402
from arena.domain.actions import ActionType  # noqa: E402
from arena.domain.config import ArenaConfig  # noqa: E402
from arena.domain.envelope import EventEnvelope  # noqa: E402
from arena.domain.model import Arena, Player  # noqa: E402
from arena.extensions import db  # noqa: E402
from arena.messaging.kafka import ensure_topics, kafka_reachable  # noqa: E402
from arena.messaging.ports import Delivery, Publisher  # noqa: E402
from arena.messaging.publishers import discard_publisher, publisher_for  # noqa: E402
from arena.outbox.relay import RelayPolicy, relay_pending  # noqa: E402
from arena.persistence.connections import pooled_connection  # noqa: E402
from tasks.celery_app import RELAY_TASK  # noqa: E402

BIN = Path(sys.executable).parent
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
MINIMAL_RELAY_TOPIC_SUFFIX = ".minimal-relay"  # the yardstick relay's (bench/minimal_relay.py)
SERVICE_WAIT_SECONDS = 300  # Kafka may be mid-restart (another engineer's tests)
PROCESS_READY_SECONDS = 90
PROCESS_STOP_SECONDS = 20
ARRIVAL_WAIT_SECONDS = 60
LATENCY_TARGETS = 4  # running arenas that receive the trickle's actions
COPY_SQL = (
    "COPY outbox (event_id, event_type, aggregate_id, aggregate_version, envelope) FROM STDIN"
)

log = logging.getLogger("bench.relay")


# --- options and the run's own resources --------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Settings.from_env()
    parser = argparse.ArgumentParser(
        description="Benchmark the transactional-outbox relay on the local services.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--events", type=int, default=100_000, help="events for the batched run")
    add("--arenas", type=int, default=1000, help="arenas those events belong to")
    add("--batch-size", type=int, default=defaults.outbox_batch_size, help="batched run's size")
    add("--single-events", type=int, default=5000, help="events for the batch-size-1 run")
    add("--trickle", type=int, default=300, help="measured commands per latency round")
    add("--rate", type=float, default=20.0, help="commands per second in the latency rounds")
    add("--warmup", type=int, default=40, help="unmeasured commands before each latency round")
    add(
        "--relay-interval",
        type=float,
        default=defaults.outbox_relay_interval_seconds,
        help="Celery beat's relay interval, seconds (OUTBOX_RELAY_INTERVAL_SECONDS)",
    )
    add("--phase-deadline", type=float, default=900.0, help="seconds one phase may take")
    add("--attempts", type=int, default=3, help="tries per phase when Kafka goes away mid-phase")
    add("--skip-throughput", action="store_true", help="run only the latency rounds")
    add("--skip-latency", action="store_true", help="run only the throughput runs")
    add("--keep-logs", action="store_true", help="keep the log directory (worker, beat, relay)")
    args = parser.parse_args(argv)
    sizes = (args.events, args.arenas, args.batch_size, args.single_events, args.trickle)
    if min(sizes) < 1 or args.attempts < 1:
        parser.error("counts, sizes and --attempts must be at least 1")
    if args.rate <= 0 or args.relay_interval <= 0:
        parser.error("--rate and --relay-interval must be positive")
    return args


@dataclass(frozen=True)
class Run:
    """One benchmark run: its id, its isolated settings, the base settings and a log directory."""

    run_id: str
    base: Settings
    settings: Settings
    workdir: Path

    @property
    def dsn(self) -> str:
        return _libpq(self.settings.database_url)

    @property
    def worker_prefix(self) -> str:
        return f"bench-{self.run_id}"


def bench_settings(base: Settings, run_id: str, relay_interval: float) -> Settings:
    """The environment's settings with every shared resource renamed after the run id."""
    database = make_url(base.database_url).set(database=f"arena_bench_{run_id}")
    return dataclasses.replace(
        base,
        database_url=database.render_as_string(hide_password=False),
        read_model_prefix=f"bench-{run_id}",
        celery_queue=f"arena-bench-{run_id}",
        kafka_events_topic=f"arena.events.bench-{run_id}",
        kafka_dlq_topic=f"arena.events.dlq.bench-{run_id}",
        kafka_consumer_group=f"arena-projections-bench-{run_id}",
        outbox_relay_interval_seconds=relay_interval,
    )


def require_loopback(settings: Settings) -> None:
    """All traffic stays on this machine: refuse service URLs that point elsewhere."""
    hosts = {
        "DATABASE_URL": make_url(settings.database_url).host or "",
        "REDIS_URL": urlsplit(settings.redis_url).hostname or "",
        "CELERY_BROKER_URL": urlsplit(settings.celery_broker_url).hostname or "",
    }
    for server in settings.kafka_bootstrap_servers.split(","):
        hosts[f"KAFKA_BOOTSTRAP_SERVERS {server}"] = server.strip().rsplit(":", 1)[0].strip("[]")
    remote = {name: host for name, host in hosts.items() if host not in LOOPBACK_HOSTS}
    if remote:
        raise SystemExit(f"bench/relay.py only talks to 127.0.0.1; not loopback: {remote}")


def _libpq(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _answers(call: Callable[[], object]) -> bool:
    try:
        call()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not (yet) reachable"
        return False


def _ping(redis_url: str) -> None:
    client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def wait_for(settings: Settings, *services: str) -> None:
    """Wait (bounded) until each named service answers; Kafka may be restarting."""
    probes: dict[str, Callable[[], bool]] = {
        "PostgreSQL": lambda: _answers(
            lambda: psycopg.connect(_libpq(settings.database_url), connect_timeout=2).close()
        ),
        "Redis": lambda: (
            _answers(lambda: _ping(settings.redis_url))
            and _answers(lambda: _ping(settings.celery_broker_url))
        ),
        "Kafka": lambda: kafka_reachable(settings, timeout_seconds=3),
    }
    deadline = time.monotonic() + SERVICE_WAIT_SECONDS
    for name in services:
        warned = False
        while not probes[name]():
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} unreachable for {SERVICE_WAIT_SECONDS}s")
            if not warned:
                click.echo(f"waiting for {name} (bash scripts/services.sh status)…", err=True)
                warned = True
            time.sleep(2)


def create_resources(run: Run) -> Flask:
    """The run's database with every migration, and its topics; answers the API app on them."""
    name = make_url(run.settings.database_url).database
    with psycopg.connect(_libpq(run.base.database_url), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    app = make_app(run.settings)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # alembic.ini's fileConfig points the root logger at the console: keep ours.
    with app.app_context(), contextlib.redirect_stderr(io.StringIO()):
        upgrade(directory=str(ROOT / "migrations"))
    root.handlers[:], root.level = handlers, level
    wait_for(run.settings, "Kafka")
    ensure_topics(run.settings)
    return app


def make_app(settings: Settings) -> Flask:
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def drop_resources(run: Run, apps: list[Flask]) -> list[str]:
    """Remove everything the run made; answers what could not be removed (never raises)."""
    settings, problems = run.settings, []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except BaseException as error:  # noqa: BLE001 - clean up the rest regardless
            problems.append(f"could not {what}: {error!r}")

    def drop_database() -> None:
        for app in apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        name = make_url(settings.database_url).database
        with psycopg.connect(_libpq(run.base.database_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def delete_topics() -> None:
        wait_for(settings, "Kafka")
        admin = KafkaAdminClient(
            bootstrap_servers=settings.kafka_bootstrap_servers, client_id="arena-bench-admin"
        )
        try:
            events, dlq = settings.kafka_events_topic, settings.kafka_dlq_topic
            ours = {events, dlq, events + MINIMAL_RELAY_TOPIC_SUFFIX}
            doomed = sorted(ours & set(admin.list_topics()))
            if doomed:
                admin.delete_topics(doomed)
            with contextlib.suppress(Exception):  # never committed to, so normally absent
                admin.delete_groups([settings.kafka_consumer_group])
        finally:
            admin.close()

    def delete_redis_keys() -> None:
        broker = Redis.from_url(settings.celery_broker_url, socket_timeout=5)
        try:  # the queue, its bindings, our workers' remote-control queues
            patterns = (f"*{settings.celery_queue}*", f"*{run.worker_prefix}*")
            keys = {key for p in patterns for key in broker.scan_iter(match=p, count=1000)}
            if keys:
                broker.delete(*keys)
            for binding in broker.scan_iter(match="_kombu.binding.*", count=1000):
                if broker.type(binding) == b"set":  # shared by every worker: remove ours only
                    ours = [m for m in broker.smembers(binding) if run.worker_prefix.encode() in m]
                    if ours:
                        broker.srem(binding, *ours)
        finally:
            broker.close()
        read_model = Redis.from_url(settings.redis_url, socket_timeout=5)
        try:
            keys = set(read_model.scan_iter(match=f"{settings.read_model_prefix}:*", count=1000))
            if keys:
                read_model.delete(*keys)
        finally:
            read_model.close()

    attempt("drop the database", drop_database)
    attempt("delete the Kafka topics", delete_topics)
    attempt("delete the Redis keys", delete_redis_keys)
    return problems


# --- the table ----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the final table; times in milliseconds."""

    name: str
    n: int | None = None
    wall_s: float | None = None
    rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    notes: str = ""
    ok: bool = True


def percentiles(values_ms: Sequence[float]) -> dict[str, float | None]:
    """p50/p95/p99/max (inclusive method: small samples stay within the data)."""
    if len(values_ms) < 2:
        only = float(values_ms[0]) if values_ms else None
        return {"p50": only, "p95": only, "p99": only, "max": only}
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values_ms)}


def distribution(name: str, values_ms: Sequence[float], notes: str = "") -> Row:
    return Row(name, n=len(values_ms), notes=notes, **percentiles(values_ms))


def print_table(title: str, machine: list[str], rows: list[Row]) -> None:
    """The one result table, in Markdown so that it pastes into docs/benchmarks.md as is."""
    headers = ["Measurement", "n", "wall s", "events/s", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    headers.append("notes")

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:,.{digits}f}"

    cells = [
        [
            row.name,
            number(row.n, 0),
            number(row.wall_s, 2),
            number(row.rate, 0 if (row.rate or 0) >= 100 else 1),
            *(number(value, 1) for value in (row.p50, row.p95, row.p99, row.max)),
            row.notes + ("" if row.ok else "  ✗ CHECK FAILED"),
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [headers, *cells]) for i in range(len(headers))]
    text_columns = (0, len(headers) - 1)

    def render(line: list[str]) -> str:
        return (
            "| "
            + " | ".join(
                text.ljust(width) if i in text_columns else text.rjust(width)
                for i, (text, width) in enumerate(zip(line, widths, strict=True))
            )
            + " |"
        )

    rule = ["-" * w if i in text_columns else "-" * (w - 1) + ":" for i, w in enumerate(widths)]
    click.echo("\n".join(["", title, *machine, "", render(headers), render(rule)]))
    click.echo("\n".join(render(line) for line in cells))


def machine_lines(run: Run, load_at_start: tuple[float, ...]) -> list[str]:
    """Where the figures come from: hardware, versions, and how busy the machine was."""

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    def first(path: str, prefix: str) -> str:
        with contextlib.suppress(OSError):
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        return "?"

    memory = first("/proc/meminfo", "MemTotal")
    with contextlib.suppress(ValueError, IndexError):
        memory = f"{int(memory.split()[0]) / 1024**2:.1f} GiB"
    postgres = redis_version = "?"
    with (
        contextlib.suppress(Exception),
        psycopg.connect(_libpq(run.base.database_url), connect_timeout=3) as connection,
    ):
        postgres = connection.execute("SHOW server_version").fetchone()[0].split()[0]
    with contextlib.suppress(Exception):
        redis_version = Redis.from_url(run.settings.redis_url).info("server")["redis_version"]
    jars = sorted((ROOT / "var" / "kafka" / "lib").glob("kafka-server-[0-9]*.jar"))
    broker = jars[-1].stem.removeprefix("kafka-server-") if jars else "?"
    load_now = os.getloadavg()
    return [
        f"Machine: {first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores, {memory} RAM, "
        f"{platform.platform()}",
        f"Python {platform.python_version()}, kafka-python {version('kafka-python')}, "
        f"Celery {version('celery')}, psycopg {version('psycopg')}, "
        f"SQLAlchemy {version('sqlalchemy')}; PostgreSQL {postgres}, Redis {redis_version}, "
        f"Kafka {broker} (1 KRaft node), all on 127.0.0.1",
        f"Load average (1 min) {load_at_start[0]:.2f} at start, {load_now[0]:.2f} at end "
        "(the services and any other work share these cores)",
    ]


# --- phases 1 and 2: relay throughput -----------------------------------------------------------


def outbox_rows(count: int, arenas: int) -> Iterator[tuple[uuid.UUID, str, uuid.UUID, int, str]]:
    """`count` events of `arenas` arenas as the real domain records them, ready for COPY.

    Per arena: ArenaCreated (v1), ArenaStarted (v2), then ActionSubmitted, so envelopes have their
    real shape and size. Rows go round-robin over the arenas, so each arena's versions rise with
    the outbox id, as concurrent commands leave them.
    """
    now = datetime.now(UTC)
    quota = [count // arenas + (1 if index < count % arenas else 0) for index in range(arenas)]
    live: list[tuple[Arena, Player, int]] = []
    for index, wanted in enumerate(quota):
        if wanted:
            arena, creator = Arena.create(
                name=f"Bench dish {index}",
                creator_display_name="Ada",
                config=ArenaConfig(),
                now=now,
            )
            live.append((arena, creator.player, wanted))
    actions: list[tuple[ActionType, dict[str, Any]]] = [
        (ActionType.SPAWN_ORGANISM, {"kind": "BACTERIA", "position": {"x": 12, "y": 40}}),
        (ActionType.SET_TEMPERATURE, {"temperature": {"value": 31.5}}),
        (
            ActionType.ADD_NUTRIENTS,
            {"area": {"x": 8, "y": 8, "width": 4, "height": 4}, "amount": 2},
        ),
    ]
    for version in range(1, max(quota) + 1):
        for arena, admin, wanted in live:
            if version > wanted:
                continue
            if version == 2:
                arena.transition("start", admin, now)
            elif version > 2:
                action_type, payload = actions[version % len(actions)]
                arena.submit_action(admin, action_type, payload, None, now)
            (recorded,) = arena.collect_events()
            request_id = str(uuid.uuid4())
            envelope = EventEnvelope.wrap(
                recorded, correlation_id=request_id, causation_id=request_id
            )
            yield (
                uuid.UUID(envelope.event_id),
                envelope.event_type,
                uuid.UUID(envelope.aggregate_id),
                envelope.aggregate_version,
                json.dumps(envelope.to_dict()),
            )


def load_outbox(run: Run, count: int, arenas: int, label: str) -> tuple[float, float]:
    """COPY `count` pending events into the outbox; answers (seconds, mean envelope bytes)."""
    started = time.perf_counter()
    envelope_bytes = 0
    with (
        psycopg.connect(run.dsn) as connection,
        connection.cursor() as cursor,
        click.progressbar(length=count, label=label) as bar,
        cursor.copy(COPY_SQL) as copy,
    ):
        for number, row in enumerate(outbox_rows(count, arenas), 1):
            copy.write_row(row)
            envelope_bytes += len(row[4])
            if number % 1000 == 0:
                bar.update(1000)
        bar.update(count % 1000)
    with psycopg.connect(run.dsn, autocommit=True) as connection:
        connection.execute("ANALYZE outbox")  # a live outbox has statistics; a fresh load has not
    return time.perf_counter() - started, envelope_bytes / count


class TimedPublisher:
    """Wraps the real KafkaPublisher to time send() and flush() and to move the progress bar."""

    def __init__(self, inner: Publisher, on_flushed: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_flushed = on_flushed
        self._unflushed = 0
        self._send_seconds = 0.0
        self.send_per_batch: list[float] = []
        self.flush_per_batch: list[float] = []

    def publish(self, key: str, value: dict[str, Any], headers: dict[str, str]) -> Delivery:
        started = time.perf_counter()
        delivery = self._inner.publish(key, value, headers)
        self._send_seconds += time.perf_counter() - started
        self._unflushed += 1
        return delivery

    def flush(self) -> None:
        started = time.perf_counter()
        try:
            self._inner.flush()
        finally:
            self.flush_per_batch.append(time.perf_counter() - started)
            self.send_per_batch.append(self._send_seconds)
            flushed, self._unflushed, self._send_seconds = self._unflushed, 0, 0.0
        self._on_flushed(flushed)


class TimedStatements:
    """The relay's psycopg connection, timing its statements by kind (claim / mark and count)
    and noting when each claim began."""

    _PREFIXES: ClassVar[dict[str, str]] = {"WITH claimed": "claim", "WITH marked": "mark"}

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection
        self.timings: dict[str, list[float]] = {
            "claim": [],
            "mark": [],
            "other": [],
            "claim_started": [],
        }

    def execute(self, statement: str, params: Any = None) -> psycopg.Cursor[Any]:
        text = " ".join(statement.split())
        kind = next((k for prefix, k in self._PREFIXES.items() if text.startswith(prefix)), "other")
        started = time.perf_counter()
        if kind == "claim":
            self.timings["claim_started"].append(started)
        try:
            return self._connection.execute(statement, params)
        finally:
            self.timings[kind].append(time.perf_counter() - started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


def kafka_record_count(settings: Settings) -> int:
    """Sum of the events topic's end offsets: how many records it ever received."""
    wait_for(settings, "Kafka")
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        client_id="arena-bench-offsets",
    )
    try:
        deadline = time.monotonic() + 30
        while not (partitions := consumer.partitions_for_topic(settings.kafka_events_topic)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no metadata for {settings.kafka_events_topic}")
            time.sleep(0.2)
        tps = [TopicPartition(settings.kafka_events_topic, p) for p in sorted(partitions)]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def pending_rows(run: Run) -> int:
    with psycopg.connect(run.dsn) as connection:
        query = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        return connection.execute(query).fetchone()[0]


def relay_run(
    run: Run, app: Flask, args: argparse.Namespace, name: str, count: int, batch_size: int
) -> tuple[list[Row], bool]:
    """Load `count` events, drain them with the real relay_pending, check Kafka and the outbox.

    Answers the rows and whether a Kafka outage disturbed the measurement.
    """
    settings = run.settings
    with psycopg.connect(run.dsn, autocommit=True) as connection:
        # An earlier, disturbed attempt may have left rows behind (pending, or dead-lettered and
        # holding their arenas): each attempt starts from an outbox with nothing pending.
        connection.execute("DELETE FROM outbox WHERE published_at IS NULL")
        connection.execute("DELETE FROM outbox_dead_letters")
    load_seconds, envelope_bytes = load_outbox(run, count, args.arenas, f"{name}: load ")
    policy = dataclasses.replace(RelayPolicy.from_settings(settings), batch_size=batch_size)
    records_before = kafka_record_count(settings)
    failed_batches = published = 0
    with (
        app.app_context(),
        click.progressbar(length=count, label=f"{name}: relay") as bar,
        pooled_connection(db.engine) as connection,
    ):
        timed_sql = TimedStatements(connection)
        sql = timed_sql.timings
        # Long-lived, as in a worker process: producer start-up is not part of the relay's cost.
        producer = publisher_for(settings, settings.kafka_events_topic)
        timed = TimedPublisher(producer, bar.update)
        started = time.perf_counter()
        deadline = started + args.phase_deadline
        while time.perf_counter() < deadline:
            result = relay_pending(timed_sql, lambda: timed, policy)  # type: ignore[arg-type]
            published += result.published
            if result.error is not None:  # Kafka went away: this attempt's figures are spoilt
                failed_batches += 1
                log.warning("relay batch failed, abandoning this attempt: %s", result.error)
                discard_publisher(settings, settings.kafka_events_topic)
                break
            if result.published == 0:
                if pending_rows(run) == 0:
                    break
                time.sleep(0.05)  # only backed-off rows are left; they are due soon
        seconds = time.perf_counter() - started
    records = kafka_record_count(settings) - records_before
    pending = pending_rows(run)
    check = f"Kafka +{records:,} records, {pending} pending"
    if failed_batches:
        check += f", {failed_batches} failed batches"
    per = "row" if batch_size == 1 else "batch"
    wall_ms = 1000 * seconds

    def part(label: str, seconds_per_call: list[float], notes: str = "") -> Row:
        share = 100 * sum(seconds_per_call) * 1000 / wall_ms
        row = distribution(f"  · {label} (per {per})", [1000 * s for s in seconds_per_call])
        row.notes = f"{share:.0f}% of relay wall time" + notes
        return row

    marks = sql["mark"]
    claims = sql["claim"][:-2] or sql["claim"]  # the last two found nothing: the drain is over
    tenth = max(1, len(claims) // 10)
    claim_trend = (
        f"; median first/last tenth {1000 * statistics.median(claims[:tenth]):.1f}"
        f"/{1000 * statistics.median(claims[-tenth:]):.1f} ms"
    )
    known = sum(sql["claim"]) + sum(timed.send_per_batch) + sum(timed.flush_per_batch) + sum(marks)
    rows = [
        Row(
            f"{name}: load pending rows (COPY)",
            n=count,
            wall_s=load_seconds,
            rate=count / load_seconds,
            notes=f"{args.arenas:,} arenas, mean envelope {envelope_bytes:.0f} B",
        ),
        Row(
            f"{name}: relay_pending, batch size {batch_size}",
            n=published,
            wall_s=seconds,
            rate=published / seconds,
            notes=f"p = per {per}; {check}",
            ok=records >= count and pending == 0 and published >= count,
            **percentiles([1000 * (b - a) for a, b in itertools.pairwise(sql["claim_started"])]),
        ),
        part("claim query", sql["claim"], claim_trend),
        part("producer send() calls", timed.send_per_batch),
        part("flush: wait for acks", timed.flush_per_batch),
        part("mark published + counter", marks),
        Row(
            "  · commit, session, Python (rest)",
            notes=f"{100 * (1 - known / seconds):.0f}% of relay wall time",
        ),
    ]
    return rows, failed_batches > 0 or not rows[1].ok


# --- phase 3: commit → Kafka latency ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Posted:
    """A command whose POST returned, so its transaction had committed."""

    correlation_id: str
    returned_mono: float
    returned_wall: float
    request_ms: float


@dataclass(frozen=True, slots=True)
class Arrival:
    received_mono: float
    received_wall: float
    created_wall: float  # the record's CreateTime: when the relay called producer.send()


class KafkaArrivals(threading.Thread):
    """Consumes the bench topic from its current end, noting when each event arrives."""

    def __init__(self, settings: Settings, deadline_seconds: float) -> None:
        super().__init__(name="kafka-arrivals", daemon=True)
        self.arrivals: dict[str, Arrival] = {}
        self._stopping = threading.Event()
        self._deadline = time.monotonic() + deadline_seconds
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.kafka_consumer_group,
            client_id="arena-bench-latency",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        topic = settings.kafka_events_topic
        partitions = self._consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"no partitions for {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)  # no group join to wait for
        self._consumer.seek_to_end()
        for tp in tps:
            self._consumer.position(tp)  # resolve "the end" now, before any command is sent

    def run(self) -> None:
        try:
            while not self._stopping.is_set() and time.monotonic() < self._deadline:
                batch = self._consumer.poll(timeout_ms=100)
                received_mono, received_wall = time.monotonic(), time.time()
                for record in itertools.chain.from_iterable(batch.values()):
                    headers = dict(record.headers or [])
                    correlation = headers.get("correlationId", b"").decode()
                    arrival = Arrival(received_mono, received_wall, record.timestamp / 1000)
                    self.arrivals.setdefault(correlation, arrival)
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


class CeleryEventReceiver(threading.Thread):
    """Receives Celery's own task events (the app turns them on) in a thread; `_on` sees each."""

    def __init__(self, flask_app: Flask, settings: Settings, worker_prefix: str) -> None:
        super().__init__(name="celery-events", daemon=True)
        self._celery = flask_app.extensions["celery"]
        self._queue = settings.celery_queue
        self._worker_prefix = worker_prefix
        self._receiver: Any = None
        self.ready = threading.Event()

    def run(self) -> None:
        with self._celery.connection_for_read() as connection:
            self._receiver = self._celery.events.Receiver(connection, handlers={"*": self._on})
            self.ready.set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self.join(timeout=10)


class CeleryTaskEvents(CeleryEventReceiver):
    """Our relay tasks' events: when each task was sent, started in a pool process, how long it
    ran and what it returned."""

    def __init__(self, flask_app: Flask, settings: Settings, worker_prefix: str) -> None:
        super().__init__(flask_app, settings, worker_prefix)
        self.tasks: dict[str, dict[str, Any]] = {}

    def _on(self, message: dict[str, Any]) -> None:
        kind, task_id = message.get("type", ""), message.get("uuid")
        if not kind.startswith("task-") or task_id is None:
            return
        if kind == "task-sent":  # by the API's nudge or by beat
            if message.get("name") != RELAY_TASK or message.get("queue") != self._queue:
                return
        elif not str(message.get("hostname", "")).startswith(self._worker_prefix):
            return  # another engineer's worker on the shared broker
        record = self.tasks.setdefault(task_id, {})
        record[kind] = message.get("timestamp")
        if kind == "task-succeeded":
            record["runtime"], record["result"] = message.get("runtime"), message.get("result")


@contextlib.contextmanager
def celery_processes(run: Run, settings: Settings, tag: str) -> Iterator[dict[str, Any]]:
    """A Celery worker (concurrency 2) and beat, started as `make worker` / `make beat` do."""
    environment = os.environ | settings.to_env() | {"FLASK_APP": "app.py"}
    celery = [str(BIN / "celery"), "-A", "tasks"]
    hostname = f"--hostname={run.worker_prefix}-{tag}@%h"
    schedule = f"--schedule={run.workdir / f'celerybeat-schedule-{tag}'}"
    commands = {
        "worker": [*celery, "worker", "--loglevel=INFO", "--concurrency=2", hostname],
        "beat": [*celery, "beat", "--loglevel=INFO", schedule],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            with (run.workdir / f"{name}-{tag}.log").open("wb") as output:
                processes[name] = subprocess.Popen(
                    command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
                )
        _wait_for_line(run.workdir / f"worker-{tag}.log", " ready.", processes["worker"])
        yield processes
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            wait_or_kill(name, process)


def wait_or_kill(name: str, process: subprocess.Popen[bytes]) -> None:
    """Give a process sent SIGTERM its grace period to finish what it holds, then SIGKILL it."""
    try:
        process.wait(timeout=PROCESS_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=PROCESS_STOP_SECONDS)
        click.echo(f"{name} did not stop within {PROCESS_STOP_SECONDS}s; killed", err=True)


def _wait_for_line(path: Path, needle: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PROCESS_READY_SECONDS
    while needle not in path.read_text(errors="replace"):
        if process.poll() is not None:
            tail = path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{path.stem} exited with {process.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path.stem} not ready after {PROCESS_READY_SECONDS}s ({path})")
        time.sleep(0.1)


def open_running_arenas(client: FlaskClient, tag: str, count: int) -> list[tuple[str, str]]:
    """Arenas (id, admin token) in RUNNING state, so the trickle can submit actions to them."""
    targets = []
    for index in range(count):
        body = {"name": f"Bench target {index}", "displayName": "Ada"}
        opened = client.post(
            "/api/v1/arenas", json=body, headers={"X-Correlation-ID": f"{tag}-o{index}"}
        )
        if opened.status_code != 201:
            raise RuntimeError(f"could not open an arena: {opened.get_data(as_text=True)}")
        arena_id, token = opened.get_json()["id"], opened.get_json()["player"]["token"]
        headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": f"{tag}-s{index}"}
        started = client.post(f"/api/v1/arenas/{arena_id}/start", headers=headers)
        if started.status_code != 200:
            raise RuntimeError(f"could not start an arena: {started.get_data(as_text=True)}")
        targets.append((arena_id, token))
    return targets


def send_command(
    client: FlaskClient, index: int, targets: list[tuple[str, str]], correlation_id: str
) -> int:
    """Alternate two common commands: open an arena; submit an action to a running one."""
    if index % 2 == 0:
        body = {"name": f"Bench dish {index}", "displayName": "Ada"}
        headers = {"X-Correlation-ID": correlation_id}
        return client.post("/api/v1/arenas", json=body, headers=headers).status_code
    arena_id, token = targets[(index // 2) % len(targets)]
    body = {
        "type": "SPAWN_ORGANISM",
        "payload": {"kind": "BACTERIA", "position": {"x": index % 64, "y": 7}},
    }
    headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": correlation_id}
    return client.post(f"/api/v1/arenas/{arena_id}/actions", json=body, headers=headers).status_code


def trickle(
    client: FlaskClient,
    targets: list[tuple[str, str]],
    count: int,
    rate: float,
    tag: str,
    deadline: float,
) -> tuple[list[Posted], int]:
    """Send `count` commands at `rate`/s; answers when each accepted one returned, and failures."""
    posted: list[Posted] = []
    failures = 0
    with click.progressbar(range(count), label=f"latency, {tag}") as bar:
        started = time.monotonic()
        for index in bar:
            if time.monotonic() > deadline:
                break
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            correlation_id = f"{tag}-{index}"
            sent = time.monotonic()
            status = send_command(client, index, targets, correlation_id)
            returned = time.monotonic()
            if status in (201, 202):
                request_ms = 1000 * (returned - sent)
                posted.append(Posted(correlation_id, returned, time.time(), request_ms))
            else:
                failures += 1
    return posted, failures


def wait_for_arrivals(
    arrivals: KafkaArrivals, wanted: set[str], processes: dict[str, subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + ARRIVAL_WAIT_SECONDS
    while not wanted <= arrivals.arrivals.keys() and time.monotonic() < deadline:
        dead = [name for name, process in processes.items() if process.poll() is not None]
        if dead:
            raise RuntimeError(f"{', '.join(dead)} exited during the latency round")
        time.sleep(0.05)


def latency_round(
    run: Run, args: argparse.Namespace, nudge: bool, apps: list[Flask]
) -> tuple[list[Row], bool]:
    """Drive commands through the API while a real worker and beat relay them; time each one
    from its POST's return to its arrival in Kafka. Answers the rows and whether any was lost."""
    tag = "nudge" if nudge else "beat"
    settings = dataclasses.replace(run.settings, outbox_nudge=nudge)  # API and worker alike
    app = make_app(settings)
    apps.append(app)
    client = app.test_client()
    deadline = time.monotonic() + args.phase_deadline
    wait_for(settings, "Kafka")
    arrivals = KafkaArrivals(settings, args.phase_deadline)
    task_events = CeleryTaskEvents(app, settings, run.worker_prefix)
    arrivals.start()
    task_events.start()
    task_events.ready.wait(timeout=10)
    try:
        with celery_processes(run, settings, tag) as processes:
            # Warm-up, not measured: producers, connections, pool processes and beat come up.
            targets = open_running_arenas(client, f"{tag}-warm", LATENCY_TARGETS)
            warm, _ = trickle(client, targets, args.warmup, args.rate, f"{tag}-warm", deadline)
            wait_for_arrivals(arrivals, {p.correlation_id for p in warm}, processes)
            window_start = time.time()
            posted, failures = trickle(client, targets, args.trickle, args.rate, tag, deadline)
            wait_for_arrivals(arrivals, {p.correlation_id for p in posted}, processes)
            window = (window_start, time.time())
    finally:
        arrivals.stop()
        task_events.stop()
    rows = latency_rows(settings, posted, failures, arrivals.arrivals, task_events.tasks, window)
    return rows, not rows[0].ok


def latency_rows(
    settings: Settings,
    posted: list[Posted],
    failures: int,
    arrivals: dict[str, Arrival],
    tasks: dict[str, dict[str, Any]],
    window: tuple[float, float],
) -> list[Row]:
    """The round's end-to-end figures, and the hops they split into."""
    matched = [(p, arrivals[p.correlation_id]) for p in posted if p.correlation_id in arrivals]
    relays = [t for t in tasks.values() if window[0] <= (t.get("task-sent") or 0) <= window[1]]
    pickup = [1000 * (t["task-started"] - t["task-sent"]) for t in relays if "task-started" in t]
    publishing = [
        1000 * t["runtime"] for t in relays if t.get("runtime") is not None and t["result"] != "0"
    ]
    empty = sum(1 for t in relays if t.get("result") == "0")
    mode = "nudge on" if settings.outbox_nudge else "nudge off"
    mode += f", beat every {settings.outbox_relay_interval_seconds:g} s"
    wall = posted[-1].returned_mono - posted[0].returned_mono if len(posted) > 1 else None
    check = f"{len(matched)}/{len(posted)} arrived"
    if failures:
        check += f", {failures} POSTs failed"
    return [
        Row(
            f"Commit → Kafka latency, {mode}",
            n=len(matched),
            wall_s=wall,
            rate=(len(posted) - 1) / wall if wall else None,
            notes=f"POST return → consumer receive; {check}",
            ok=len(matched) == len(posted) and failures == 0,
            **percentiles([1000 * (a.received_mono - p.returned_mono) for p, a in matched]),
        ),
        distribution(
            "  · POST return → relay send()",
            [1000 * (a.created_wall - p.returned_wall) for p, a in matched],
            "Celery pickup, claim (Kafka CreateTime, 1 ms steps)",
        ),
        distribution(
            "  · relay send() → consumer receive",
            [1000 * (a.received_wall - a.created_wall) for _, a in matched],
            "linger, acks=all, consumer fetch",
        ),
        distribution(
            "  · Celery task-sent → task-started",
            pickup,
            f"{len(relays)} relay tasks ran, {empty} found nothing",
        ),
        distribution(
            "  · relay task runtime (published > 0)",
            publishing,
            "claim + send + flush + mark + commit",
        ),
        distribution(
            "  · API request (commit + nudge)",
            [p.request_ms for p in posted],
            "Flask test client, in-process",
        ),
    ]


# --- main ---------------------------------------------------------------------------------------


def measured(
    what: str, run: Run, attempts: int, phase: Callable[[], tuple[list[Row], bool]]
) -> list[Row]:
    """Run a phase; if a Kafka outage disturbed it, wait for Kafka and measure it again."""
    for attempt in range(1, attempts + 1):
        try:
            rows, disturbed = phase()
        except (KafkaError, RuntimeError) as error:
            if attempt == attempts:
                raise
            click.echo(f"{what} failed ({error!r}); waiting for Kafka to measure again", err=True)
        else:
            if attempt > 1:
                rows[0].notes += f"; attempt {attempt} (Kafka outage before)"
            if not disturbed or attempt == attempts:
                return rows
            click.echo(f"{what} was disturbed (Kafka outage?); measuring it again", err=True)
        wait_for(run.settings, "Kafka")
    raise AssertionError("unreachable")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` cleans up


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base = Settings.from_env()
    require_loopback(base)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix=f"arena-bench-{run_id}-"))
    run = Run(run_id, base, bench_settings(base, run_id, args.relay_interval), workdir)
    # The app's INFO lines (one per relay batch) go to a file, not across the progress bars.
    logging.basicConfig(
        filename=workdir / "bench.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    click.echo(f"outbox relay benchmark, run {run_id} (logs in {workdir})")
    wait_for(base, "PostgreSQL", "Redis", "Kafka")
    started, load_at_start = time.monotonic(), os.getloadavg()
    rows: list[Row] = []
    apps: list[Flask] = []
    completed = False
    try:
        app = create_resources(run)
        apps.append(app)
        if not args.skip_throughput:
            batched = measured(
                "the batched run",
                run,
                args.attempts,
                lambda: relay_run(run, app, args, "Batched", args.events, args.batch_size),
            )
            single = measured(
                "the one-row run",
                run,
                args.attempts,
                lambda: relay_run(run, app, args, "One-row", args.single_events, 1),
            )
            speed_up = Row(
                f"Speed-up, batch size {args.batch_size} over 1",
                rate=batched[1].rate / single[1].rate,
                notes="the events/s column is the factor",
            )
            rows += [*batched, *single, speed_up]
        if not args.skip_latency:
            for nudge in (True, False):
                rows += measured(
                    f"the latency round (nudge {'on' if nudge else 'off'})",
                    run,
                    args.attempts,
                    lambda nudge=nudge: latency_round(run, args, nudge, apps),
                )
        completed = True
    finally:
        problems = drop_resources(run, apps)
        for problem in problems:
            click.echo(f"clean-up: {problem}", err=True)
        if completed and not args.keep_logs and not problems:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            click.echo(f"logs kept in {workdir}", err=True)
    elapsed = time.monotonic() - started
    title = f"Outbox relay benchmark, run {run_id}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    print_table(f"{title}, {elapsed:.0f} s", machine_lines(run, load_at_start), rows)
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
