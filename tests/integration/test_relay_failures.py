"""The outbox relay when things go wrong, on the real services: rows that keep failing are
held with their arena until an operator releases them, a relay killed mid-batch
loses nothing, and a Kafka outage delays events without losing or reordering any."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.messaging.kafka import MAX_EVENT_BYTES, KafkaPublisher, kafka_reachable
from arena.outbox.relay import RelayPolicy
from arena.settings import Settings
from harness.processes import ROOT, Supervisor, pipeline_env
from harness.waiting import wait_until
from tests.support.outbox import (
    PROBE_EVENT,
    TopicReader,
    by_arena,
    drain,
    first_deliveries,
    flask_cli,
    forget_unpublished,
    held_rows,
    insert_events,
    interleaved,
    new_arenas,
    outbox_rows,
    pending_count,
    relay,
    relay_one_batch,
    versions,
)

pytestmark = pytest.mark.integration

# Fails fast: two attempts, then the row is held.
FRAGILE = RelayPolicy(
    batch_size=500, max_attempts=2, backoff_base_seconds=0.05, backoff_max_seconds=0.1
)


# --- held rows --------------------------------------------------------------------------------


@pytest.fixture
def publisher_to_missing_topic(settings: Settings, kafka_topics: None) -> Iterator[KafkaPublisher]:
    """A relay producer configured with a topic the broker does not have (it creates none by
    itself): every send really fails, after the broker's metadata never names the topic."""
    missing = KafkaPublisher(settings, f"{settings.kafka_events_topic}.missing-{uuid.uuid4().hex}")
    yield missing
    missing.close()


def test_a_row_failing_max_attempts_is_held_with_its_arena_until_released(
    app: Flask,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
    publisher_to_missing_topic: KafkaPublisher,
) -> None:
    failing, flowing = new_arenas(2)
    drain(app, sql, publisher, policy)  # the failing relay below must meet no one else's rows
    try:
        (first,) = insert_events(sql, [(failing, 1)])

        run = relay_one_batch(app, publisher_to_missing_topic, FRAGILE)
        assert (run.published, run.failed, run.held) == (0, 1, 0)
        (row,) = outbox_rows(sql, [failing])
        assert not row.published and row.attempts == 1
        assert row.last_error is not None and "KafkaTimeoutError" in row.last_error

        wait_until(
            lambda: outbox_rows(sql, [failing])[0].due, deadline_seconds=30, what="the back-off"
        )
        run = relay_one_batch(app, publisher_to_missing_topic, FRAGILE)
        assert (run.published, run.failed, run.held) == (0, 1, 1)
        assert outbox_rows(sql, [failing]) == []
        (held_row,) = held_rows(sql, [failing])
        assert (held_row.id, held_row.event_id, held_row.version, held_row.attempts) == (
            first.id,
            first.event_id,
            1,
            2,
        )
        assert held_row.last_error is not None and "KafkaTimeoutError" in held_row.last_error

        listed = flask_cli(settings, "outbox", "held", "--arena", failing)
        assert listed.returncode == 0, listed.stderr
        assert f"#{first.id} arena {failing} v1 {PROBE_EVENT}: 2 attempts" in listed.stdout
        assert "1 held row(s)" in listed.stdout

        # Later commands on the held arena and on another one; a healthy relay runs.
        reader = TopicReader(settings)
        later = insert_events(sql, [(failing, 2), (flowing, 1), (failing, 3), (flowing, 2)])
        drain(app, sql, publisher, policy)
        assert [
            (row.version, row.published, row.attempts) for row in outbox_rows(sql, [failing])
        ] == [
            (2, False, 0),
            (3, False, 0),
        ], "the held arena's later rows were touched"
        assert pending_count(sql, [flowing]) == 0
        assert versions(by_arena(reader.read_to_end([failing, flowing]))) == {flowing: [1, 2]}

        released = flask_cli(settings, "outbox", "release", "--arena", failing)
        assert released.returncode == 0, released.stderr
        assert "released 1 held row(s)" in released.stdout
        assert held_rows(sql, [failing]) == []
        assert [(row.id, row.version, row.published) for row in outbox_rows(sql, [failing])] == [
            (first.id, 1, False),
            (later[0].id, 2, False),
            (later[2].id, 3, False),
        ]

        reader = TopicReader(settings)
        drain(app, sql, publisher, policy)
        assert pending_count(sql, [failing]) == 0
        records = reader.read_to_end([failing])
        assert [record.version for record in records] == [1, 2, 3]
        assert [record.event_id for record in records] == [
            first.event_id,
            later[0].event_id,
            later[2].event_id,
        ]
    finally:
        forget_unpublished(sql, [failing, flowing])


# Larger than the producer (and the topic) accept in one message: a genuine poison row.
POISON = {"blob": "x" * (MAX_EVENT_BYTES + 100_000)}
# A 512 x 512 board's snapshot is about this big: above Kafka's default limit, within ours.
LARGE_SNAPSHOT = {"board": "x" * 1_600_000}


