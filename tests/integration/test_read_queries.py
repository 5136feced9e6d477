"""The query API over the real Redis read model, fed with real domain events (no workers).

Events come from the `Arena` aggregate itself, wrapped in `EventEnvelope`s, and go into the read
model through `ArenaViews.apply`, the call the projection task makes. Every test names its arenas
with a token of its own, so searches (`q=`) give exact answers in a read model shared by the run.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from arena import create_app
from arena.bootstrap import components
from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.model import Arena
from arena.readmodel.replay import replay
from arena.readmodel.store import FEED_LENGTH, ArenaViews
from arena.readmodel.writer import EventOutOfOrder, Outcome, apply_event, stall
from arena.settings import Settings

pytestmark = pytest.mark.integration

ARENAS = "/api/v1/arenas"
VERSION_HEADER = "X-Read-Model-Version"
SHORT_WAIT_SECONDS = 0.3

# --- real event streams ------------------------------------------------------------------------


def _stream(
    name: str, *, created_at: datetime | None = None, actions: int = 1
) -> list[EventEnvelope]:
    """An arena's whole life, from the aggregate: every event type the read model projects.

    Prefixes end in a given status: 2 events PENDING, 4 RUNNING, 6 PAUSED; the whole stream
    (9 + `actions` - 1 events) ends FINISHED.
    """
    now = created_at or datetime.now(UTC)
    arena, creator = Arena.create(
        name=name, creator_display_name="Ada", config=ArenaConfig(), now=now
    )
    ada = creator.player
    bob = arena.join("Bob", now + timedelta(milliseconds=1)).player  # v2 PENDING
    arena.transition("start", ada, now + timedelta(milliseconds=2))  # v3 RUNNING
    for n in range(actions):  # v4… RUNNING
        temperature = {"temperature": {"value": 20.0 + n % 50}}
        arena.submit_action(ada, "SET_TEMPERATURE", temperature, None, now)
    arena.transition("pause", ada, now + timedelta(milliseconds=3))  # PAUSED
    arena.update_config(ada, {"width": 40}, now + timedelta(milliseconds=4))  # PAUSED
    arena.transition("resume", ada, now + timedelta(milliseconds=5))  # RUNNING
    arena.remove_player(ada, bob.id, now + timedelta(milliseconds=6))  # RUNNING
    arena.transition("stop", ada, now + timedelta(milliseconds=7))  # FINISHED
    return [
        EventEnvelope.wrap(event, correlation_id="read-queries", causation_id="read-queries")
        for event in arena.collect_events()
    ]


PREFIX_ENDING = {"PENDING": 2, "RUNNING": 4, "PAUSED": 6, "FINISHED": None}


def _apply_all(
    views: ArenaViews, events: list[EventEnvelope], generation: str | None = None
) -> str:
    for envelope in events:
        assert apply_event(views, envelope, generation=generation) is Outcome.APPLIED
    return events[0].aggregate_id


def _project(views: ArenaViews, name: str, status: str = "PENDING", **kwargs: Any) -> str:
    events = _stream(name, **kwargs)
    return _apply_all(views, events[: PREFIX_ENDING[status]])


@pytest.fixture
def views(app: Flask) -> ArenaViews:
    return components(app).views


@pytest.fixture
def token() -> str:
    return f"tok{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def impatient_client(settings: Settings, app: Flask) -> FlaskClient:
    """The same read model behind an API that waits only SHORT_WAIT_SECONDS for `minVersion`."""
    impatient = create_app(dataclasses.replace(settings, read_wait_seconds=SHORT_WAIT_SECONDS))
    impatient.config["TESTING"] = True
    return impatient.test_client()


def _listed(client: FlaskClient, **query: Any) -> dict[str, Any]:
    response = client.get(ARENAS, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


# --- listing: status, search, total, paging -----------------------------------------------------


def test_status_filter_answers_exactly_the_arenas_in_that_status(
    client: FlaskClient, views: ArenaViews, token: str
) -> None:
    by_status = {
        status: {_project(views, f"{token} {status} {n}", status) for n in range(2)}
        for status in PREFIX_ENDING
    }

    for status, ids in by_status.items():
        page = _listed(client, status=status, q=token, limit=100)
        assert set(_ids(page)) == ids, status
        assert page["total"] == len(ids)
        assert {item["status"] for item in page["items"]} == {status}
        # Without the search: only that status, and ours among them.
        unsearched = _listed(client, status=status, limit=100)
        assert {item["status"] for item in unsearched["items"]} == {status}
        if unsearched["total"] <= 100:
            assert ids <= set(_ids(unsearched))
    # An arena that went RUNNING → PAUSED → RUNNING → FINISHED left every earlier index.
    everything = _listed(client, q=token, limit=100)
    assert everything["total"] == 8
    assert set(_ids(everything)) == set().union(*by_status.values())


def test_an_unknown_status_is_a_422_problem(client: FlaskClient) -> None:
    response = client.get(ARENAS, query_string={"status": "SLEEPING"})

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "status" in [error["field"] for error in response.get_json()["errors"]]


def test_search_ignores_case(client: FlaskClient, views: ArenaViews, token: str) -> None:
    mixed = _project(views, f"{token} Agar PLATE")
    accented = _project(views, f"{token} Éclair Dish")
    _project(views, f"{token} Broth")

    for query in (f"{token} agar plate", f"{token.upper()} AGAR", "aGaR pLaTe"):
        page = _listed(client, q=query, limit=100)
        assert mixed in _ids(page), query
        assert all("agar plate" in item["name"].lower() for item in page["items"]), query
    assert _ids(_listed(client, q=f"{token} ÉCLAIR")) == [accented]
    assert _ids(_listed(client, q=f"{token} éclair")) == [accented]


@pytest.mark.parametrize(
    ("query", "literal"),
    [
        ("star*dish", "star*dish"),
        ("*", "*"),
        ("[alpha]", "[alpha]"),
        ("[A", "[a"),
        ("]", "]"),
        ("?", "?"),
        ("ques?ion", "ques?ion"),
        ("\\", "\\"),
        ("^", "^"),
        ("a-z", "a-z"),
    ],
)
def test_search_treats_glob_characters_literally(
    client: FlaskClient, views: ArenaViews, token: str, query: str, literal: str
) -> None:
    names = [
        "Star*Dish",
        "StarXDish",  # what "star*dish" would match if * were a wildcard
        "Bracket[Alpha] Dish",
        "Bracket a Dish",  # what "[alpha]" would match as a character class
        "Ques?ion",
        "Question",  # what "ques?ion" would match if ? were a wildcard
        "Back\\slash",
        "Caret^Dish",
        "Range a-z",
        "Range b",  # what "a-z" never matches, wildcard or not
    ]
    ids = {name: _project(views, f"{token} {name}") for name in names}
    expected = {ids[name] for name in names if literal in name.lower()}
    assert expected, "the fixture names must contain the literal"

    mine = _listed(client, q=f"{token} ", limit=100)
    assert mine["total"] == len(names)
    scoped = [item for item in mine["items"] if literal in item["name"].lower()]
    assert {item["id"] for item in scoped} == expected

    page = _listed(client, q=query, limit=100)
    assert all(literal in item["name"].lower() for item in page["items"]), [
        item["name"] for item in page["items"]
    ]
    if page["total"] <= 100:
        assert expected <= set(_ids(page))
    assert page["total"] >= len(expected)


def test_total_counts_every_match_and_pages_walk_them_newest_first(
    client: FlaskClient, views: ArenaViews, token: str
) -> None:
    start = datetime.now(UTC)
    ids = [
        _project(views, f"{token} paged {n}", created_at=start + timedelta(seconds=n))
        for n in range(5)
    ]
    newest_first = list(reversed(ids))

    pages = [_listed(client, q=token, limit=2, offset=offset) for offset in (0, 2, 4, 6)]

    assert [page["total"] for page in pages] == [5, 5, 5, 5]
    assert [_ids(page) for page in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:5],
        [],
    ]
    assert [(page["limit"], page["offset"]) for page in pages] == [(2, 0), (2, 2), (2, 4), (2, 6)]
    # The same walk with a status filter too.
    pending = _listed(client, q=token, status="PENDING", limit=3, offset=3)
    assert (pending["total"], _ids(pending)) == (5, newest_first[3:5])


# --- single arena: players, feed, version header -------------------------------------------------


def test_players_endpoint_lists_who_is_in_the_arena_with_roles(
    client: FlaskClient, views: ArenaViews, token: str
) -> None:
    events = _stream(f"{token} players")
    arena_id = _apply_all(views, events[:2])  # created, Bob joined

    response = client.get(f"{ARENAS}/{arena_id}/players")

    assert response.status_code == 200
    body = response.get_json()
    assert body["arenaId"] == arena_id
    assert body["version"] == 2
    assert response.headers[VERSION_HEADER] == "2"
    assert [(p["displayName"], p["role"]) for p in body["players"]] == [
        ("Ada", "ADMIN"),
        ("Bob", "PLAYER"),
    ]
    joined = events[1].payload
    assert body["players"][1] == {
        "playerId": joined["playerId"],
        "displayName": "Bob",
        "role": "PLAYER",
        "joinedAt": joined["joinedAt"],
    }

    _apply_all(views, events[2:])  # … Bob left, stopped
    after = client.get(f"{ARENAS}/{arena_id}/players").get_json()
    assert [p["displayName"] for p in after["players"]] == ["Ada"]
    assert after["version"] == len(events)


def test_the_feed_is_bounded_and_newest_first(
    client: FlaskClient, views: ArenaViews, token: str
) -> None:
    events = _stream(f"{token} feed", actions=FEED_LENGTH + 10)
    arena_id = _apply_all(views, events)
    newest_first = list(reversed(events))
    assert len(events) > FEED_LENGTH

    default = client.get(f"{ARENAS}/{arena_id}/events")
    longest = client.get(f"{ARENAS}/{arena_id}/events?limit={FEED_LENGTH}")
    too_long = client.get(f"{ARENAS}/{arena_id}/events?limit={FEED_LENGTH + 1}")

    assert default.status_code == longest.status_code == 200
    assert [e["version"] for e in default.get_json()["events"]] == [
        e.aggregate_version for e in newest_first[:20]
    ]
    feed = longest.get_json()["events"]
    assert len(feed) == FEED_LENGTH
    assert [(e["version"], e["type"], e["eventId"]) for e in feed] == [
        (e.aggregate_version, e.event_type, e.event_id) for e in newest_first[:FEED_LENGTH]
    ]
    assert feed[0] == {
        "version": events[-1].aggregate_version,
        "type": "ArenaStopped",
        "occurredAt": events[-1].occurred_at,
        "eventId": events[-1].event_id,
        "payload": events[-1].payload,
    }
    assert too_long.status_code == 422
    assert longest.get_json()["version"] == len(events)


@pytest.mark.parametrize("suffix", ["", "/players", "/events"])
def test_single_arena_answers_carry_the_body_version_in_a_header(
    client: FlaskClient, views: ArenaViews, token: str, suffix: str
) -> None:
    events = _stream(f"{token} header")
    arena_id = events[0].aggregate_id
    for version, envelope in enumerate(events, start=1):
        apply_event(views, envelope)
        response = client.get(f"{ARENAS}/{arena_id}{suffix}")
        assert response.status_code == 200
        assert response.headers[VERSION_HEADER] == str(response.get_json()["version"])
        assert response.get_json()["version"] == version


# --- minVersion: read-your-writes ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/players", "/events"])
def test_a_min_version_already_reached_answers_at_once(
    client: FlaskClient, settings: Settings, views: ArenaViews, token: str, suffix: str
) -> None:
    arena_id = _project(views, f"{token} reached", "RUNNING")  # version 4
    path = f"{ARENAS}/{arena_id}{suffix}"

    for wanted in (1, 4):
        started = time.monotonic()
        response = client.get(f"{path}?minVersion={wanted}")
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["version"] == 4
        assert response.headers[VERSION_HEADER] == "4"
        # Sooner than the wait a version not yet reached would have cost.
        assert elapsed < settings.read_wait_seconds, f"answered after {elapsed:.2f}s"


@pytest.mark.parametrize("suffix", ["", "/players", "/events"])
def test_a_min_version_not_reached_is_a_503_problem_after_the_wait(
    impatient_client: FlaskClient, settings: Settings, views: ArenaViews, token: str, suffix: str
) -> None:
    arena_id = _project(views, f"{token} behind", "RUNNING")  # version 4

    started = time.monotonic()
    response = impatient_client.get(f"{ARENAS}/{arena_id}{suffix}?minVersion=5")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "/problems/read-model-behind"
    assert problem["status"] == 503
    assert problem["currentVersion"] == 4
    assert response.headers[VERSION_HEADER] == "4"
    assert response.headers["Retry-After"]
    assert SHORT_WAIT_SECONDS <= elapsed < settings.read_wait_seconds  # its own wait, not the usual


def test_a_min_version_of_an_arena_not_yet_in_the_read_model_is_a_503_at_version_0(
    impatient_client: FlaskClient,
) -> None:
    response = impatient_client.get(f"{ARENAS}/{uuid.uuid4()}?minVersion=1")

    assert response.status_code == 503
    assert response.get_json()["type"] == "/problems/read-model-behind"
    assert response.get_json()["currentVersion"] == 0


def test_a_min_version_reached_during_the_wait_answers_the_new_view(
    client: FlaskClient, views: ArenaViews, token: str
) -> None:
    events = _stream(f"{token} arriving")
    arena_id = _apply_all(views, events[:2])
    # The projection lands while the query waits (READ_WAIT_SECONDS).
    late = threading.Timer(0.3, lambda: _apply_all(views, events[2:3]))
    late.start()
    try:
        response = client.get(f"{ARENAS}/{arena_id}?minVersion=3")
    finally:
        late.join()

    assert response.status_code == 200
    assert response.get_json()["version"] == 3
    assert response.get_json()["status"] == "RUNNING"


@pytest.mark.parametrize("query", ["minVersion=0", "minVersion=-1", "minVersion=two"])
def test_a_bad_min_version_is_a_422_problem(client: FlaskClient, query: str) -> None:
    response = client.get(f"{ARENAS}/{uuid.uuid4()}?{query}")

    assert response.status_code == 422
    assert "minVersion" in [error["field"] for error in response.get_json()["errors"]]


# --- stalls ------------------------------------------------------------------------------------


def test_a_stalled_arena_reports_where_it_stalled_and_resumes_after_replay(
    client: FlaskClient, views: ArenaViews, token: str
) -> None:
    events = _stream(f"{token} stalled")
    arena_id = _apply_all(views, events[:2])
    third = json.dumps(events[2].to_dict())
    stall(views, arena_id, version=3, raw_event=third, reason="UnknownEvent: test")
    assert apply_event(views, events[3]) is Outcome.PARKED

    view = client.get(f"{ARENAS}/{arena_id}").get_json()
    listed = _listed(client, q=f"{token} stalled")["items"]

    assert (view["stalled"], view["stalledAtVersion"], view["version"]) == (True, 3, 2)
    assert [(item["stalled"], item["stalledAtVersion"]) for item in listed] == [(True, 3)]
    assert [(s.stalled_at_version, s.reason) for s in views.stalls() if s.arena_id == arena_id] == [
        (3, "UnknownEvent: test")
    ]
    assert [version for _, version in views.parked(arena_id)] == [3, 4]

    result = replay(views, arena_id)

    assert (result.resumed, result.applied) == (True, 2)
    view = client.get(f"{ARENAS}/{arena_id}").get_json()
    assert (view["stalled"], view["stalledAtVersion"], view["version"]) == (False, None, 4)
    assert views.parked(arena_id) == []
    _apply_all(views, events[4:])
    assert client.get(f"{ARENAS}/{arena_id}").get_json()["version"] == len(events)


# --- duplicates and reordering -----------------------------------------------------------------


@pytest.fixture
def reference(views: ArenaViews) -> Iterator[str]:
    """A generation of its own, built by applying streams once and in order."""
    generation = f"ref-{uuid.uuid4().hex[:8]}"
    yield generation
    views.drop(generation)


def _state(redis: Redis, views: ArenaViews, generation: str, arena_id: str) -> dict[str, Any]:
    """Everything the read model keeps about one arena in one generation."""
    keys = views.keys(generation)
    raw_view = redis.get(keys.view(arena_id))
    statuses = {status: redis.zscore(keys.by_status(status), arena_id) for status in PREFIX_ENDING}
    names = [member.decode() for member, _ in redis.zscan_iter(keys.names, match=f"*{arena_id}")]
    return {
        "view": json.loads(raw_view) if raw_view else None,
        "feed": [json.loads(entry) for entry in redis.lrange(keys.feed(arena_id), 0, -1)],
        "by_created": redis.zscore(keys.by_created, arena_id),
        "statuses": statuses,
        "names": names,
        "stall": redis.get(keys.stall(arena_id)),
        "parked": redis.zcard(keys.parked(arena_id)),
    }


def _deliver_with_retries(views: ArenaViews, deliveries: list[EventEnvelope]) -> list[Outcome]:
    """Apply in the given order; what is ahead of its predecessor waits for the next round."""
    outcomes: list[Outcome] = []
    pending = list(deliveries)
    for _ in range(len(deliveries) + 1):
        waiting = []
        for envelope in pending:
            try:
                outcomes.append(apply_event(views, envelope))
            except EventOutOfOrder:
                waiting.append(envelope)
        pending = waiting
        if not pending:
            return outcomes
    raise AssertionError(f"{len(pending)} event(s) never landed")


def _assert_same_as_reference(
    client: FlaskClient, redis: Redis, views: ArenaViews, reference: str, arena_id: str
) -> None:
    expected = _state(redis, views, reference, arena_id)
    assert expected["view"] is not None
    assert _state(redis, views, views.generation(), arena_id) == expected
    served = client.get(f"{ARENAS}/{arena_id}").get_json()
    assert served == expected["view"] | {"stalled": False, "stalledAtVersion": None}


def test_a_stream_applied_twice_gives_the_view_of_applying_it_once(
    app: Flask, client: FlaskClient, views: ArenaViews, token: str, reference: str
) -> None:
    events = _stream(f"{token} twice", actions=3)
    arena_id = _apply_all(views, events, generation=reference)

    each_twice = [apply_event(views, envelope) for envelope in events for _ in range(2)]
    all_again = [apply_event(views, envelope) for envelope in events]

    assert each_twice == [Outcome.APPLIED, Outcome.DUPLICATE] * len(events)
    assert all_again == [Outcome.DUPLICATE] * len(events)
    _assert_same_as_reference(client, components(app).read_model, views, reference, arena_id)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_shuffled_delivery_with_duplicates_gives_the_view_of_applying_it_in_order(
    app: Flask, client: FlaskClient, views: ArenaViews, token: str, reference: str, seed: int
) -> None:
    events = _stream(f"{token} shuffled {seed}", actions=4)
    arena_id = _apply_all(views, events, generation=reference)
    deliveries = events * 2
    random.Random(seed).shuffle(deliveries)

    outcomes = _deliver_with_retries(views, deliveries)

    assert outcomes.count(Outcome.APPLIED) == len(events)
    assert outcomes.count(Outcome.DUPLICATE) == len(events)
    _assert_same_as_reference(client, components(app).read_model, views, reference, arena_id)


def test_concurrent_shuffled_deliveries_apply_each_event_exactly_once(
    app: Flask, client: FlaskClient, views: ArenaViews, token: str, reference: str
) -> None:
    """Four appliers, like four workers, each with its own shuffled copy of the stream."""
    events = _stream(f"{token} concurrent", actions=6)
    arena_id = _apply_all(views, events, generation=reference)

    def deliver(seed: int) -> list[Outcome]:
        copy = list(events)
        random.Random(seed).shuffle(copy)
        return _deliver_with_retries(views, copy)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(deliver, range(4)))

    outcomes = [outcome for result in results for outcome in result]
    assert outcomes.count(Outcome.APPLIED) == len(events)
    assert outcomes.count(Outcome.DUPLICATE) == 3 * len(events)
    _assert_same_as_reference(client, components(app).read_model, views, reference, arena_id)
