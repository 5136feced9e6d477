"""The relay benchmark's latency rounds: commands through the API (in-process) at a steady rate
while a real Celery worker and beat relay them, each event timed from its POST's return to its
arrival in Kafka, once with the nudge and once with beat alone. Kafka's CreateTime and Celery's
own task events split the latency into its hops."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import click
from flask import Flask
from flask.testing import FlaskClient

from arena.bootstrap import components
from arena.settings import Settings
from bench.probes import Arrival, KafkaArrivals, TaskEvents
from bench.procfile import RELAY_TASK
from bench.table import Row, distribution
from harness.arenas import COMMANDS_ONLY
from harness.processes import Supervisor, celery_beat_command, celery_worker_command, pipeline_env
from harness.resources import Run, make_app, wait_for
from harness.stats import percentiles

ARRIVAL_WAIT_SECONDS = 60
LATENCY_TARGETS = 4  # running arenas that receive the trickle's actions


@dataclass(frozen=True, slots=True)
class Posted:
    """A command whose POST returned, so its transaction had committed."""

    correlation_id: str
    returned_mono: float
    returned_wall: float
    request_ms: float


@contextlib.contextmanager
def celery_processes(run: Run, settings: Settings, tag: str) -> Iterator[Supervisor]:
    """A Celery worker (concurrency 2) and beat, started as `make worker` / `make beat` do."""
    environment = pipeline_env(settings)
    processes = Supervisor(run.workdir)
    try:
        worker = f"worker-{tag}"
        hostname = f"{run.worker_prefix}-{tag}@%h"
        processes.start(worker, celery_worker_command(hostname, 2), environment)
        schedule = run.workdir / f"celerybeat-schedule-{tag}"
        processes.start(f"beat-{tag}", celery_beat_command(schedule), environment)
        processes.wait_for_line(worker, " ready.")
        yield processes
    finally:
        processes.stop_all()


def open_running_arenas(client: FlaskClient, tag: str, count: int) -> list[tuple[str, str]]:
    """Arenas (id, admin token) in RUNNING state, so the trickle can submit actions to them."""
    targets = []
    for index in range(count):
        body = {"name": f"Bench target {index}", "displayName": "Ada", "config": COMMANDS_ONLY}
        opened = client.post(
            "/api/v1/arenas", json=body, headers={"X-Correlation-ID": f"{tag}-o{index}"}
        )
        if opened.status_code != 201:
            raise RuntimeError(f"could not open an arena: {opened.get_data(as_text=True)}")
        arena_id, token = opened.get_json()["id"], opened.get_json()["player"]["token"]
        headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": f"{tag}-s{index}"}
        started = client.post(f"/api/v1/arenas/{arena_id}/start", headers=headers)
        if started.status_code != 200:
            raise RuntimeError(f"could not start an arena: {started.get_data(as_text=True)}")
        targets.append((arena_id, token))
    return targets


def send_command(
    client: FlaskClient, index: int, targets: list[tuple[str, str]], correlation_id: str
) -> int:
    """Alternate two common commands: open an arena; submit an action to a running one."""
    if index % 2 == 0:
        body = {"name": f"Bench dish {index}", "displayName": "Ada", "config": COMMANDS_ONLY}
        headers = {"X-Correlation-ID": correlation_id}
        return client.post("/api/v1/arenas", json=body, headers=headers).status_code
    arena_id, token = targets[(index // 2) % len(targets)]
    body = {
        "type": "SPAWN_ORGANISM",
        "payload": {"kind": "BACTERIA", "position": {"x": index % 64, "y": 7}},
    }
    headers = {"Authorization": f"Bearer {token}", "X-Correlation-ID": correlation_id}
    return client.post(f"/api/v1/arenas/{arena_id}/actions", json=body, headers=headers).status_code


def trickle(
    client: FlaskClient,
    targets: list[tuple[str, str]],
    count: int,
    rate: float,
    tag: str,
    deadline: float,
) -> tuple[list[Posted], int]:
    """Send `count` commands at `rate`/s; answers when each accepted one returned, and failures."""
    posted: list[Posted] = []
    failures = 0
    with click.progressbar(range(count), label=f"latency, {tag}") as bar:
        started = time.monotonic()
        for index in bar:
            if time.monotonic() > deadline:
                break
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            correlation_id = f"{tag}-{index}"
            sent = time.monotonic()
            status = send_command(client, index, targets, correlation_id)
            returned = time.monotonic()
            if status in (201, 202):
                request_ms = 1000 * (returned - sent)
                posted.append(Posted(correlation_id, returned, time.time(), request_ms))
            else:
                failures += 1
    return posted, failures


def wait_for_arrivals(arrivals: KafkaArrivals, wanted: set[str], processes: Supervisor) -> None:
    """Until every wanted command reached Kafka (bounded); fails if the worker or beat died."""
    deadline = time.monotonic() + ARRIVAL_WAIT_SECONDS
    while not wanted <= arrivals.arrivals.keys() and time.monotonic() < deadline:
        processes.assert_running()
        time.sleep(0.05)


def latency_round(
    run: Run, args: argparse.Namespace, nudge: bool, apps: list[Flask]
) -> tuple[list[Row], bool]:
    """Drive commands through the API while a real worker and beat relay them; time each one
    from its POST's return to its arrival in Kafka. Answers the rows and whether any was lost."""
    tag = "nudge" if nudge else "beat"
    settings = dataclasses.replace(run.settings, outbox_nudge=nudge)  # API and worker alike
    app = make_app(settings)
    apps.append(app)
    client = app.test_client()
    deadline = time.monotonic() + args.phase_deadline
    wait_for(settings, "Kafka")
    arrivals = KafkaArrivals(settings, args.phase_deadline)
    queues = set(components(app).celery.amqp.queues)  # the relay's own queue among them
    task_events = TaskEvents(app, run.worker_prefix, queues)
    arrivals.start()
    task_events.start()
    task_events.ready.wait(timeout=10)
    try:
        with celery_processes(run, settings, tag) as processes:
            # Warm-up, not measured: producers, connections, pool processes and beat come up.
            targets = open_running_arenas(client, f"{tag}-warm", LATENCY_TARGETS)
            warm, _ = trickle(client, targets, args.warmup, args.rate, f"{tag}-warm", deadline)
            wait_for_arrivals(arrivals, {p.correlation_id for p in warm}, processes)
            window_start = time.time()
            posted, failures = trickle(client, targets, args.trickle, args.rate, tag, deadline)
            wait_for_arrivals(arrivals, {p.correlation_id for p in posted}, processes)
            window = (window_start, time.time())
    finally:
        arrivals.stop()
        task_events.stop()
    rows = latency_rows(settings, posted, failures, arrivals.arrivals, task_events, window)
    return rows, not rows[0].ok