def test_an_event_as_large_as_a_big_boards_snapshot_reaches_kafka_and_its_reader(
    app: Flask,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
) -> None:
    (arena_id,) = new_arenas(1)
    reader = TopicReader(settings)
    try:
        insert_events(sql, [(arena_id, 1)], payload=LARGE_SNAPSHOT)
        drain(app, sql, publisher, policy)
        assert pending_count(sql, [arena_id]) == 0 and held_rows(sql, [arena_id]) == []
        assert versions(by_arena(reader.read_to_end([arena_id]))) == {arena_id: [1]}
    finally:
        forget_unpublished(sql, [arena_id])


def test_a_poison_row_is_held_alone_and_other_arenas_flow_on(
    app: Flask,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
) -> None:
    """A row Kafka can never take must not take down rows of other arenas claimed with it."""
    before, poisoned, after = new_arenas(3)
    drain(app, sql, publisher, policy)
    reader = TopicReader(settings)
    try:
        (innocent_first,) = insert_events(sql, [(before, 1)])
        (poison,) = insert_events(sql, [(poisoned, 1)], payload=POISON)
        waiting_behind, innocent_last = insert_events(sql, [(poisoned, 2), (after, 1)])

        def poison_held() -> bool:
            relay(app, publisher, FRAGILE)
            return any(row.id == poison.id for row in held_rows(sql, [poisoned]))

        wait_until(poison_held, deadline_seconds=30, interval=0.05, what="the poison row's end")
        relay(app, publisher, FRAGILE)

        (poison_held_row, *_) = held_rows(sql, [poisoned])
        assert (poison_held_row.id, poison_held_row.attempts) == (poison.id, FRAGILE.max_attempts)
        assert poison_held_row.last_error is not None
        assert "MessageSizeTooLarge" in poison_held_row.last_error

        innocents = [before, after]
        wrongly_held = held_rows(sql, innocents)
        assert wrongly_held == [], (
            f"rows of {len({row.arena_id for row in wrongly_held})} other arena(s) were "
            f"held with the poison row, because they shared its batch: {wrongly_held}"
        )
        assert [(row.id, row.published) for row in outbox_rows(sql, innocents)] == [
            (innocent_first.id, True),
            (innocent_last.id, True),
        ]
        delivered = versions(first_deliveries(reader.read_to_end([before, poisoned, after])))
        assert delivered == {before: [1], after: [1]}
        assert waiting_behind.id in {
            row.id for row in outbox_rows(sql, [poisoned]) if not row.published
        }
    finally:
        forget_unpublished(sql, [before, poisoned, after])


# --- a relay killed mid-batch ------------------------------------------------------------------

BACKLOG_ARENAS = 2000
BACKLOG_VERSIONS = 10

# What a Celery worker runs for the relay task, minus the broker.
RELAY_PROCESS = """
import tasks.celery  # builds the Flask and Celery apps from the environment, as `celery -A` does
from tasks.outbox import publish_outbox

print(publish_outbox(), flush=True)
"""


