"""The relay benchmark's throughput runs: a backlog of pending rows drained in this process by the
real `relay_pending`, once at the configured batch size and once one row at a time, with each
batch's time split into the claim, the producer's send() and flush(), and the marking."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any, ClassVar, cast

import click
import psycopg
from flask import Flask
from kafka import KafkaConsumer, TopicPartition

from arena.bootstrap import components
from arena.extensions import db
from arena.messaging.ports import Delivery, Publisher
from arena.outbox.relay import RelayPolicy, relay_pending
from arena.persistence.connections import pooled_connection
from arena.settings import Settings
from bench.backlog import load_outbox, pending_rows
from bench.table import Row, distribution
from harness.resources import Run, wait_for
from harness.stats import percentiles

log = logging.getLogger("bench.relay")


class TimedPublisher:
    """Wraps the real KafkaPublisher to time send() and flush() and to move the progress bar."""

    def __init__(self, inner: Publisher, on_flushed: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_flushed = on_flushed
        self._unflushed = 0
        self._send_seconds = 0.0
        self.send_per_batch: list[float] = []
        self.flush_per_batch: list[float] = []

    def publish(self, key: str, value: bytes, headers: dict[str, str]) -> Delivery:
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


def relay_run(
    run: Run, app: Flask, args: argparse.Namespace, name: str, count: int, batch_size: int
) -> tuple[list[Row], bool]:
    """Load `count` events, drain them with the real relay_pending, check Kafka and the outbox.

    Answers the rows and whether a Kafka outage disturbed the measurement.
    """
    settings = run.settings
    with psycopg.connect(run.dsn, autocommit=True) as connection:
        # An earlier, disturbed attempt may have left rows behind (pending, or held with
        # their arenas): each attempt starts from an outbox with nothing pending.
        connection.execute("DELETE FROM outbox WHERE published_at IS NULL")
        connection.execute("DELETE FROM outbox_held")
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
        # The relay's connection as far as it can tell: execute() timed, the rest passed through.
        relay_connection = cast(psycopg.Connection[Any], timed_sql)
        # Long-lived, as in a worker process: producer start-up is not part of the relay's cost.
        publishers = components(app).publishers
        producer = publishers.events()
        timed = TimedPublisher(producer, bar.update)
        started = time.perf_counter()
        deadline = started + args.phase_deadline
        while time.perf_counter() < deadline:
            result = relay_pending(relay_connection, lambda: timed, policy)
            published += result.published
            if result.error is not None:  # Kafka went away: this attempt's figures are spoilt
                failed_batches += 1
                log.warning("relay batch failed, abandoning this attempt: %s", result.error)
                publishers.discard(settings.kafka_events_topic)
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
        Row.timed(
            f"{name}: load pending rows (COPY)",
            count,
            load_seconds,
            notes=f"{args.arenas:,} arenas, mean envelope {envelope_bytes:.0f} B",
        ),
        Row.timed(
            f"{name}: relay_pending, batch size {batch_size}",
            published,
            seconds,
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
