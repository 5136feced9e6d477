"""The tick scheduler's set-aside arenas in PostgreSQL: no pass claims one until it is resumed, a
look counts and lists them, and `flask ticks list|resume` show and lift them."""

from __future__ import annotations

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.persistence.tick_leases import claim_due, resume, set_aside, set_aside_arenas
from harness.arenas import COMMANDS_ONLY
from tests.support.api import create_arena, drive

pytestmark = pytest.mark.integration

LEASE_SECONDS = 0.001  # over at once: claims here hold back no other test's arena


def _due_arena(client: FlaskClient, sql: psycopg.Connection) -> str:
    arena_id, admin = create_arena(client, name="Due dish", config=COMMANDS_ONLY)
    drive(client, arena_id, admin, "start")
    sql.execute(
        "UPDATE arenas SET next_tick_at = now() - interval '1 second' WHERE id = %s", (arena_id,)
    )
    return arena_id


def _claimed(sql: psycopg.Connection) -> set[str]:
    return {claim.arena_id for claim in claim_due(sql, limit=10_000, lease_seconds=LEASE_SECONDS)}


def test_a_set_aside_arena_is_not_claimed_until_it_is_resumed(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_id = _due_arena(client, sql)
    set_aside(sql, arena_id, "ValueError: " + "x" * 5000)

    assert arena_id not in _claimed(sql)
    found = set_aside_arenas(sql, listed=None, counted=None)
    (mine,) = [arena for arena in found.first if arena.arena_id == arena_id]
    assert mine.reason.startswith("ValueError: x") and len(mine.reason) < 5000  # cut short
    assert found.count == len(found.first)

    assert resume(sql, arena_id) == [arena_id]
    assert resume(sql, arena_id) == []  # no longer set aside
    assert arena_id in _claimed(sql)
    assert arena_id not in {
        a.arena_id for a in set_aside_arenas(sql, listed=None, counted=None).first
    }


def test_a_look_counts_up_to_its_cap_and_lists_the_longest_set_aside_first(
    client: FlaskClient, sql: psycopg.Connection
) -> None:
    arena_ids = [_due_arena(client, sql) for _ in range(3)]
    for arena_id in arena_ids:
        set_aside(sql, arena_id, f"reason of {arena_id}")
    try:
        every = set_aside_arenas(sql, listed=None, counted=None)
        assert [a.arena_id for a in every.first][-3:] == arena_ids
        look = set_aside_arenas(sql, listed=1, counted=2)
        assert look.count == 2 and len(look.first) == 1
        assert look.first[0].arena_id == every.first[0].arena_id
    finally:
        for arena_id in arena_ids:
            resume(sql, arena_id)


def test_the_cli_lists_the_arenas_set_aside_and_resumes_one_or_all(
    app: Flask, client: FlaskClient, sql: psycopg.Connection
) -> None:
    one, other = _due_arena(client, sql), _due_arena(client, sql)
    set_aside(sql, one, "ValueError: the board does not decode")
    set_aside(sql, other, "KeyError: 'kind'")
    cli = app.test_cli_runner()

    listed = cli.invoke(args=["ticks", "list"])
    assert listed.exit_code == 0, listed.output
    assert f"arena {one}: set aside since" in listed.output
    assert "reason: ValueError: the board does not decode" in listed.output

    resumed = cli.invoke(args=["ticks", "resume", one])
    assert resumed.exit_code == 0, resumed.output
    assert f"arena {one}: resumed" in resumed.output
    again = cli.invoke(args=["ticks", "resume", one])
    assert again.exit_code == 1 and "is not set aside" in again.output
    assert cli.invoke(args=["ticks", "resume"]).exit_code == 2  # neither an arena nor --all

    every = cli.invoke(args=["ticks", "resume", "--all"])
    assert every.exit_code == 0, every.output
    assert f"arena {other}: resumed" in every.output
    assert {one, other} <= _claimed(sql)
