"""A relay run drains: it keeps publishing what commits while it runs, woken by the commit's
notice, and only so many runs drain at once."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.extensions import db
from arena.messaging.kafka import KafkaPublisher
from arena.outbox.relay import RelayPolicy, relay_until
from arena.outbox.wakeups import OUTBOX_CHANNEL, OutboxListener
from arena.pacing import Pace
from arena.persistence.connections import pooled_connection
from arena.settings import Settings
from harness.services import libpq_dsn
from tests.support.api import arena_path, bearer, create_arena
from tests.support.outbox import insert_events, new_arenas, pending_count

pytestmark = pytest.mark.integration


def test_a_listener_wakes_on_a_commit_and_not_on_a_rollback(
    settings: Settings, database: str
) -> None:
    notify = f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"
    with (
        OutboxListener(settings.database_url) as listener,
        psycopg.connect(libpq_dsn(settings)) as command,
    ):
        command.execute(notify)
        command.rollback()
        assert listener.wait(0.2) is False

        command.execute(notify)
        command.commit()
        assert listener.wait(5.0) is True
        assert listener.wait(0.05) is False  # one notice per commit, swallowed once


def test_a_command_wakes_the_listener_and_a_refused_one_does_not(
    client: FlaskClient, settings: Settings
) -> None:
    with OutboxListener(settings.database_url) as listener:
        arena_id, admin = create_arena(client)
        assert listener.wait(5.0) is True

        refused = client.post(arena_path(arena_id, "/pause"), headers=bearer(admin.token))
        assert refused.status_code == 409  # a PENDING arena cannot pause
        assert listener.wait(0.2) is False


def test_one_run_publishes_rows_committed_while_it_runs(
    app: Flask, sql: psycopg.Connection, settings: Settings, kafka_topics: None
) -> None:
    arena_ids = new_arenas(3)
    insert_events(sql, [(arena_ids[0], 1)])
    later = iter([[(arena_ids[1], 1)], [(arena_ids[2], 1), (arena_ids[0], 2)]])
    waits: list[float] = []

    def commit_more(timeout: float) -> bool:
        """Stands in for the listener: each wait, another command commits."""
        waits.append(timeout)
        with psycopg.connect(libpq_dsn(settings), autocommit=True) as other:
            insert_events(other, next(later, []))
        return True

    producer = KafkaPublisher(settings, settings.kafka_events_topic)
    policy = RelayPolicy.from_settings(settings)
    ticks = iter(range(100))
    try:
        with app.app_context(), pooled_connection(db.engine) as connection:
            run = relay_until(
                connection,
                lambda: producer,
                policy,
                wait_for_commits=commit_more,
                seconds=3,
                clock=lambda: float(next(ticks)),
            )
    finally:
        producer.close()

    assert run.error is None
    assert pending_count(sql, arena_ids) == 0
    assert run.published >= 4
    assert len(waits) == 2 and all(0 < w <= 1.0 for w in waits)


def test_wake_ups_beyond_the_pace_wait_for_its_next_token_and_lose_nothing(
    app: Flask, sql: psycopg.Connection, settings: Settings, kafka_topics: None
) -> None:
    arena_ids = new_arenas(6)
    later = iter([[(arena_id, 1)] for arena_id in arena_ids])
    now = [0.0]
    slept: list[float] = []

    def commit_one(timeout: float) -> bool:
        """A command commits during every wait, far faster than the pace of 10 claims a second."""
        with psycopg.connect(libpq_dsn(settings), autocommit=True) as other:
            insert_events(other, next(later, []))
        return True

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    producer = KafkaPublisher(settings, settings.kafka_events_topic)
    try:
        with app.app_context(), pooled_connection(db.engine) as connection:
            run = relay_until(
                connection,
                lambda: producer,
                RelayPolicy.from_settings(settings),
                wait_for_commits=commit_one,
                seconds=0.45,
                pace=Pace(10, 1, clock=lambda: now[0]),
                clock=lambda: now[0],
                sleep=sleep,
            )
    finally:
        producer.close()

    assert run.error is None
    # The first wake-up spends the one token; every later one waits a tenth of a second for it.
    assert slept == pytest.approx([0.1] * 5)
    assert run.published == 6 and pending_count(sql, arena_ids) == 0


def test_only_the_allowed_number_of_runs_drain_at_once(settings: Settings) -> None:
    with (
        OutboxListener(settings.database_url) as first,
        OutboxListener(settings.database_url) as second,
        OutboxListener(settings.database_url) as third,
    ):
        assert first.take_drain_slot(2) is True
        assert second.take_drain_slot(2) is True
        assert third.take_drain_slot(2) is False
    # Closed listeners hold nothing: a new run gets a slot again.
    with OutboxListener(settings.database_url) as again:
        assert again.take_drain_slot(1) is True
