"""Many clients, one arena, at the same moment: optimistic concurrency on real PostgreSQL.

Each thread has its own test client (Flask-SQLAlchemy's scoped session is per app context, so per
request and thread); a barrier releases them together. Whatever interleaving happens, every 2xx
reply must own exactly one outbox event at the version it answered, versions must run 1..N with
no gap or repeat, and a refused request (409) must leave nothing behind.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.api import (
    arena_path,
    arena_row,
    assert_versions_contiguous,
    create_arena,
    drive,
    join,
    new_key,
    players,
    set_temperature,
)
from tests.support.idempotency import stored_key_hash

pytestmark = pytest.mark.integration

THREADS = 24
ROUNDS = 3  # requests per thread, back to back, to keep the contention up


@dataclass(frozen=True, slots=True)
class Answer:
    kind: str
    key: str
    token: str | None  # the bearer token the key was sent with: it scopes the key
    status: int
    body: dict[str, Any]
    replayed: bool


Request = Callable[[FlaskClient, str], Any]  # (client, idempotency key) → response


def _hammer(app: Flask, plans: list[list[tuple[str, Request]]]) -> list[Answer]:
    """Run each plan (a list of requests) in its own thread, all released by one barrier."""
    barrier = threading.Barrier(len(plans))

    def worker(plan: list[tuple[str, Request]]) -> list[Answer]:
        client = app.test_client()
        barrier.wait(timeout=30)
        outcomes = []
        for kind, send in plan:
            key = new_key()
            response = send(client, key)
            replayed = response.headers.get("Idempotent-Replayed") == "true"
            sent = response.request.authorization
            token = sent.token if sent else None
            body = response.get_json()
            outcomes.append(Answer(kind, key, token, response.status_code, body, replayed))
        return outcomes

    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        futures = [pool.submit(worker, plan) for plan in plans]
        # .result() re-raises a worker's exception here, in the test's thread.
        return [outcome for future in futures for outcome in future.result(timeout=120)]


def _refusals(outcomes: list[Answer]) -> Counter[str]:
    """Count 409s by problem type; anything that is neither 2xx nor 409 fails the test."""
    refused: Counter[str] = Counter()
    for outcome in outcomes:
        if 200 <= outcome.status < 300:
            continue
        assert outcome.status == 409, outcome
        refused[outcome.body["type"]] += 1
    return refused


def test_concurrent_actions_joins_and_transitions_keep_one_event_per_success(
    app: Flask, sql: psycopg.Connection
) -> None:
    client = app.test_client()
    arena_id, admin = create_arena(client, config={"maxPlayers": 100})
    members = [admin, *(join(client, arena_id, f"Player {n}") for n in range(3))]
    drive(client, arena_id, admin, "start")
    base = arena_row(sql, arena_id).version
    roster = players(sql, arena_id)
    (records_before,) = sql.execute("SELECT count(*) FROM idempotency_keys").fetchone()

    def action(player_index: int, value: float) -> Request:
        member = members[player_index % len(members)]
        return lambda c, key: c.post(
            arena_path(arena_id, "/actions"),
            json=set_temperature(value),
            headers=member.auth | {"Idempotency-Key": key},
        )

    def joining(name: str) -> Request:
        return lambda c, key: c.post(
            arena_path(arena_id, "/players"),
            json={"displayName": name},
            headers={"Idempotency-Key": key},
        )

    def flip(command: str) -> Request:
        return lambda c, key: c.post(
            arena_path(arena_id, f"/{command}"), headers=admin.auth | {"Idempotency-Key": key}
        )

    plans: list[list[tuple[str, Request]]] = []
    for thread in range(THREADS):
        if thread < 14:
            plan = [("action", action(thread, 20 + thread + r / 10)) for r in range(ROUNDS)]
        elif thread < 20:
            plan = [("join", joining(f"Joiner {thread}-{r}")) for r in range(ROUNDS)]
        else:
            first, second = ("pause", "resume") if thread % 2 else ("resume", "pause")
            plan = [(cmd, flip(cmd)) for cmd in (first, second, first)[:ROUNDS]]
        plans.append(plan)

    outcomes = _hammer(app, plans)

    assert len(outcomes) == THREADS * ROUNDS
    refused = _refusals(outcomes)
    accepted = [o for o in outcomes if 200 <= o.status < 300]
    assert not any(o.replayed for o in outcomes)
    # Lifecycle commands may find the "wrong" status; everything else only loses races.
    assert set(refused) <= {"/problems/conflict", "/problems/illegal-transition"}
    lost_races = [o for o in outcomes if o.status == 409 and o.kind in {"action", "join"}]
    assert all(o.body["type"] == "/problems/conflict" for o in lost_races)
    print(f"accepted {len(accepted)}, refused {dict(refused)}")  # shown with -s

    # One event per success, at the version that success answered, and nothing else.
    versions = [o.body["version"] for o in accepted]
    assert len(set(versions)) == len(versions), Counter(versions).most_common(3)
    recorded = assert_versions_contiguous(sql, arena_id)
    assert sorted(versions) == list(range(base + 1, len(recorded) + 1))
    by_version = {event.version: event for event in recorded}
    expected_type = {
        "action": "ActionSubmitted",
        "join": "PlayerJoined",
        "pause": "ArenaPaused",
        "resume": "ArenaResumed",
    }
    for outcome in accepted:
        event = by_version[outcome.body["version"]]
        assert event.type == expected_type[outcome.kind], (outcome, event)
        if outcome.kind == "action":
            assert event.payload["actionId"] == outcome.body["actionId"]
        if outcome.kind == "join":
            assert event.payload["playerId"] == outcome.body["player"]["id"]

    # The state agrees with the events, and refused requests left no trace.
    joined = [o for o in accepted if o.kind == "join"]
    assert len(players(sql, arena_id)) == len(roster) + len(joined)
    assert {p[0] for p in players(sql, arena_id)} == {p[0] for p in roster} | {
        o.body["player"]["id"] for o in joined
    }
    last_flip = [e for e in recorded if e.type in {"ArenaStarted", "ArenaPaused", "ArenaResumed"}]
    assert arena_row(sql, arena_id).status == last_flip[-1].payload["status"]
    (records_after,) = sql.execute("SELECT count(*) FROM idempotency_keys").fetchone()
    assert records_after - records_before == len(accepted)
    remembered = {
        row[0]
        for row in sql.execute(
            "SELECT key_hash FROM idempotency_keys WHERE key_hash = ANY(%s)",
            ([stored_key_hash(o.key, o.token) for o in outcomes],),
        )
    }
    assert remembered == {stored_key_hash(o.key, o.token) for o in accepted}


def test_one_request_retried_concurrently_with_one_key_runs_once(
    app: Flask, sql: psycopg.Connection
) -> None:
    client = app.test_client()
    arena_id, admin = create_arena(client)
    drive(client, arena_id, admin, "start")
    key = new_key()

    def send(c: FlaskClient, _: str) -> Any:
        return c.post(
            arena_path(arena_id, "/actions"),
            json=set_temperature(33),
            headers=admin.auth | {"Idempotency-Key": key},
        )

    outcomes = _hammer(app, [[("action", send)] for _ in range(THREADS)])

    assert [o.status for o in outcomes] == [202] * THREADS
    assert len({repr(o.body) for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    recorded = assert_versions_contiguous(sql, arena_id)
    assert [e.type for e in recorded] == ["ArenaCreated", "ArenaStarted", "ActionSubmitted"]
    assert recorded[-1].payload["actionId"] == outcomes[0].body["actionId"]


def test_racing_joiners_never_overfill_the_arena_nor_share_a_name(
    app: Flask, sql: psycopg.Connection
) -> None:
    client = app.test_client()
    max_players = 6
    arena_id, _ = create_arena(client, config={"maxPlayers": max_players})
    # Pairs of names that are equal but for case, so every name is contested.
    names = [name for n in range(THREADS // 2) for name in (f"Twin {n}", f"TWIN {n}")]

    def joining(name: str) -> Request:
        return lambda c, _: c.post(arena_path(arena_id, "/players"), json={"displayName": name})

    outcomes = _hammer(app, [[("join", joining(name))] for name in names])

    refused = _refusals(outcomes)
    assert set(refused) <= {"/problems/conflict"}
    accepted = [o for o in outcomes if o.status == 201]
    present = players(sql, arena_id)
    assert 1 <= len(accepted) <= max_players - 1
    assert len(present) == 1 + len(accepted) <= max_players
    folded = [p[1].casefold() for p in present]
    assert len(set(folded)) == len(folded)
    recorded = assert_versions_contiguous(sql, arena_id)
    assert sorted(o.body["version"] for o in accepted) == list(range(2, len(recorded) + 1))
    assert [e.type for e in recorded[1:]] == ["PlayerJoined"] * len(accepted)