def latency_rows(
    settings: Settings,
    posted: list[Posted],
    failures: int,
    arrivals: dict[str, Arrival],
    tasks: TaskEvents,
    window: tuple[float, float],
) -> list[Row]:
    """The round's end-to-end figures, and the hops they split into."""
    matched = [(p, arrivals[p.correlation_id]) for p in posted if p.correlation_id in arrivals]
    relays = tasks.window(RELAY_TASK, *window)
    pickup = [1000 * (t["started"] - t["sent"]) for t in relays if "started" in t]
    publishing = [
        1000 * t["runtime"] for t in relays if t.get("runtime") is not None and t["result"] != "0"
    ]
    empty = sum(1 for t in relays if t.get("result") == "0")
    mode = "nudge on" if settings.outbox_nudge else "nudge off"
    mode += f", beat every {settings.outbox_relay_interval_seconds:g} s"
    wall = posted[-1].returned_mono - posted[0].returned_mono if len(posted) > 1 else None
    check = f"{len(matched)}/{len(posted)} arrived"
    if failures:
        check += f", {failures} POSTs failed"
    return [
        Row(
            f"Commit → Kafka latency, {mode}",
            n=len(matched),
            wall_s=wall,
            rate=(len(posted) - 1) / wall if wall else None,
            notes=f"POST return → consumer receive; {check}",
            ok=len(matched) == len(posted) and failures == 0,
            **percentiles([1000 * (a.received_mono - p.returned_mono) for p, a in matched]),
        ),
        distribution(
            "  · POST return → relay send()",
            [1000 * (a.created_wall - p.returned_wall) for p, a in matched],
            "Celery pickup, claim (Kafka CreateTime, 1 ms steps)",
        ),
        distribution(
            "  · relay send() → consumer receive",
            [1000 * (a.received_wall - a.created_wall) for _, a in matched],
            "linger, acks=all, consumer fetch",
        ),
        distribution(
            "  · Celery task-sent → task-started",
            pickup,
            f"{len(relays)} relay tasks ran, {empty} found nothing",
        ),
        distribution(
            "  · relay task runtime (published > 0)",
            publishing,
            "claim + send + flush + mark + commit",
        ),
        distribution(
            "  · API request (commit + nudge)",
            [p.request_ms for p in posted],
            "Flask test client, in-process",
        ),
    ]
