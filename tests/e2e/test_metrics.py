"""`/metrics` on the real processes: gunicorn's two workers, a Celery worker's prefork children,
beat and `flask consume` all write to one PROMETHEUS_MULTIPROC_DIR, and a scrape from either API
worker adds every process's samples up."""

from __future__ import annotations

import base64
import dataclasses
import socket
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from arena.bootstrap import idempotency_secret
from arena.settings import Settings
from harness.processes import (
    BIN,
    Supervisor,
    celery_beat_command,
    celery_worker_command,
    flask_command,
    pipeline_env,
)
from harness.waiting import wait_until
from tests.support.http import send

pytestmark = pytest.mark.e2e

ARENAS = 24
DEADLINE_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Api:
    url: str
    samples: Path
    logs: Path


@pytest.fixture(scope="module")
def api(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """The pipeline as `make run` starts it, every process sharing one samples directory."""
    logs = tmp_path_factory.mktemp("metrics-logs")
    samples = tmp_path_factory.mktemp("metrics-samples")
    shared = dataclasses.replace(settings, prometheus_multiproc_dir=str(samples))
    environment = pipeline_env(shared)
    port = _free_port()
    processes = Supervisor(logs)
    try:
        # One thread per API worker, so concurrent requests spread over both processes.
        gunicorn = [str(BIN / "gunicorn"), "-c", "python:arena.http.gunicorn_hooks"]
        gunicorn += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "1", "app:app"]
        processes.start("api", gunicorn, environment)
        processes.start("worker", celery_worker_command("metrics@%h", 2), environment)
        processes.start("beat", celery_beat_command(logs / "celerybeat-schedule"), environment)
        processes.start("consumer", flask_command("consume"), environment)
        processes.wait_for_line("api", "Booting worker")
        processes.wait_for_line("worker", " ready.")
        yield Api(f"http://127.0.0.1:{port}", samples, logs)
    finally:
        processes.stop_all()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(api: Api) -> Samples:
    with urllib.request.urlopen(f"{api.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_add_up_over_every_process(api: Api) -> None:
    created = f"{api.url}/api/v1/arenas"
    body = {"name": "Counted dish", "displayName": "Ada", "config": {"tickMillis": 200}}
    with ThreadPoolExecutor(8) as pool:
        arenas = list(pool.map(lambda _: send(created, body), range(ARENAS)))

    # Whichever API worker answers, it counts every worker's requests.
    for _ in range(4):
        samples = _scrape(api)
        accepted = _value(
            samples, "arena_commands_total", route="/api/v1/arenas", outcome="accepted"
        )
        assert accepted == ARENAS
    writers = {path.stem.split("_", 1)[1] for path in api.samples.glob("counter_*.db")}
    assert len(writers) >= 3, writers  # two API workers and at least one Celery process

    # Ticks are counted in the Celery worker's children, events in the relay's: the API adds them.
    first = arenas[0]
    token = first["player"]["token"]  # type: ignore[index]
    send(f"{created}/{first['id']}/start", {}, token)

    def ticked() -> Samples | None:
        samples = _scrape(api)
        return samples if _value(samples, "arena_ticks_total") >= 3 else None

    samples = wait_until(ticked, deadline_seconds=DEADLINE_SECONDS, what="ticks in /metrics")
    assert _value(samples, "arena_events_published_total") >= ARENAS + 1
    assert _value(samples, "arena_projection_events_total", outcome="applied") >= ARENAS
    assert _value(samples, "arena_tick_run_seconds_count") >= 1
    assert ("arena_outbox_backlog", ()) in samples
    assert any(name == "arena_consumer_lag" for name, _ in samples)


def test_no_token_or_secret_reaches_a_log_line(api: Api, settings: Settings) -> None:
    body = {"name": "Quiet dish", "displayName": "Ada"}
    created = send(f"{api.url}/api/v1/arenas", body)
    joined = send(f"{api.url}/api/v1/arenas/{created['id']}/players", {"displayName": "Bob"})
    tokens = [str(reply["player"]["token"]) for reply in (created, joined)]  # type: ignore[index]
    send(f"{api.url}/api/v1/arenas/{created['id']}/start", {}, tokens[0])
    secret = base64.urlsafe_b64encode(idempotency_secret(settings)).decode().rstrip("=")
    logged = "\n".join(path.read_text(errors="replace") for path in api.logs.glob("*.log"))
    assert f"arena {created['id']}" in logged  # the lines are there ...
    for hidden in (*tokens, secret, idempotency_secret(settings).hex()):
        assert hidden not in logged  # ... and nothing that opens anything