@contextlib.contextmanager
def _relay_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The relay task in a process of its own, with one batch big enough for the whole backlog;
    killed if still running when the block ends."""
    processes = Supervisor(log.parent)
    environment = pipeline_env(settings, OUTBOX_BATCH_SIZE="100000")
    try:
        yield processes.start(log.stem, [sys.executable, "-c", RELAY_PROCESS], environment)
    finally:
        processes.kill(log.stem)


def test_a_relay_killed_mid_batch_loses_nothing_and_republishes_with_the_same_event_ids(
    app: Flask,
    sql: psycopg.Connection,
    settings: Settings,
    publisher: KafkaPublisher,
    policy: RelayPolicy,
    tmp_path: Path,
) -> None:
    arena_ids = new_arenas(BACKLOG_ARENAS)
    drain(app, sql, publisher, policy)
    inserted = insert_events(sql, interleaved(arena_ids, BACKLOG_VERSIONS))
    # A live outbox has statistics (autovacuum keeps them); a 20k-row COPY claimed at once would
    # otherwise be planned from stale ones, which on a full run's table made the claim crawl.
    sql.execute("ANALYZE outbox")
    total = len(inserted)
    reader = TopicReader(settings)

    killed_log, restarted_log = tmp_path / "killed-relay.log", tmp_path / "restarted-relay.log"
    with _relay_process(settings, killed_log) as doomed:

        def alive() -> None:
            if doomed.poll() is not None:
                raise AssertionError(f"the relay ended too soon:\n{killed_log.read_text()[-3000:]}")

        seen_before_kill = reader.wait_for_any(
            arena_ids, deadline_seconds=60, still_worth_waiting=alive
        )
        os.kill(doomed.pid, signal.SIGKILL)
        assert doomed.wait(timeout=10) == -signal.SIGKILL

    # Kafka had acknowledged part of the batch, but the batch's transaction never committed:
    # the kill really came in the middle, and every row is still pending.
    assert pending_count(sql, arena_ids) == total

    with _relay_process(settings, restarted_log) as restarted:
        assert restarted.wait(timeout=120) == 0, restarted_log.read_text()[-3000:]
    assert int(restarted_log.read_text().split()[-1]) >= total
    assert pending_count(sql, arena_ids) == 0

    records = reader.read_to_end(arena_ids)
    stored = {row.event_id: row for row in inserted}
    copies: dict[str, list] = {}
    for record in records:
        copies.setdefault(record.event_id, []).append(record)
    assert set(copies) == set(stored), "events are missing from the topic"
    duplicates = len(records) - len(copies)
    assert duplicates >= len(seen_before_kill)
    assert all(len(copies[record.event_id]) >= 2 for record in seen_before_kill)
    for event_id, same in copies.items():
        row = stored[event_id]
        assert all(
            (copy.key, copy.version, copy.value) == (row.arena_id, row.version, same[0].value)
            for copy in same
        ), f"copies of event {event_id} differ"
    assert versions(first_deliveries(records)) == {
        arena_id: list(range(1, BACKLOG_VERSIONS + 1)) for arena_id in arena_ids
    }


# --- Kafka away --------------------------------------------------------------------------------


def _services(command: str) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh"), command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"services.sh {command}:\n{result.stdout}{result.stderr}"


def _command(
    client: FlaskClient, path: str, status: int, token: str | None = None, **body: str
) -> dict[str, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = client.post(f"/api/v1/arenas{path}", json=body or None, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_commands_succeed_while_kafka_is_down_and_every_event_follows_in_order_when_it_is_back(
    app: Flask, client: FlaskClient, sql: psycopg.Connection, settings: Settings, kafka_topics: None
) -> None:
    patient = RelayPolicy.from_settings(
        dataclasses.replace(
            settings,
            outbox_backoff_base_seconds=0.2,
            outbox_backoff_max_seconds=2.0,
            outbox_max_attempts=1000,
        )
    )
    # A worker's long-lived producer: connected before the outage, used through it and after.
    producer = KafkaPublisher(settings, settings.kafka_events_topic)
    try:
        drain(app, sql, producer, patient)
        reader = TopicReader(settings)
        try:
            _services("stop-kafka")
            assert not kafka_reachable(settings, timeout_seconds=1.0)

            tokens: dict[str, str] = {}
            for n in range(3):
                opened = _command(client, "", 201, name=f"Outage {n}", displayName="Ada")
                tokens[opened["id"]] = opened["player"]["token"]
                _command(client, f"/{opened['id']}/players", 201, displayName="Bo")
            arena_ids = list(tokens)
            early = {row.id for row in outbox_rows(sql, arena_ids)}
            assert len(early) == 6

            run = relay(app, producer, patient)
            assert run.published == 0 and run.error is not None

            for arena_id, token in tokens.items():  # commands keep coming
                for command in ("start", "pause", "resume"):
                    _command(client, f"/{arena_id}/{command}", 200, token)

            # Once the first rows' back-off is over, the next run tries them all, and fails.
            wait_until(
                lambda: all(row.due for row in outbox_rows(sql, arena_ids)),
                deadline_seconds=30,
                what="the back-off to pass",
            )
            run = relay(app, producer, patient)
            assert run.published == 0 and run.error is not None
            rows = outbox_rows(sql, arena_ids)
            assert len(rows) == 15
            assert not any(row.published for row in rows)
            # Each failure is charged to the row that failed: each arena's first row. Its later
            # rows were held behind it, never tried, so never charged.
            heads = {min(r.id for r in rows if r.arena_id == row.arena_id) for row in rows}
            assert heads <= early and len(heads) == 3
            assert [row.attempts for row in rows] == [2 if row.id in heads else 0 for row in rows]
            assert all(
                "KafkaTimeoutError" in (row.last_error or "") for row in rows if row.id in heads
            )
            assert all(row.last_error is None for row in rows if row.id not in heads)
        finally:
            try:
                _services("start-kafka")
            finally:
                wait_until(
                    lambda: kafka_reachable(settings), deadline_seconds=90, what="Kafka back"
                )

        def all_published() -> bool:
            relay(app, producer, patient)
            return pending_count(sql, arena_ids) == 0

        wait_until(all_published, deadline_seconds=60, interval=0.1, what="the backlog to clear")
    finally:
        producer.close()

    rows = outbox_rows(sql, arena_ids)
    assert all(row.published and row.last_error is None for row in rows)
    records = reader.read_to_end(arena_ids)
    assert {record.event_id for record in records} == {row.event_id for row in rows}
    assert versions(first_deliveries(records)) == {arena_id: [1, 2, 3, 4, 5] for arena_id in tokens}
