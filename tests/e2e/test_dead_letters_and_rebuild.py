"""Dead letters and stalls, replay after a fix, and a rebuild while queries keep coming.

A synthetic arena's stream (real envelopes, versions 1..5, version 3 of a type no projection
knows) goes straight to the run's events topic, as the relay would have published it. The real
pipeline dead-letters version 3 with everything an operator needs, stalls the arena there and
parks 4 and 5, while API-created arenas keep flowing. A fix (a handler for the type) and
`replay()` (what `flask dlq replay` runs) bring it to version 5.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.domain import events
from arena.domain.events import DomainEvent
from arena.readmodel import projection
from arena.readmodel.projection import Handled
from arena.readmodel.rebuild import rebuild
from arena.readmodel.replay import replay
from arena.readmodel.store import ArenaViews
from arena.readmodel.view import ArenaView
from arena.settings import Settings
from harness.pipeline import Pipeline, produce, running_pipeline
from harness.poison import UNKNOWN_TYPE, envelope_of, poisoned_arena
from harness.waiting import wait_until
from tests.support.api import arena_path, create_arena, drive, join
from tests.support.dead_letters import dead_letters_for
from tests.support.load import CommandLoad

pytestmark = pytest.mark.e2e

# Covers process start-up (worker, beat, the consumer joining its group) on a small machine.
DEADLINE_SECONDS = 60
VERIFY_WAIT_SECONDS = 90


@pytest.fixture(scope="module")
def pipeline(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    logs = tmp_path_factory.mktemp("dead-letters-logs")
    with running_pipeline(settings, logs, concurrency=2) as started:
        yield started


@pytest.fixture
def views(app: Flask) -> ArenaViews:
    return components(app).views


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ArenaRenamed(DomainEvent):
    """The fix, part one: the catalog learns the new event type."""

    name: str


def _renamed(view: ArenaView | None, event: ArenaRenamed) -> Handled:
    """The fix, part two: the projection learns to apply it."""
    assert view is not None
    return Handled(dataclasses.replace(view, name=event.name))


def _view(client: FlaskClient, arena_id: str) -> dict[str, Any] | None:
    response = client.get(arena_path(arena_id))
    return response.get_json() if response.status_code == 200 else None


def test_a_poison_event_stalls_only_its_arena_until_a_fix_is_replayed(
    client: FlaskClient,
    settings: Settings,
    views: ArenaViews,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    healthy = [create_arena(client, name=f"Healthy {n}") for n in range(3)]
    arena, admin, stream = poisoned_arena()
    arena_id = arena.id

    produced = produce(settings, stream)

    # Other arenas keep flowing meanwhile: joined, started and paused after the poison.
    expected: dict[str, int] = {}
    for healthy_id, healthy_admin in healthy:
        join(client, healthy_id, "Bob")
        drive(client, healthy_id, healthy_admin, "start", "pause")
        expected[healthy_id] = 4

    def healthy_caught_up() -> bool:
        pipeline.assert_running()
        return all(
            (view := _view(client, healthy_id)) is not None and view["version"] == version
            for healthy_id, version in expected.items()
        )

    wait_until(
        healthy_caught_up,
        deadline_seconds=DEADLINE_SECONDS,
        what=f"the healthy arenas at version 4 (logs in {pipeline.logs})",
    )

    # The DLQ record carries everything an operator needs.
    (record,) = dead_letters_for(
        settings, arena_id, count=1, deadline_seconds=DEADLINE_SECONDS, pipeline=pipeline
    )
    poison = produced[2]
    assert record["originalTopic"] == settings.kafka_events_topic
    assert (record["originalPartition"], record["originalOffset"]) == (
        poison.partition,
        poison.offset,
    )
    assert record["key"] == arena_id
    assert record["value"] == poison.value
    assert record["errorClass"] == "UnknownEvent"
    assert UNKNOWN_TYPE in record["errorMessage"]
    assert record["traceback"].startswith("Traceback")
    assert "UnknownEvent" in record["traceback"]
    assert record["attempts"] == 1
    first = datetime.fromisoformat(record["firstFailureAt"])
    last = datetime.fromisoformat(record["lastFailureAt"])
    assert first <= last <= datetime.now(UTC)

    # Stalled at 3, with 3, 4 and 5 parked behind it; the view stays at 2.
    def stalled_with_all_parked() -> bool:
        pipeline.assert_running()
        return [version for _, version in views.parked(arena_id)] == [3, 4, 5]

    wait_until(
        stalled_with_all_parked,
        deadline_seconds=DEADLINE_SECONDS,
        what=f"versions 3, 4 and 5 parked (logs in {pipeline.logs})",
    )
    view = _view(client, arena_id)
    assert view is not None
    assert (view["version"], view["stalled"], view["stalledAtVersion"]) == (2, True, 3)
    assert [p["displayName"] for p in view["players"]] == ["Ada", "Bob"]

    listing = pipeline.cli("dlq", "list", "--arena", arena_id, timeout=60)
    assert listing.returncode == 0, listing.stderr
    lines = [line.strip() for line in listing.stdout.splitlines()]
    assert lines[0].startswith(f"arena {arena_id}: stalled at version 3 since ")
    assert lines[1] == f"reason: UnknownEvent: unknown event type {UNKNOWN_TYPE!r}"
    assert lines[2:] == [
        f"parked v3: {UNKNOWN_TYPE} (event {stream[2].event_id})",
        f"parked v4: ArenaStarted (event {stream[3].event_id})",
        f"parked v5: ArenaPaused (event {stream[4].event_id})",
        "1 stalled arena(s)",
    ]

    # Deploy the fix (here, in this process) and replay, as `flask dlq replay` does.
    monkeypatch.setitem(events.EVENT_TYPES, UNKNOWN_TYPE, ArenaRenamed)
    monkeypatch.setitem(projection.EVENT_HANDLERS, ArenaRenamed, _renamed)
    result = replay(views, arena_id)

    assert (result.resumed, result.applied) == (True, 3)
    view = _view(client, arena_id)
    assert view is not None
    assert (view["version"], view["stalled"], view["stalledAtVersion"]) == (5, False, None)
    assert (view["name"], view["status"]) == ("Renamed dish", "PAUSED")
    assert views.parked(arena_id) == []
    after = pipeline.cli("dlq", "list", "--arena", arena_id, timeout=60)
    assert after.stdout.strip() == "0 stalled arena(s)"

    # And it flows again: the pipeline's workers apply its next event.
    arena.transition("resume", admin, datetime.now(UTC))
    (resumed,) = arena.collect_events()
    produce(settings, [dataclasses.replace(envelope_of(resumed), aggregate_version=6)])

    def at_version_6() -> bool:
        pipeline.assert_running()
        return (view := _view(client, arena_id)) is not None and view["version"] == 6

    wait_until(at_version_6, deadline_seconds=DEADLINE_SECONDS, what="version 6 applied")
    assert _view(client, arena_id)["status"] == "RUNNING"


class Hammer:
    """A reader thread asking, as fast as it can, for single views and the searched list.

    Every answer about the arenas it watches must be a 200 with the view, listed, and no
    view's version may ever go back.
    """

    def __init__(self, app: Flask, arena_ids: list[str], query: str) -> None:
        self._client = app.test_client()
        self._ids = arena_ids
        self._query = query
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hammer", daemon=True)
        self.requests = 0
        self.failures: list[str] = []
        self._seen: dict[str, int] = {}

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            for arena_id in self._ids:
                response = self._client.get(arena_path(arena_id))
                self.requests += 1
                if response.status_code == 200:
                    self._saw(arena_id, response.get_json()["version"])
                else:
                    self.failures.append(
                        f"{arena_id}: {response.status_code} {response.get_data()[:200]!r}"
                    )
            listed = self._client.get(
                "/api/v1/arenas", query_string={"q": self._query, "limit": 100}
            )
            self.requests += 1
            if listed.status_code != 200:
                self.failures.append(f"list: {listed.status_code} {listed.get_data()[:200]!r}")
                continue
            found = {item["id"]: item["version"] for item in listed.get_json()["items"]}
            for arena_id in self._ids:
                if arena_id not in found:
                    self.failures.append(f"{arena_id} not listed")
                else:
                    self._saw(arena_id, found[arena_id])

    def _saw(self, arena_id: str, version: int) -> None:
        if version < self._seen.get(arena_id, 0):
            self.failures.append(f"{arena_id} went back from v{self._seen[arena_id]} to v{version}")
        self._seen[arena_id] = max(version, self._seen.get(arena_id, 0))


def _projected(views: ArenaViews, pipeline: Pipeline, wanted: dict[str, int]) -> None:
    def done() -> bool:
        pipeline.assert_running()
        return all(
            (view := views.get(arena_id)) is not None and view["version"] == version
            for arena_id, version in wanted.items()
        )

    wait_until(done, deadline_seconds=DEADLINE_SECONDS, what=f"{len(wanted)} arenas projected")


def test_queries_keep_answering_while_the_read_model_is_rebuilt(
    app: Flask, views: ArenaViews, pipeline: Pipeline
) -> None:
    """`flask projections rebuild` while a reader hammers some arenas and writers write others."""
    name = f"rebuilt {uuid.uuid4().hex[:8]}"
    settled = CommandLoad(app, name=name, threads=2, arenas=8).run()
    assert settled.failures == []
    wanted = settled.versions()
    _projected(views, pipeline, wanted)
    before = views.generation()
    # Commands keep coming during the rebuild too, on arenas of their own.
    writes = CommandLoad(app, name=f"writes {uuid.uuid4().hex[:8]}", threads=2, pause_seconds=0.02)

    with Hammer(app, list(wanted), name) as hammer:
        wait_until(lambda: hammer.requests > 50, deadline_seconds=30, what="queries running")
        writes.start()
        try:
            wait_until(lambda: writes.commands > 40, deadline_seconds=30, what="writes running")
            rebuilt = pipeline.cli("projections", "rebuild")
            target = writes.commands + 20
            wait_until(lambda: writes.commands >= target, deadline_seconds=30, what="more writes")
        finally:
            writes.stop()
        queried = hammer.requests

    assert rebuilt.returncode == 0, f"{rebuilt.stdout}\n{rebuilt.stderr}"
    assert "switched readers from generation" in rebuilt.stdout
    assert views.generation() != before
    assert queried > 100, f"only {queried} queries"
    assert writes.failures == []
    assert hammer.failures == [], hammer.failures[:10]
    assert {arena_id: views.get(arena_id)["version"] for arena_id in wanted} == wanted
    pipeline.assert_verified(VERIFY_WAIT_SECONDS)


def test_a_rebuild_beside_ticking_arenas_never_shows_readers_less(
    app: Flask, client: FlaskClient, views: ArenaViews, pipeline: Pipeline
) -> None:
    """Ticking arenas publish all the time, also for arenas the replay has not reached yet,
    whose live events the new generation cannot take: the switch must wait for them."""
    name = f"ticking {uuid.uuid4().hex[:8]}"
    config = {"width": 8, "height": 8, "tickMillis": 100}
    opened = [create_arena(client, name=name, config=config) for _ in range(4)]
    for arena_id, admin in opened:
        drive(client, arena_id, admin, "start")

    def all_ticking() -> bool:
        pipeline.assert_running()
        found = [views.get(arena_id) for arena_id, _ in opened]
        return all(view is not None and view["tick"] >= 3 for view in found)

    wait_until(all_ticking, deadline_seconds=DEADLINE_SECONDS, what="four arenas ticking")
    try:
        with Hammer(app, [arena_id for arena_id, _ in opened], name) as hammer:
            wait_until(lambda: hammer.requests > 50, deadline_seconds=30, what="queries running")
            rebuilt = pipeline.cli("projections", "rebuild")
            seen = hammer.requests
            wait_until(lambda: hammer.requests > seen + 50, deadline_seconds=30, what="queries")
    finally:
        for arena_id, admin in opened:
            drive(client, arena_id, admin, "stop")
    assert rebuilt.returncode == 0, f"{rebuilt.stdout}\n{rebuilt.stderr}"
    assert hammer.failures == [], hammer.failures[:10]


def test_a_rebuild_never_shows_readers_less_than_they_already_saw(
    app: Flask,
    client: FlaskClient,
    settings: Settings,
    views: ArenaViews,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Commands that land while the log is replayed must not vanish at the switch.

    `rebuild()` (what `flask projections rebuild` runs) replays the topic up to the end offsets
    it read at the start, switches readers, and only then applies what was published meanwhile.
    With any real topic the first replay takes a while and commands keep landing, and live
    projections show them to readers in the old generation. Here one such command lands,
    deterministically, during the replay (`switch_to` is wrapped to wait for it), and readers
    are asked right after the switch: they must still see what they saw just before.
    """
    arena_id, _ = create_arena(client, name="Before the rebuild")
    _projected(views, pipeline, {arena_id: 1})
    landed: dict[str, dict[str, Any]] = {}
    fresh: list[str] = []
    real_switch = views.switch_to

    def switch_after_commands_landed(generation: str) -> str:
        # Published after the replay's end offsets were read; projected live, in the old one.
        fresh_id, _ = create_arena(client, name="During the rebuild")
        fresh.append(fresh_id)
        joined = join(client, arena_id, "Bob")
        assert joined.role == "PLAYER"
        _projected(views, pipeline, {fresh_id: 1, arena_id: 2})
        landed["before"] = {i: _view(client, i) for i in (arena_id, fresh_id)}
        previous = real_switch(generation)
        landed["after"] = {i: _view(client, i) for i in (arena_id, fresh_id)}
        return previous

    monkeypatch.setattr(views, "switch_to", switch_after_commands_landed)
    summary = rebuild(views, settings)

    assert summary.previous_generation != summary.generation
    versions = {
        moment: {i: view["version"] if view else None for i, view in seen.items()}
        for moment, seen in landed.items()
    }
    assert versions["before"] == {arena_id: 2, fresh[0]: 1}
    assert versions["after"] == versions["before"], (
        "right after the switch readers saw less than right before it: "
        f"before {versions['before']}, after {versions['after']}"
    )
