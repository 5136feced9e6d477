"""Failures in the middle of a burst of commands: the read model's Redis away, processes killed.

(a) The read-model Redis is stopped (a clean `shutdown`, `scripts/services.sh stop-readmodel`)
    for ~20 s while commands keep arriving. Commands never touch it, so they all succeed, and
    queries answer a 503 problem meanwhile. Projection tasks retry with backoff. That Redis keeps
    an append-only file (since "Redis servers keep an append-only file"; before, it ran with
    `--appendonly no` and came back empty, and only `flask projections rebuild` could restore the
    views), so it comes back with every view it had, and the pipeline catches up by itself:
    `flask verify` is clean without any operator action.
(b) The Celery worker node (with its pool) and `flask consume` are killed with SIGKILL mid-burst
    and started again at once, as a supervisor would. Unacked tasks come back from the broker
    (`task_acks_late`, CELERY_VISIBILITY_TIMEOUT_SECONDS=10 here) and uncommitted Kafka records
    are consumed again; nothing is lost and `flask verify` is clean.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from arena.bootstrap import components
from arena.domain.config import ArenaConfig
from arena.domain.envelope import EventEnvelope
from arena.domain.model import Arena
from arena.messaging.celery import (
    PROJECT_TASK,
    RESEND_PROJECTIONS_EVERY_SECONDS,
    UNACKED_SWEEP_SECONDS,
)
from arena.messaging.in_flight import ProjectionsInFlight
from arena.messaging.records import ReceivedRecord
from arena.readmodel.store import ArenaViews
from arena.settings import Settings
from tasks.projections import longest_retry_wait
from tests.support.api import arena_path, create_arena, drive
from tests.support.pipeline import (
    ROOT,
    CommandLoad,
    Pipeline,
    private_broker,
    running_pipeline,
)
from tests.support.ticks import TICKING, act, spawn, ticks_recorded, written_board
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

VISIBILITY_TIMEOUT_SECONDS = 10
RESEND_AFTER_SECONDS = 20
OUTAGE_SECONDS = 20
# Tasks that failed through the outage retry every 2.5-5 s by then (half the visibility timeout at
# most), and an arena's later events retry on their own schedules after their predecessor lands.
OUTAGE_RECOVERY_WAIT_SECONDS = 150
CATCH_UP_SECONDS = 30  # draining the backlog built up meanwhile, on a small, busy machine
# Covers process start-up (workers, beat, the consumer joining its group) on a small machine.
DEADLINE_SECONDS = 60
SERVICES = ROOT / "scripts" / "services.sh"


@pytest.fixture(scope="module")
def pipeline(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """One worker node on a broker database of its own, with a 10 s visibility timeout."""
    logs = tmp_path_factory.mktemp("failures-logs")
    with (
        private_broker(settings) as broker_url,
        running_pipeline(
            settings,
            logs,
            concurrency=2,
            CELERY_BROKER_URL=broker_url,
            CELERY_VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY_TIMEOUT_SECONDS),
            PROJECTION_RESEND_AFTER_SECONDS=str(RESEND_AFTER_SECONDS),
        ) as started,
    ):
        yield started
        # A recovery that failed here leaves views behind (tasks still held by the broker, stalls),
        # and every later `flask verify` of the run would report them: rebuild from the log.
        repaired = started.cli("projections", "rebuild")
        assert repaired.returncode == 0, f"{repaired.stdout}\n{repaired.stderr}"


@pytest.fixture
def views(app: Flask) -> ArenaViews:
    return components(app).views


def _services(command: str) -> None:
    subprocess.run(["bash", str(SERVICES), command], cwd=ROOT, check=True, timeout=120)


def _flowing(load: CommandLoad, views: ArenaViews, pipeline: Pipeline, commands: int) -> None:
    """Wait until the load has sent `commands` commands and some of its arenas are projected."""

    def under_way() -> bool:
        pipeline.assert_running()
        projected = [arena_id for arena_id in load.versions() if views.get(arena_id)]
        return load.commands >= commands and len(projected) >= 3

    wait_until(
        under_way,
        deadline_seconds=DEADLINE_SECONDS,
        what=f"the burst under way ({load.commands} commands)",
    )


def _more_commands(load: CommandLoad, count: int) -> None:
    target = load.commands + count
    wait_until(lambda: load.commands >= target, deadline_seconds=60, what=f"{count} more commands")


def _assert_every_arena_at_its_version(client: FlaskClient, load: CommandLoad) -> None:
    for arena_id, version in load.versions().items():
        view = client.get(f"/api/v1/arenas/{arena_id}").get_json()
        assert (view["version"], view["stalled"]) == (version, False), arena_id


def _convergence_deadline(settings: Settings) -> float:
    """The bound on recovery from killing the worker and the consumer.

    The dead consumer's partitions come back when its session times out; the tasks the dead
    worker held come back after the visibility timeout, at the next sweep, and one it had taken
    off the queue but not yet recorded as unacked is sent again from the in-flight ledger; the
    events behind them land on their next retry; then the backlog drains.
    """
    return (
        settings.kafka_session_timeout_seconds
        + max(
            VISIBILITY_TIMEOUT_SECONDS + UNACKED_SWEEP_SECONDS,
            RESEND_AFTER_SECONDS + RESEND_PROJECTIONS_EVERY_SECONDS,
        )
        + longest_retry_wait(VISIBILITY_TIMEOUT_SECONDS)
        + CATCH_UP_SECONDS
    )


def _broker(pipeline: Pipeline) -> Redis:
    """The pipeline's own database on the Celery broker's Redis."""
    parts = urlsplit(pipeline.env["CELERY_BROKER_URL"])
    return Redis(host=parts.hostname, port=parts.port, db=int(parts.path.strip("/") or 0))


def _projection_tasks(broker: Redis, queue: str) -> tuple[int, int]:
    """Projection tasks (taken by a worker and not acked, waiting in the queue)."""
    task = PROJECT_TASK.encode()
    held = sum(task in message for message in broker.hvals("unacked"))
    waiting = sum(task in message for message in broker.lrange(queue, 0, -1))
    return held, waiting


def _freeze_holding_projections(pipeline: Pipeline, broker: Redis, queue: str) -> int:
    """Freeze the worker at a moment it holds projection tasks while more wait in the queue.

    Lanes keep the backlog small and tasks short, so a worker seen holding tasks may have acked
    them by the time it is killed: look again once it is frozen, and try again if it had."""
    held = 0

    def frozen_holding() -> bool:
        nonlocal held
        if not all(_projection_tasks(broker, queue)):
            return False
        pipeline.pause("worker")
        held, _ = _projection_tasks(broker, queue)  # the only worker on this broker database
        if held:
            return True
        pipeline.resume("worker")
        return False

    wait_until(
        frozen_holding,
        deadline_seconds=30,
        interval=0.01,
        what="the worker frozen while busy with a backlog of projection tasks",
    )
    return held


def _stuck_broker_tasks(pipeline: Pipeline) -> int:
    """Tasks taken from the broker longer than the visibility timeout ago and not acked."""
    broker = _broker(pipeline)
    try:
        return broker.zcount("unacked_index", 0, time.time() - VISIBILITY_TIMEOUT_SECONDS)
    finally:
        broker.close()


def test_a_read_model_outage_loses_nothing_and_the_views_catch_up_by_themselves(
    app: Flask, client: FlaskClient, views: ArenaViews, pipeline: Pipeline
) -> None:
    # Many arenas, each a few commands a minute: the many clients of a real outage.
    load = CommandLoad(
        app,
        name=f"outage {uuid.uuid4().hex[:8]}",
        threads=2,
        working_set=25,
        pause_seconds=0.2,
    ).start()
    try:
        _flowing(load, views, pipeline, commands=80)
        _services("stop-readmodel")
        try:
            before = load.commands
            # Queries say the read model is away (a 503 problem), never a 500.
            listed = client.get("/api/v1/arenas")
            assert listed.status_code == 503, listed.get_data(as_text=True)
            assert listed.mimetype == "application/problem+json"
            time.sleep(OUTAGE_SECONDS)  # the outage is the scenario; commands keep arriving
            during = load.commands - before
        finally:
            _services("start-readmodel")
        _more_commands(load, 40)
    finally:
        load.stop()

    assert load.failures == [], load.failures[:5]
    assert during > 50, f"only {during} commands went through during the outage"
    pipeline.assert_running()
    # No rebuild, no replay: the retrying projection tasks alone must bring every view back.
    pipeline.assert_verified(OUTAGE_RECOVERY_WAIT_SECONDS)
    _assert_every_arena_at_its_version(client, load)
    assert [s.arena_id for s in views.stalls() if s.arena_id in load.versions()] == []


def test_a_worker_and_the_consumer_killed_mid_burst_lose_nothing(
    app: Flask, client: FlaskClient, views: ArenaViews, pipeline: Pipeline
) -> None:
    """The only worker node and the consumer die with SIGKILL and are started again at once.

    Every view must be complete within `_convergence_deadline` of the kill.
    """
    load = CommandLoad(app, name=f"killed {uuid.uuid4().hex[:8]}", threads=3, pause_seconds=0.01)
    load.start()
    broker, queue = _broker(pipeline), pipeline.settings.celery_queue
    try:
        _flowing(load, views, pipeline, commands=150)
        # Kill the worker with projections in hand: freeze it until a backlog builds (the
        # consumer keeps one task per partition in flight, each gathering more events while it
        # waits), let it go, and kill it while projection tasks wait in the queue, so its
        # prefetch slots are full of them.
        pipeline.pause("worker")
        try:
            wait_until(
                lambda: broker.llen(queue) >= 2,
                deadline_seconds=30,
                what="a backlog in the broker",
            )
        finally:
            pipeline.resume("worker")
        held = _freeze_holding_projections(pipeline, broker, queue)
        pipeline.kill("worker")  # SIGKILL ends the frozen group: it never acks what it holds
        pipeline.kill("consumer")
        killed_at = time.monotonic()
        _more_commands(load, 60)  # commands are accepted while they are down
        pipeline.start("worker")
        pipeline.start("consumer")
        _more_commands(load, 150)
    finally:
        load.stop()
        broker.close()

    assert held >= 1, "the worker held no projection task when it was killed"
    assert load.failures == [], load.failures[:5]
    deadline = _convergence_deadline(pipeline.settings)
    result = pipeline.verify(deadline - (time.monotonic() - killed_at))
    assert result.returncode == 0, (
        f"the read model did not converge within {deadline}s of the kill of a worker holding "
        f"{held} task(s); {_stuck_broker_tasks(pipeline)} task(s) are still unacked in the "
        f"broker more than {VISIBILITY_TIMEOUT_SECONDS}s (the visibility timeout) after a "
        "worker took them:\n"
        f"{result.stdout[-3000:]}\n{pipeline.log_lines_about(result.stdout)}\n"
        f"logs in {pipeline.logs}"
    )
    _assert_every_arena_at_its_version(client, load)


def test_a_projection_task_the_broker_lost_is_sent_again(
    views: ArenaViews, pipeline: Pipeline
) -> None:
    """As when a worker dies between taking a task off the queue and recording it as unacked:
    the in-flight ledger has the task, the broker has nothing, and Kafka's offset is committed."""
    now = datetime.now(UTC)
    arena, _ = Arena.create(
        name=f"Lost {uuid.uuid4().hex[:6]}",
        creator_display_name="Ada",
        config=ArenaConfig(),
        now=now,
    )
    [created] = [
        EventEnvelope.wrap(event, correlation_id="lost-task", causation_id="lost-task")
        for event in arena.collect_events()
    ]
    received = ReceivedRecord(
        value=json.dumps(created.to_dict()),
        key=created.aggregate_id,
        topic=pipeline.settings.kafka_events_topic,
        partition=0,
        offset=0,
    )
    broker = _broker(pipeline)
    in_flight = ProjectionsInFlight(
        broker, pipeline.settings.celery_queue, resend_after_seconds=RESEND_AFTER_SECONDS
    )
    task_id = str(uuid.uuid4())
    try:
        in_flight.record(task_id, [dataclasses.asdict(received)])  # and never sent

        wait_until(
            lambda: views.get(created.aggregate_id) is not None,
            deadline_seconds=RESEND_AFTER_SECONDS + RESEND_PROJECTIONS_EVERY_SECONDS + 15,
            what=f"the lost task's arena projected (logs in {pipeline.logs})",
        )
        ledger = f"{pipeline.settings.celery_queue}:projections-in-flight"
        wait_until(
            lambda: broker.zscore(ledger, task_id) is None,
            deadline_seconds=10,
            what="the task's in-flight entry removed once it was done",
        )
    finally:
        broker.close()
    assert views.get(created.aggregate_id)["version"] == 1


