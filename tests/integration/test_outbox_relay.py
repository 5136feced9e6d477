"""The outbox relay publishes committed events to the real Kafka topic, keyed by arena id: with
many relays at once, with rows committed out of id order, and with the operator's view of it."""

from __future__ import annotations

import dataclasses
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

from arena.extensions import db
from arena.messaging.kafka import KafkaPublisher
from arena.messaging.ports import Delivery
from arena.outbox.operations import prune_published
from arena.outbox.relay import RelayPolicy, RelayRun, relay_pending
from arena.persistence.connections import pooled_connection
from arena.settings import Settings
from harness.services import libpq_dsn
from harness.waiting import wait_until
from tests.support.outbox import (
    TopicReader,
    by_arena,
    consecutive,
    drain,
    hold_arena,
    insert_events,
    interleaved,
    new_arenas,
    outbox_rows,
    pending_count,
    relay,
    versions,
)

pytestmark = pytest.mark.integration


def test_relay_publishes_pending_rows_and_marks_them_published(
    app: Flask,
    client: FlaskClient,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
) -> None:
    reader = TopicReader(settings)
    arena_ids = [
        client.post("/api/v1/arenas", json={"name": f"Relay {n}", "displayName": "Ada"}).get_json()[
            "id"
        ]
        for n in range(3)
    ]

    assert relay(app, publisher, policy).published >= 3
    assert relay(app, publisher, policy).published == 0
    assert pending_count(sql, arena_ids) == 0

    records = by_arena(reader.read_to_end(arena_ids))
    for arena_id in arena_ids:
        (record,) = records[arena_id]
        (stored,) = sql.execute(
            "SELECT envelope FROM outbox WHERE aggregate_id = %s", (arena_id,)
        ).fetchone()
        assert record.value == stored
        assert record.headers == {
            "eventType": "ArenaCreated",
            "eventId": stored["eventId"],
            "schemaVersion": "1",
            "correlationId": stored["correlationId"],
        }


# --- many relays at once -----------------------------------------------------------------------

RELAYS = 4
ARENAS = 200
VERSIONS = 10


class _MeetingPublisher:
    """A relay's own producer (one per worker process in production) whose first batch waits,
    claimed and sent but not yet settled, until every relay holds a batch like it.

    A claim keeps its rows locked until the batch settles, so the meeting happens only if no
    relay's claim waits for another's: were claims serialised, the barrier would break.
    """

    def __init__(self, inner: KafkaPublisher, first_batches_meet: threading.Barrier):
        self._inner = inner
        self._first_batches_meet: threading.Barrier | None = first_batches_meet

    def publish(self, key: str, value: bytes, headers: dict[str, str]) -> Delivery:
        return self._inner.publish(key, value, headers)

    def flush(self) -> None:
        self._inner.flush()
        if self._first_batches_meet is not None:
            self._first_batches_meet.wait(timeout=30)
            self._first_batches_meet = None


