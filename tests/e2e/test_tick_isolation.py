"""One arena whose tick fails does not stop its batch: on the real pipeline, an arena whose stored
board no longer decodes is set aside with its reason (on /pipeline, in /metrics, in the worker's
log) while the arenas ticked in the same batch keep ticking, and `flask ticks resume` brings it
back once its board is fixed."""

from __future__ import annotations

import psycopg
from flask.testing import FlaskClient

from arena.settings import Settings
from harness.arenas import TICKING, ticks_recorded
from harness.processes import pipeline_env, run_flask
from harness.waiting import wait_until
from tests.e2e.conftest import Pipeline
from tests.support.api import create_arena, drive

DEADLINE_SECONDS = 60
TICKS_ON = 20  # ticks the healthy arenas make while the failing one is set aside: 2 s of 100 ms


def _tick(sql: psycopg.Connection, arena_id: str) -> int:
    row = sql.execute("SELECT tick FROM arenas WHERE id = %s", (arena_id,)).fetchone()
    assert row is not None
    return int(row[0])


def _set_aside(sql: psycopg.Connection, arena_id: str) -> str | None:
    row = sql.execute("SELECT tick_failure FROM arenas WHERE id = %s", (arena_id,)).fetchone()
    assert row is not None
    return row[0]


def _set_aside_shown(client: FlaskClient) -> list[dict[str, str]]:
    """The arenas the page lists as set aside (its figures may be PIPELINE_CACHE_SECONDS old)."""
    response = client.get("/api/v1/pipeline")
    assert response.status_code == 200, response.get_data(as_text=True)
    ticks = response.get_json()["ticks"]
    shown: list[dict[str, str]] = ticks["setAsideArenas"]
    assert ticks["setAside"] == len(shown)
    return shown


def _metric(client: FlaskClient, name: str) -> float:
    response = client.get("/metrics")
    assert response.status_code == 200
    (value,) = [
        float(line.split()[1])
        for line in response.get_data(as_text=True).splitlines()
        if line.startswith(f"{name} ")
    ]
    return value


def test_an_arena_whose_tick_fails_is_set_aside_and_its_batch_ticks_on(
    client: FlaskClient, sql: psycopg.Connection, settings: Settings, pipeline: Pipeline
) -> None:
    opened = [create_arena(client, name=f"Batch dish {n}", config=TICKING) for n in range(3)]
    for arena_id, admin in opened:
        drive(client, arena_id, admin, "start")
    (first, _), (cursed, admin), (last, _) = opened
    healthy = (first, last)

    def all_ticking() -> bool:
        pipeline.assert_running()
        return all(_tick(sql, arena_id) >= 3 for arena_id, _ in opened)

    wait_until(all_ticking, deadline_seconds=DEADLINE_SECONDS, what="three arenas ticking")
    # Paused, no tick in flight can write a good board over the broken one.
    drive(client, cursed, admin, "pause")
    sql.execute(
        "UPDATE arena_boards SET board = '\\x00'::bytea || board WHERE arena_id = %s", (cursed,)
    )
    drive(client, cursed, admin, "resume")
    stuck_at = _tick(sql, cursed)
    since = {arena_id: _tick(sql, arena_id) for arena_id in healthy}

    def healthy_ticked_on() -> bool:
        pipeline.assert_running()
        return all(_tick(sql, arena_id) >= since[arena_id] + TICKS_ON for arena_id in healthy)

    wait_until(healthy_ticked_on, deadline_seconds=DEADLINE_SECONDS, what="the batch ticking on")
    reason = wait_until(
        lambda: _set_aside(sql, cursed), deadline_seconds=DEADLINE_SECONDS, what="a set-aside"
    )
    assert "error" in reason.lower(), reason  # the decoder's complaint, named
    assert _tick(sql, cursed) == stuck_at
    assert ticks_recorded(sql, cursed) == list(range(1, stuck_at + 1))
    for arena_id in healthy:
        ticks = ticks_recorded(sql, arena_id)
        assert ticks == list(range(1, len(ticks) + 1))  # none lost, none made twice

    (shown,) = wait_until(
        lambda: _set_aside_shown(client), deadline_seconds=DEADLINE_SECONDS, what="the page"
    )
    assert (shown["arenaId"], shown["reason"]) == (cursed, reason)
    assert shown["since"]
    assert shown["resumeCommand"] == f"flask ticks resume {cursed}"
    assert _metric(client, "arena_ticks_set_aside") == 1
    pipeline.wait_for_line("worker", f"arena {cursed} set aside", seconds=DEADLINE_SECONDS)

    env = pipeline_env(settings)
    listed = run_flask(env, "ticks", "list", timeout=DEADLINE_SECONDS)
    assert listed.returncode == 0, listed.stderr
    assert cursed in listed.stdout and reason in listed.stdout

    # The fix: the board as it was. Then the command the page shows.
    sql.execute(
        "UPDATE arena_boards SET board = substring(board FROM 2) WHERE arena_id = %s", (cursed,)
    )
    resumed = run_flask(env, *shown["resumeCommand"].split()[1:], timeout=DEADLINE_SECONDS)
    assert resumed.returncode == 0, resumed.stderr
    assert cursed in resumed.stdout

    def cursed_ticked_again() -> bool:
        pipeline.assert_running()
        return _tick(sql, cursed) >= stuck_at + 3

    wait_until(cursed_ticked_again, deadline_seconds=DEADLINE_SECONDS, what="ticks after resume")
    assert _set_aside(sql, cursed) is None
    ticks = ticks_recorded(sql, cursed)
    assert ticks == list(range(1, len(ticks) + 1)) and len(ticks) > stuck_at
    wait_until(
        lambda: _set_aside_shown(client) == [] and _metric(client, "arena_ticks_set_aside") == 0,
        deadline_seconds=DEADLINE_SECONDS,
        what="the page and /metrics without it",
    )
    for arena_id, owner in opened:
        drive(client, arena_id, owner, "stop")