def test_a_worker_killed_while_arenas_tick_loses_no_tick_and_makes_none_twice(
    client: FlaskClient, sql: psycopg.Connection, pipeline: Pipeline
) -> None:
    arenas = []
    for number in range(3):
        arena_id, admin = create_arena(client, name=f"Killed dish {number}", config=TICKING)
        drive(client, arena_id, admin, "start")
        act(client, arena_id, admin.token, spawn("BACTERIA", 3 + number, 3))
        arenas.append((arena_id, admin))

    def ticks_beyond(marks: dict[str, int], more: int) -> bool:
        pipeline.assert_running()
        return all(written_board(sql, a)[0] >= marks[a] + more for a, _ in arenas if a in marks)

    def written_ticks() -> dict[str, int]:
        return {
            arena_id: tick
            for arena_id, tick in sql.execute(
                "SELECT arena_id::text, tick FROM arena_boards WHERE arena_id = ANY(%s::uuid[])",
                ([a for a, _ in arenas],),
            ).fetchall()
        }

    wait_until(
        lambda: len(written_ticks()) == 3 and ticks_beyond(written_ticks(), 0),
        deadline_seconds=DEADLINE_SECONDS,
        what="three arenas ticking",
    )
    before = written_ticks()
    pipeline.kill("worker")  # SIGKILL: whatever tick (or projection) it was making is cut off
    pipeline.start("worker")
    wait_until(
        lambda: ticks_beyond(before, 20),
        deadline_seconds=DEADLINE_SECONDS,
        what=f"20 more ticks each after the kill (logs in {pipeline.logs})",
    )
    versions = {}
    for arena_id, admin in arenas:
        paused = client.post(arena_path(arena_id, "/pause"), headers=admin.auth)
        assert paused.status_code == 200
        versions[arena_id] = paused.get_json()["version"]

    # A projection task the killed worker held comes back through the broker or the resend.
    def projected() -> bool:
        pipeline.assert_running()
        return all(
            client.get(arena_path(a)).get_json()["version"] >= version
            for a, version in versions.items()
        )

    wait_until(
        projected,
        deadline_seconds=RESEND_AFTER_SECONDS + RESEND_PROJECTIONS_EVERY_SECONDS + CATCH_UP_SECONDS,
        what=f"the paused arenas projected (logs in {pipeline.logs})",
    )
    for arena_id in versions:
        ticks = ticks_recorded(sql, arena_id)
        assert ticks == list(range(1, len(ticks) + 1)), "a tick lost or made twice"
        board = client.get(arena_path(arena_id, "/board")).get_json()
        assert (board["tick"], board["boardHash"]) == written_board(sql, arena_id)
