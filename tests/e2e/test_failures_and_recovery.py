"""Failures in the middle of a burst of commands: a service away or restarted, processes killed.

(a) The read-model Redis is stopped (a clean `shutdown`, `scripts/services.sh stop-readmodel`)
    for ~20 s while commands keep arriving. Commands never touch it, so they all succeed, and
    queries answer a 503 problem meanwhile. Projection tasks retry with backoff. That Redis keeps
    an append-only file, so it comes back with every view it had, and the pipeline catches up by
    itself: `flask verify` is clean without any operator action.
(b) The Celery worker node (with its pool) and `flask consume` are killed with SIGKILL mid-burst
    and started again at once, as a supervisor would. RabbitMQ hands the tasks the dead worker
    held (late acks) to the new one as soon as its connection closes, and uncommitted Kafka
    records are consumed again; nothing is lost and `flask verify` is clean.
(c) RabbitMQ itself is restarted mid-burst: its durable queues and persistent messages survive,
    the consumer waits for it before sending more (committing nothing past what it confirmed),
    the workers reconnect, and `flask verify` is clean.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.messaging.queues import queue_depths
from arena.readmodel.store import ArenaViews
from arena.settings import Settings
from harness.arenas import TICKING, ticks_recorded
from harness.pipeline import Pipeline, running_pipeline
from harness.processes import ROOT
from harness.waiting import wait_until
from tasks.projections import MAX_RETRY_SECONDS
from tests.support.api import arena_path, create_arena, drive
from tests.support.load import CommandLoad
from tests.support.ticks import act, spawn, written_board

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 20
# Tasks that failed through the outage retry every 15-30 s by then, and an arena's later events
# retry on their own schedules after their predecessor lands.
OUTAGE_RECOVERY_WAIT_SECONDS = 150
CATCH_UP_SECONDS = 30  # draining the backlog built up meanwhile, on a small, busy machine
# Covers process start-up (workers, beat, the consumer joining its group) on a small machine.
DEADLINE_SECONDS = 60
SERVICES = ROOT / "scripts" / "services.sh"


@pytest.fixture(scope="module")
def pipeline(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """A projection worker node (two pool processes), a relay worker, beat and the consumer, as
    `make run` splits them: freezing the projection worker leaves events flowing to Kafka."""
    logs = tmp_path_factory.mktemp("failures-logs")
    with running_pipeline(settings, logs, concurrency=2, relay_workers=1) as started:
        yield started
        # A recovery that failed here leaves views behind (stalls, tasks still retrying), and
        # every later `flask verify` of the run would report them: rebuild from the log.
        repaired = started.cli("projections", "rebuild")
        assert repaired.returncode == 0, f"{repaired.stdout}\n{repaired.stderr}"


@pytest.fixture
def views(app: Flask) -> ArenaViews:
    return components(app).views


def _services(*command: str) -> str:
    done = subprocess.run(
        ["bash", str(SERVICES), *command],
        cwd=ROOT,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return done.stdout


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
    worker held come back from RabbitMQ at once; the events behind them land on their next
    retry (at most MAX_RETRY_SECONDS away); then the backlog drains.
    """
    return settings.kafka_session_timeout_seconds + MAX_RETRY_SECONDS + CATCH_UP_SECONDS


def _assert_converged(
    client: FlaskClient, load: CommandLoad, pipeline: Pipeline, since: float, fault: str
) -> None:
    """`flask verify` is clean within `_convergence_deadline` of the fault's end, and every arena
    shows the version its last command answered."""
    deadline = _convergence_deadline(pipeline.settings)
    result = pipeline.verify(deadline - (time.monotonic() - since))
    assert result.returncode == 0, (
        f"the read model did not converge within {deadline}s of {fault}:\n"
        f"{result.stdout[-3000:]}\n{pipeline.log_lines_about(result.stdout)}\n"
        f"logs in {pipeline.logs}"
    )
    _assert_every_arena_at_its_version(client, load)


def _waiting_tasks(app: Flask, queue: str) -> int:
    [depth] = queue_depths(components(app).celery, [queue])
    return depth.waiting


def _held_tasks(queue: str) -> int:
    """Messages of the queue delivered to a worker and not acked (rabbitmqctl; a second or so)."""
    listed = _services("rabbitmqctl", "-q", "list_queues", "name", "messages_unacknowledged")
    held = dict(line.split("\t") for line in listed.splitlines() if "\t" in line)
    return int(held.get(queue, 0))


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
    queue = pipeline.settings.celery_queue
    try:
        _flowing(load, views, pipeline, commands=150)
        # Kill the worker with projections in hand: freeze it until RabbitMQ counts tasks it
        # holds unacked. Beat is frozen first and the queue drained of what it sent, so what
        # the worker then takes are the consumer's projection tasks, not tick scheduling.
        pipeline.pause("beat")
        try:
            wait_until(
                lambda: _waiting_tasks(app, queue) == 0,
                deadline_seconds=30,
                what="beat's tasks taken from the queue",
            )
            pipeline.pause("worker")
            try:
                held = wait_until(
                    lambda: _held_tasks(queue),
                    deadline_seconds=60,
                    interval=0.5,
                    what="the frozen worker holding projection tasks",
                )
            except AssertionError:
                pipeline.resume("worker")  # the module's other tests need it
                raise
            pipeline.kill("worker")  # SIGKILL ends the frozen group: it never acks what it holds
        finally:
            pipeline.resume("beat")
        pipeline.kill("consumer")
        killed_at = time.monotonic()
        _more_commands(load, 60)  # commands are accepted while they are down
        pipeline.start("worker")
        pipeline.start("consumer")
        _more_commands(load, 150)
    finally:
        load.stop()

    assert held >= 1, "the worker held no task when it was killed"
    assert load.failures == [], load.failures[:5]
    _assert_converged(
        client, load, pipeline, killed_at, f"the kill of a worker holding {held} task(s)"
    )


def test_a_broker_restart_mid_burst_loses_nothing(
    app: Flask, client: FlaskClient, views: ArenaViews, pipeline: Pipeline
) -> None:
    load = CommandLoad(app, name=f"broker {uuid.uuid4().hex[:8]}", threads=2, pause_seconds=0.02)
    load.start()
    try:
        _flowing(load, views, pipeline, commands=100)
        _services("stop-rabbitmq")
        try:
            _more_commands(load, 40)  # commands write PostgreSQL only
        finally:
            _services("start-rabbitmq")
        restarted_at = time.monotonic()
        _more_commands(load, 100)
    finally:
        load.stop()

    assert load.failures == [], load.failures[:5]
    pipeline.assert_running()  # workers, beat and the consumer rode it out
    _assert_converged(client, load, pipeline, restarted_at, "RabbitMQ's restart")


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

    # A projection task the killed worker held comes back from the broker.
    def projected() -> bool:
        pipeline.assert_running()
        return all(
            client.get(arena_path(a)).get_json()["version"] >= version
            for a, version in versions.items()
        )

    wait_until(
        projected,
        deadline_seconds=MAX_RETRY_SECONDS + CATCH_UP_SECONDS,
        what=f"the paused arenas projected (logs in {pipeline.logs})",
    )
    for arena_id in versions:
        ticks = ticks_recorded(sql, arena_id)
        assert ticks == list(range(1, len(ticks) + 1)), "a tick lost or made twice"
        board = client.get(arena_path(arena_id, "/board")).get_json()
        assert (board["tick"], board["boardHash"]) == written_board(sql, arena_id)
