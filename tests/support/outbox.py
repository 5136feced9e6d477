"""Helpers for outbox-relay tests: write outbox rows as the unit of work does, run relays, read
back what reached the events topic, and run the real `flask` CLI.

All tests of a run share one database and one topic, and any relay publishes every due row, so
helpers look at rows and records of given arenas only, and a topic reader only sees what was
published after it was made.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Flask
from kafka import KafkaConsumer, TopicPartition
from psycopg.types.json import Jsonb

from arena.domain.envelope import EventEnvelope
from arena.extensions import db
from arena.outbox.relay import Publisher, RelayPolicy, RelayRun, relay_batch, relay_pending
from arena.persistence.connections import pooled_connection
from arena.settings import Settings
from harness.processes import pipeline_env, run_flask
from harness.waiting import wait_until

PROBE_EVENT = "OutboxProbe"


def new_arenas(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


# --- outbox rows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    event_id: str
    arena_id: str
    version: int


def interleaved(arena_ids: Iterable[str], versions: int) -> list[tuple[str, int]]:
    """Every arena's version 1, then every arena's version 2, ...: as commands on many arenas
    arrive, so one arena's events are spread over many relay batches."""
    arenas = list(arena_ids)
    return [(arena_id, version) for version in range(1, versions + 1) for arena_id in arenas]


def consecutive(arena_ids: Iterable[str], versions: int) -> list[tuple[str, int]]:
    """Each arena's versions 1..N one after the other: batches of a size that does not divide N
    cut arenas in two, so one arena's events are claimed by two relays at about the same time."""
    return [(arena_id, version) for arena_id in arena_ids for version in range(1, versions + 1)]


