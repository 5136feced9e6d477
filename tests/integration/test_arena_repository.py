"""The repository on the command path: many arenas in one load, one aggregate per arena within a
unit of work, and a batch of updates that fails whole when any arena changed meanwhile."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from flask.testing import FlaskClient

from arena.domain.actions import ActionType
from arena.domain.errors import NotFound
from arena.domain.model import hash_token
from arena.persistence.idempotency_keys import ReplySealer
from arena.persistence.sql_unit_of_work import SqlUnitOfWork
from arena.services.commands import SubmitAction
from arena.services.handlers import submit_action
from arena.services.unit_of_work import ConcurrentUpdate, Provenance
from arena.settings import Settings
from harness.services import libpq_dsn
from tests.support.api import arena_path, bearer, create_arena

pytestmark = pytest.mark.integration

NUTRIENTS = {"area": {"x": 1, "y": 1, "width": 2, "height": 2}, "amount": 1.0}


@pytest.fixture
def connection(settings: Settings, database: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(libpq_dsn(settings)) as opened:
        yield opened


def unit_of_work(connection: psycopg.Connection) -> SqlUnitOfWork:
    sealer = ReplySealer(secrets.token_bytes(32))
    return SqlUnitOfWork(
        connection, Provenance.new(), idempotency_retention=timedelta(0), sealer=sealer
    )


def running_arenas(client: FlaskClient, count: int) -> list[tuple[str, str]]:
    """(arena id, admin token hash) of `count` RUNNING arenas, each at version 2."""
    arenas = []
    for _ in range(count):
        arena_id, admin = create_arena(client)
        started = client.post(arena_path(arena_id, "/start"), headers=bearer(admin.token))
        assert started.status_code == 200
        arenas.append((arena_id, hash_token(admin.token)))
    return arenas


def test_get_many_loads_the_arenas_that_exist_and_hands_out_the_same_aggregate_again(
    client: FlaskClient, connection: psycopg.Connection
) -> None:
    (first, _), (second, _) = running_arenas(client, 2)

    with unit_of_work(connection) as uow:
        loaded = uow.arenas.get_many([second, str(uuid.uuid4()), "not-a-uuid", first.upper()])

        assert sorted(arena.id for arena in loaded) == sorted([first, second])
        assert all(len(arena.players) == 1 for arena in loaded)
        assert uow.arenas.get(first) is next(a for a in loaded if a.id == first)
        with pytest.raises(NotFound):
            uow.arenas.get(str(uuid.uuid4()))


def test_one_transaction_updates_many_arenas_and_writes_one_event_each(
    client: FlaskClient, connection: psycopg.Connection, sql: psycopg.Connection
) -> None:
    arenas = running_arenas(client, 3)

    with unit_of_work(connection) as uow:
        uow.arenas.get_many([arena_id for arena_id, _ in arenas])
        for arena_id, actor in arenas:
            command = SubmitAction(arena_id, ActionType.ADD_NUTRIENTS, NUTRIENTS, None, actor)
            submit_action(uow, command)
        uow.commit()

    ids = [arena_id for arena_id, _ in arenas]
    versions = sql.execute(
        "SELECT version FROM arenas WHERE id = ANY(%s::uuid[])", (ids,)
    ).fetchall()
    events = sql.execute(
        "SELECT count(*) FROM outbox"
        " WHERE aggregate_id = ANY(%s::uuid[]) AND aggregate_version = 3",
        (ids,),
    ).fetchone()
    assert versions == [(3,), (3,), (3,)]
    assert events == (3,)


def test_a_batch_of_updates_fails_whole_when_one_arena_changed_meanwhile(
    client: FlaskClient, connection: psycopg.Connection, sql: psycopg.Connection
) -> None:
    arenas = running_arenas(client, 2)
    ids = [arena_id for arena_id, _ in arenas]

    with unit_of_work(connection) as uow:
        uow.arenas.get_many(ids)
        sql.execute("UPDATE arenas SET version = version + 1 WHERE id = %s", (ids[1],))
        for arena_id, actor in arenas:
            command = SubmitAction(arena_id, ActionType.ADD_NUTRIENTS, NUTRIENTS, None, actor)
            submit_action(uow, command)
        with pytest.raises(ConcurrentUpdate):
            uow.commit()

    assert sql.execute("SELECT version FROM arenas WHERE id = %s", (ids[0],)).fetchone() == (2,)
    assert sql.execute(
        "SELECT count(*) FROM outbox WHERE aggregate_id = ANY(%s::uuid[])", (ids,)
    ).fetchone() == (4,)  # ArenaCreated and ArenaStarted of each, nothing of the failed batch
