"""`whereabouts` tells an operator where a lagging view's missing event is on the write side."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.extensions import db
from arena.outbox.operations import whereabouts
from tests.support.api import create_arena
from tests.support.outbox import hold_arena

pytestmark = pytest.mark.integration


def _where(app: Flask, arena_id: str, version: int = 1) -> str:
    with app.app_context():
        return whereabouts(db.session, {arena_id: version})[arena_id]


def test_a_fresh_event_is_pending_and_due(app: Flask, client: FlaskClient) -> None:
    arena_id, _ = create_arena(client)

    assert _where(app, arena_id) == (
        "event v1 (ArenaCreated) is pending in the outbox, due in 0.0 s"
    )


def test_a_failing_event_shows_its_attempts_and_last_error(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = create_arena(client)
    sql.execute(
        "UPDATE outbox SET attempts = 3, last_error = 'KafkaTimeoutError()', "
        "next_attempt_at = now() + interval '30 seconds' WHERE aggregate_id = %s",
        (arena_id,),
    )

    where = re.fullmatch(
        r"event v1 \(ArenaCreated\) is pending in the outbox, due in (?P<due>[\d.]+) s; "
        r"3 failed attempt\(s\), last: KafkaTimeoutError\(\)",
        _where(app, arena_id),
    )

    assert where is not None
    assert 29.0 <= float(where["due"]) <= 30.0


def test_a_published_event_says_since_when(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = create_arena(client)
    sql.execute(
        "UPDATE outbox SET published_at = now() - interval '12 seconds' WHERE aggregate_id = %s",
        (arena_id,),
    )

    assert _where(app, arena_id).startswith("event v1 (ArenaCreated) was published to Kafka 12.")


def test_a_held_event_names_the_way_out(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id, _ = create_arena(client)
    hold_arena(sql, arena_id, attempts=12, last_error="MessageSizeTooLargeError()")

    assert _where(app, arena_id) == (
        "event v1 (ArenaCreated) is held in the outbox after 12 attempt(s): "
        "MessageSizeTooLargeError(); `flask outbox release` sends it"
    )


def test_a_pruned_or_unknown_event_is_said_to_be_gone(app: Flask) -> None:
    arena_id = str(uuid.uuid4())

    where = _where(app, arena_id, 7)

    assert where == "event v7 is no longer in the outbox (published, then pruned)"