def envelope(arena_id: str, version: int, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    correlation = str(uuid.uuid4())
    return EventEnvelope(
        event_type=PROBE_EVENT,
        aggregate_id=arena_id,
        aggregate_version=version,
        occurred_at=datetime.now(UTC).isoformat(),
        payload=payload or {"probe": version},
        correlation_id=correlation,
        causation_id=correlation,
    ).to_dict()


def insert_events(
    connection: psycopg.Connection,
    plan: Iterable[tuple[str, int]],
    payload: dict[str, Any] | None = None,
) -> list[OutboxEvent]:
    """Insert outbox rows shaped as `SqlUnitOfWork.commit` writes them, in the plan's order
    (so their ids follow it). On a connection in a transaction, the rows wait for its commit."""
    envelopes = [envelope(arena_id, version, payload) for arena_id, version in plan]
    columns = "event_id, event_type, aggregate_id, aggregate_version, envelope"
    with connection.cursor() as cursor:
        with cursor.copy(f"COPY outbox ({columns}) FROM STDIN") as copy:
            for wrapped in envelopes:
                copy.write_row(
                    (
                        wrapped["eventId"],
                        wrapped["eventType"],
                        wrapped["aggregateId"],
                        wrapped["aggregateVersion"],
                        Jsonb(wrapped),
                    )
                )
        rows = cursor.execute(
            "SELECT id, event_id::text, aggregate_id::text, aggregate_version FROM outbox"
            " WHERE event_id = ANY(%s::uuid[]) ORDER BY id",
            ([wrapped["eventId"] for wrapped in envelopes],),
        ).fetchall()
    return [OutboxEvent(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class OutboxState:
    id: int
    event_id: str
    arena_id: str
    version: int
    published: bool
    attempts: int
    last_error: str | None
    due: bool


def outbox_rows(sql: psycopg.Connection, arena_ids: Collection[str]) -> list[OutboxState]:
    rows = sql.execute(
        "SELECT id, event_id::text, aggregate_id::text, aggregate_version,"
        " published_at IS NOT NULL, attempts, last_error, next_attempt_at <= now()"
        " FROM outbox WHERE aggregate_id = ANY(%s::uuid[]) ORDER BY id",
        (list(arena_ids),),
    ).fetchall()
    return [OutboxState(*row) for row in rows]


def pending_count(sql: psycopg.Connection, arena_ids: Collection[str]) -> int:
    (count,) = sql.execute(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY(%s::uuid[]) AND published_at IS NULL",
        (list(arena_ids),),
    ).fetchone()
    return count


@dataclass(frozen=True, slots=True)
class HeldRow:
    id: int
    event_id: str
    arena_id: str
    version: int
    attempts: int
    last_error: str | None


def held_rows(sql: psycopg.Connection, arena_ids: Collection[str]) -> list[HeldRow]:
    rows = sql.execute(
        "SELECT id, event_id::text, aggregate_id::text, aggregate_version, attempts, last_error"
        " FROM outbox_held WHERE aggregate_id = ANY(%s::uuid[]) ORDER BY id",
        (list(arena_ids),),
    ).fetchall()
    return [HeldRow(*row) for row in rows]


def hold_arena(
    sql: psycopg.Connection,
    arena_id: str,
    *,
    attempts: int = 3,
    last_error: str = "KafkaTimeoutError: test",
) -> None:
    """Move every outbox row of the arena to the held rows, as the relay does with a row whose
    attempts ran out."""
    sql.execute(
        "WITH held AS (DELETE FROM outbox WHERE aggregate_id = %s RETURNING *)"
        " INSERT INTO outbox_held (id, event_id, event_type, aggregate_id,"
        " aggregate_version, envelope, created_at, attempts, last_error)"
        " SELECT id, event_id, event_type, aggregate_id, aggregate_version, envelope, created_at,"
        " %s, %s FROM held",
        (arena_id, attempts, last_error),
    )


def forget_unpublished(sql: psycopg.Connection, arena_ids: Collection[str]) -> None:
    """Remove these arenas' pending and held rows, so no later relay meets them."""
    ids = list(arena_ids)
    sql.execute(
        "DELETE FROM outbox WHERE aggregate_id = ANY(%s::uuid[]) AND published_at IS NULL", (ids,)
    )
    sql.execute("DELETE FROM outbox_held WHERE aggregate_id = ANY(%s::uuid[])", (ids,))


def publishable_backlog(sql: psycopg.Connection) -> int:
    """Pending rows anywhere in the database whose arena is not held."""
    (count,) = sql.execute(
        "SELECT count(*) FROM outbox o WHERE o.published_at IS NULL AND NOT EXISTS"
        " (SELECT 1 FROM outbox_held h WHERE h.aggregate_id = o.aggregate_id)"
    ).fetchone()
    return count


# --- relays in this process --------------------------------------------------------------------


def relay(app: Flask, publisher: Publisher, policy: RelayPolicy) -> RelayRun:
    """One `relay_pending` run, as the Celery task does it, in an application context."""
    with app.app_context(), pooled_connection(db.engine) as connection:
        return relay_pending(connection, lambda: publisher, policy)


def relay_one_batch(app: Flask, publisher: Publisher, policy: RelayPolicy) -> RelayRun:
    with app.app_context(), pooled_connection(db.engine) as connection:
        return relay_batch(connection, lambda: publisher, policy)


def drain(
    app: Flask,
    sql: psycopg.Connection,
    publisher: Publisher,
    policy: RelayPolicy,
    *,
    deadline_seconds: float = 45,
) -> None:
    """Relay until no publishable row is pending anywhere (rows of other tests included)."""

    def drained() -> bool:
        relay(app, publisher, policy)
        return publishable_backlog(sql) == 0

    wait_until(drained, deadline_seconds=deadline_seconds, interval=0.1, what="the relay to drain")


# --- the events topic --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    key: str
    partition: int
    offset: int
    value: dict[str, Any]
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        return self.value["eventId"]

    @property
    def version(self) -> int:
        return self.value["aggregateVersion"]


def _record(raw: Any) -> Record:
    return Record(
        key=raw.key.decode(),
        partition=raw.partition,
        offset=raw.offset,
        value=json.loads(raw.value),
        headers={name: value.decode() for name, value in raw.headers},
    )


class TopicReader:
    """Reads the events topic from where it ended when the reader was made.

    It keeps only those start offsets: every read uses a fresh consumer, so a reader made before
    the broker goes away still works once it is back.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        consumer = self._consumer()
        try:
            partitions = [
                TopicPartition(settings.kafka_events_topic, partition)
                for partition in sorted(consumer.partitions_for_topic(settings.kafka_events_topic))
            ]
            assert partitions, f"topic {settings.kafka_events_topic} has no partitions"
            self._start: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        finally:
            consumer.close()

    def _consumer(self) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="outbox-test-reader",
        )

    def _assigned(self) -> KafkaConsumer:
        consumer = self._consumer()
        consumer.assign(list(self._start))
        for partition, offset in self._start.items():
            consumer.seek(partition, offset)
        return consumer

    def read_to_end(
        self, keys: Collection[str] | None = None, *, deadline_seconds: float = 60
    ) -> list[Record]:
        """Every record published since the reader was made (with one of `keys`, if given), up
        to the topic's current end, in partition order."""
        consumer = self._assigned()
        records: list[Record] = []
        try:
            end = consumer.end_offsets(list(self._start))

            def caught_up() -> bool:
                for batch in consumer.poll(timeout_ms=200, max_records=10_000).values():
                    records.extend(_record(raw) for raw in batch)
                return all(consumer.position(partition) >= end[partition] for partition in end)

            wait_until(
                caught_up, deadline_seconds=deadline_seconds, interval=0, what="the topic's end"
            )
        finally:
            consumer.close()
        wanted = None if keys is None else set(keys)
        return [record for record in records if wanted is None or record.key in wanted]

    def wait_for_any(
        self,
        keys: Collection[str],
        *,
        deadline_seconds: float,
        still_worth_waiting: Callable[[], None] = lambda: None,
    ) -> list[Record]:
        """Poll until a record with one of `keys` shows up; answer the ones seen by then.
        `still_worth_waiting` is called between polls and may raise to give up early."""
        wanted = set(keys)
        consumer = self._assigned()
        seen: list[Record] = []
        try:

            def arrived() -> bool:
                still_worth_waiting()
                for batch in consumer.poll(timeout_ms=50).values():
                    seen.extend(record for raw in batch if (record := _record(raw)).key in wanted)
                return bool(seen)

            wait_until(
                arrived, deadline_seconds=deadline_seconds, interval=0, what="the first records"
            )
        finally:
            consumer.close()
        return seen


def by_arena(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Records grouped by key, each group in topic order (one key lives in one partition)."""
    grouped: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda record: (record.partition, record.offset)):
        grouped.setdefault(record.key, []).append(record)
    return grouped


def first_deliveries(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Per arena, each event's first copy only: what a consumer ignoring repeats applies."""
    firsts: dict[str, list[Record]] = {}
    for key, group in by_arena(records).items():
        seen: set[str] = set()
        firsts[key] = []
        for record in group:
            if record.event_id not in seen:
                seen.add(record.event_id)
                firsts[key].append(record)
    return firsts


def versions(records_by_arena: dict[str, list[Record]]) -> dict[str, list[int]]:
    return {key: [record.version for record in group] for key, group in records_by_arena.items()}


# --- the real CLI ------------------------------------------------------------------------------


def flask_cli(
    settings: Settings, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `flask <args>` as an operator would, in a process configured with `settings`."""
    return run_flask(pipeline_env(settings), *args, timeout=timeout)