def test_concurrent_relays_publish_every_event_once_and_each_arena_in_version_order(
    app: Flask, sql: psycopg.Connection, settings: Settings, kafka_topics: None
) -> None:
    arena_ids = new_arenas(ARENAS)
    reader = TopicReader(settings)
    inserted = insert_events(sql, consecutive(arena_ids, VERSIONS))
    assert len(inserted) == ARENAS * VERSIONS
    policy = dataclasses.replace(RelayPolicy.from_settings(settings), batch_size=25)
    start_together = threading.Barrier(RELAYS)
    first_batches_meet = threading.Barrier(RELAYS)

    def run_relay(relay_no: int) -> int:
        """Relay runs, as beat and nudges would start them, until all our rows are published."""
        producer = KafkaPublisher(settings, settings.kafka_events_topic)
        publisher = _MeetingPublisher(producer, first_batches_meet)
        published = 0
        with (
            psycopg.connect(libpq_dsn(settings), autocommit=True) as own_sql,
            app.app_context(),
            pooled_connection(db.engine) as connection,
        ):

            def all_published() -> bool:
                nonlocal published
                run = relay_pending(connection, lambda: publisher, policy)
                assert run.error is None, run.error
                published += run.published
                return pending_count(own_sql, arena_ids) == 0

            start_together.wait(timeout=30)
            try:
                wait_until(
                    all_published,
                    deadline_seconds=60,
                    interval=0.01,
                    what=f"relay {relay_no} to see every row published",
                )
            finally:
                producer.close()
        return published

    with ThreadPoolExecutor(max_workers=RELAYS) as pool:
        counts = list(pool.map(run_relay, range(RELAYS)))

    assert sum(counts) >= ARENAS * VERSIONS
    assert all(count > 0 for count in counts), f"some relay published nothing: {counts}"
    # The relay swallows a flush's error (each send's confirm reports it), so look at the barrier.
    assert not first_batches_meet.broken, "a relay's claim waited for another's"
    assert pending_count(sql, arena_ids) == 0

    records = reader.read_to_end(arena_ids)
    event_ids = [record.event_id for record in records]
    assert len(event_ids) == len(set(event_ids)), "an event was published twice"
    assert set(event_ids) == {row.event_id for row in inserted}
    assert versions(by_arena(records)) == {
        arena_id: list(range(1, VERSIONS + 1)) for arena_id in arena_ids
    }


# --- rows committed out of id order ------------------------------------------------------------


def test_a_row_committed_after_later_ids_is_published_by_a_later_run(
    app: Flask,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
) -> None:
    late_arena, *other_arenas = new_arenas(4)
    reader = TopicReader(settings)
    with psycopg.connect(libpq_dsn(settings)) as long_transaction:
        # Takes the earlier id, but commits only after later rows were committed and relayed.
        (late,) = insert_events(long_transaction, [(late_arena, 1)])
        others = insert_events(sql, interleaved(other_arenas, 3))
        assert all(row.id > late.id for row in others)

        drain(app, sql, publisher, policy)
        assert all(row.published for row in outbox_rows(sql, other_arenas))
        assert outbox_rows(sql, [late_arena]) == [], "an uncommitted row is visible"

        long_transaction.commit()

    (row,) = outbox_rows(sql, [late_arena])
    assert row.id == late.id and not row.published
    assert relay(app, publisher, policy).published >= 1
    assert pending_count(sql, [late_arena]) == 0

    records = by_arena(reader.read_to_end([late_arena, *other_arenas]))
    assert versions(records) == {late_arena: [1]} | {arena: [1, 2, 3] for arena in other_arenas}
    assert records[late_arena][0].event_id == late.event_id


# --- the operator's view -----------------------------------------------------------------------

STATUS_LINES = {
    "backlog": r"pending rows \(backlog\)\s+(\d+)",
    "oldest_pending_age_seconds": r"oldest pending age\s+([\d.]+) s",
    "held": r"held rows\s+(\d+)",
    "held_arenas": r"arenas held\s+(\d+)",
    "published_last_minute": r"published in the last minute\s+(\d+)",
    "published_total": r"published in total\s+(\d+)",
}

_DATABASE_FIGURES = """
SELECT
    (SELECT count(*) FROM outbox WHERE published_at IS NULL),
    (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float
       FROM outbox WHERE published_at IS NULL),
    (SELECT count(*) FROM outbox_held),
    (SELECT count(DISTINCT aggregate_id) FROM outbox_held),
    (SELECT count(*) FROM outbox WHERE published_at > now() - interval '1 minute'),
    (SELECT value FROM outbox_counters WHERE name = 'published'),
    (SELECT count(*) FROM outbox WHERE published_at IS NOT NULL)
"""


def _database_figures(sql: psycopg.Connection) -> dict[str, float]:
    row = sql.execute(_DATABASE_FIGURES).fetchone()
    assert row is not None
    names = [*STATUS_LINES, "published_rows"]
    return dict(zip(names, row, strict=True))


