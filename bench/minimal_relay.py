"""The yardstick for the relay drain: a minimal outbox relay on psycopg and kafka-python alone.

It claims rows in id order, `FOR UPDATE SKIP LOCKED`, sends each stored envelope keyed by its
arena with the same producer settings as the project's publisher (acks=all, idempotent, lz4,
1 MiB batches, the C CRC-32C), flushes, marks the rows published and commits. It has none of the
project's guarantees beyond that (no per-arena hold-back across relays, no retries, backoff or
held rows, no counters), so it is the floor a relay on these libraries can reach, and the
tree's relay is judged as a share of it, measured minutes apart on the same services.

Its rows live in a table of their own (a copy of the rows the tree's relay just published, as
pending) and go to a topic of their own, so the tree's processes never see them.
"""

from __future__ import annotations

import contextlib
import time

import click
import psycopg
from kafka import KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from arena.messaging.kafka import THROUGHPUT_PRODUCER_OPTIONS, admin_client
from bench.table import Row
from harness.resources import Run

BATCH_SIZE = 2000
TOPIC_SUFFIX = ".minimal-relay"  # after the run's events topic; drop_resources deletes it
_COPY = """
CREATE TABLE minimal_outbox AS
SELECT id, aggregate_id::text AS aggregate_id, envelope, NULL::timestamptz AS published_at
  FROM outbox ORDER BY id DESC LIMIT %s
"""
_INDEX = "CREATE INDEX ON minimal_outbox (id) WHERE published_at IS NULL"
_CLAIM = """
SELECT id, aggregate_id, envelope::text FROM minimal_outbox
 WHERE published_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_MARK = "UPDATE minimal_outbox SET published_at = now() WHERE id = ANY(%s)"


def minimal_topic(run: Run) -> str:
    return run.settings.kafka_events_topic + TOPIC_SUFFIX


def minimal_relay_drain(run: Run, count: int) -> Row:
    """Copy `count` published rows as pending and drain them; the row (rate and client CPU)."""
    topic = minimal_topic(run)
    admin = admin_client(run.settings, "arena-bench-minimal-relay")
    try:
        partitions = run.settings.kafka_events_partitions
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    with psycopg.connect(run.dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS minimal_outbox")
        connection.execute(_COPY, (count,))
        connection.execute(_INDEX)
        connection.execute("ANALYZE minimal_outbox")
    producer = KafkaProducer(
        bootstrap_servers=run.settings.kafka_bootstrap_servers,
        client_id="arena-bench-minimal-relay",
        **THROUGHPUT_PRODUCER_OPTIONS,
    )
    published = 0
    try:
        producer.partitions_for(topic)  # metadata before the clock starts, as a worker has it
        cpu, wall = time.process_time(), time.monotonic()
        with (
            psycopg.connect(run.dsn) as connection,
            click.progressbar(length=count, label="minimal relay: publish") as bar,
        ):
            while rows := connection.execute(_CLAIM, (BATCH_SIZE,)).fetchall():
                for _, key, envelope in rows:
                    producer.send(topic, key=key.encode(), value=envelope.encode())
                producer.flush()
                connection.execute(_MARK, ([row[0] for row in rows],))
                connection.commit()
                published += len(rows)
                bar.update(len(rows))
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        producer.close()
    return Row.timed(
        "Relay drain, minimal psycopg + kafka-python relay (yardstick)",
        published,
        wall,
        notes=(
            f"in the bench process, claims of {BATCH_SIZE:,}, the same producer settings, its "
            f"own table and topic; bench process CPU (all its threads) "
            f"{1e6 * cpu / max(published, 1):.0f} µs/event"
        ),
        ok=published == count,
    )