def _status_from_cli(app: Flask) -> dict[str, float]:
    result = app.test_cli_runner().invoke(args=["outbox", "status"])
    assert result.exit_code == 0, result.output
    figures = {}
    for name, pattern in STATUS_LINES.items():
        match = re.search(pattern, result.output)
        assert match, f"no {name} in:\n{result.output}"
        figures[name] = float(match.group(1))
    return figures


def _assert_reports_match_database(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> dict[str, float]:
    """`flask outbox status` and GET /api/v1/pipeline agree with the database, read just before
    and just after them (nothing publishes meanwhile; only time moves on)."""
    before = _database_figures(sql)
    cli = _status_from_cli(app)
    response = client.get("/api/v1/pipeline")
    after = _database_figures(sql)
    assert response.status_code == 200
    api = response.get_json()["outbox"]
    assert set(api) == set(STATUS_LINES)
    for report in (cli, api):
        for name in ("backlog", "held", "held_arenas", "published_total"):
            assert report[name] == before[name] == after[name], name
        # The one-minute window only loses rows as time passes.
        assert after["published_last_minute"] <= report["published_last_minute"]
        assert report["published_last_minute"] <= before["published_last_minute"]
        age = report["oldest_pending_age_seconds"]
        assert before["oldest_pending_age_seconds"] - 0.1 <= age
        assert age <= after["oldest_pending_age_seconds"] + 0.1
    return after


def test_status_and_pipeline_report_backlog_age_held_rows_and_totals_as_in_the_database(
    app: Flask,
    client: FlaskClient,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
) -> None:
    waiting, held_behind, held_alone = new_arenas(3)
    drain(app, sql, publisher, policy)
    insert_events(sql, interleaved([waiting], 4))
    sql.execute(
        "UPDATE outbox SET created_at = now() - interval '10 minutes' WHERE aggregate_id = %s",
        (waiting,),
    )
    # A held row (as the relay writes one) and a later row of its arena waiting behind it.
    insert_events(sql, [(held_behind, 1)])
    hold_arena(sql, held_behind)
    insert_events(sql, [(held_behind, 2), (held_alone, 1)])
    hold_arena(sql, held_alone)
    try:
        first = _assert_reports_match_database(app, client, sql)
        assert first["backlog"] >= 5  # our four waiting rows and the held one
        assert first["oldest_pending_age_seconds"] >= 600
        assert first["held"] >= 2 and first["held_arenas"] >= 2

        assert relay(app, publisher, policy).published == 4  # the held row stays
        second = _assert_reports_match_database(app, client, sql)
        assert second["backlog"] == first["backlog"] - 4
        assert second["published_total"] == first["published_total"] + 4
        assert second["published_rows"] == first["published_rows"] + 4
        assert second["published_last_minute"] >= 4
        assert second["oldest_pending_age_seconds"] < 600
        # The counter counts every publication, also of rows retention has since deleted.
        assert second["published_total"] >= second["published_rows"]
    finally:
        sql.execute(
            "DELETE FROM outbox_held WHERE aggregate_id = ANY(%s::uuid[])",
            ([held_behind, held_alone],),
        )
        sql.execute("DELETE FROM outbox WHERE aggregate_id = %s", (held_behind,))


# --- retention ---------------------------------------------------------------------------------

RETENTION_SECONDS = 3600
PRUNE_BATCH = 1000


def test_retention_prunes_only_published_rows_past_the_period_in_batches(
    app: Flask, sql: psycopg.Connection
) -> None:
    old_arenas = new_arenas(250)
    recent, waiting = new_arenas(2)
    old = insert_events(sql, interleaved(old_arenas, 10))
    insert_events(sql, interleaved([recent, waiting], 3))
    sql.execute(
        "UPDATE outbox SET published_at = now() - interval '2 hours'"
        " WHERE aggregate_id = ANY(%s::uuid[])",
        (old_arenas,),
    )
    sql.execute(
        "UPDATE outbox SET published_at = now() - interval '50 minutes' WHERE aggregate_id = %s",
        (recent,),
    )
    sql.execute(  # waiting for long, yet not published: never pruned
        "UPDATE outbox SET created_at = now() - interval '3 hours' WHERE aggregate_id = %s",
        (waiting,),
    )
    (stale,) = sql.execute(
        "SELECT count(*) FROM outbox WHERE published_at < now() - make_interval(secs => %s)",
        (RETENTION_SECONDS,),
    ).fetchone()
    assert stale >= len(old) == 2500
    (counter_before,) = sql.execute(
        "SELECT value FROM outbox_counters WHERE name = 'published'"
    ).fetchone()

    deletes: list[int] = []
    commits: list[int] = []

    def on_execute(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("DELETE FROM outbox"):
            deletes.append(cursor.rowcount)

    def on_commit(conn: Any) -> None:
        commits.append(len(deletes))

    with app.app_context():
        engine = db.engine
        event.listen(engine, "after_cursor_execute", on_execute)
        event.listen(engine, "commit", on_commit)
        try:
            pruned = prune_published(
                db.session, older_than_seconds=RETENTION_SECONDS, batch_size=PRUNE_BATCH
            )
        finally:
            event.remove(engine, "after_cursor_execute", on_execute)
            event.remove(engine, "commit", on_commit)

    assert pruned == stale
    # Batches of at most PRUNE_BATCH rows, each in its own transaction, until one comes up short.
    assert sum(deletes) == pruned
    assert all(count == PRUNE_BATCH for count in deletes[:-1]) and deletes[-1] < PRUNE_BATCH
    assert len(deletes) == pruned // PRUNE_BATCH + 1
    assert commits == list(range(1, len(deletes) + 1))

    assert outbox_rows(sql, old_arenas) == []
    kept = outbox_rows(sql, [recent, waiting])
    assert [(row.arena_id, row.version, row.published) for row in kept] == [
        (arena_id, version, arena_id == recent)
        for version in (1, 2, 3)
        for arena_id in (recent, waiting)
    ]
    (counter_after,) = sql.execute(
        "SELECT value FROM outbox_counters WHERE name = 'published'"
    ).fetchone()
    assert counter_after == counter_before, "pruning must not change the published total"


def test_a_run_claims_again_only_after_a_full_batch_and_counts_what_it_marked(
    app: Flask,
    sql: psycopg.Connection,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
) -> None:
    arena_ids = new_arenas(5)
    insert_events(sql, [(arena_id, 1) for arena_id in arena_ids])
    (counter_before,) = sql.execute(
        "SELECT value FROM outbox_counters WHERE name = 'published'"
    ).fetchone()
    claims: list[int] = []

    class CountingClaims:
        """The relay's connection, noting how many rows each claim returned."""

        def __init__(self, connection: psycopg.Connection) -> None:
            self._connection = connection

        def execute(self, statement: str, params: Any = None) -> psycopg.Cursor:
            cursor = self._connection.execute(statement, params)
            if statement.lstrip().startswith("WITH claimed"):
                claims.append(cursor.rowcount)
            return cursor

        def __getattr__(self, name: str) -> Any:
            return getattr(self._connection, name)

    def relay_counting(policy: RelayPolicy) -> RelayRun:
        with app.app_context(), pooled_connection(db.engine) as connection:
            return relay_pending(CountingClaims(connection), lambda: publisher, policy)  # type: ignore[arg-type]

    first = relay_counting(dataclasses.replace(policy, batch_size=2))
    first_claims, claims[:] = list(claims), []
    insert_events(sql, [(arena_ids[0], 2)])
    second = relay_counting(policy)

    # Batches of 2 over (at least) these 5 rows: full ones, then one short one (empty only if
    # the rows ran out on a batch boundary); a short claim is never followed by another.
    assert first.published >= 5 and second.published >= 1
    assert first_claims[:-1] == [2] * (len(first_claims) - 1) and first_claims[-1] < 2
    assert len(claims) == 1 and claims[0] >= 1
    assert pending_count(sql, arena_ids) == 0
    (counter_after,) = sql.execute(
        "SELECT value FROM outbox_counters WHERE name = 'published'"
    ).fetchone()
    assert counter_after - counter_before == first.published + second.published
