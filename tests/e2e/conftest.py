"""The real pipeline's processes, started as a user would start them (`make run`'s commands)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from arena.settings import Settings
from harness.processes import (
    Supervisor,
    celery_beat_command,
    celery_worker_command,
    flask_command,
    pipeline_env,
)

Pipeline = Supervisor  # what the `pipeline` fixture gives: `logs`, `assert_running()`, …


@pytest.fixture(scope="module")
def pipeline(
    app: Flask, settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """A Celery worker, Celery beat (running the relay) and `flask consume`, as subprocesses."""
    logs = tmp_path_factory.mktemp("pipeline-logs")
    environment = pipeline_env(settings)
    processes = Pipeline(logs)
    try:
        processes.start("worker", celery_worker_command(f"e2e-{os.getpid()}@%h", 2), environment)
        processes.start("beat", celery_beat_command(logs / "celerybeat-schedule"), environment)
        processes.start("consumer", flask_command("consume"), environment)
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture(scope="module")
def site(app: Flask, pipeline: Pipeline) -> Iterator[str]:
    """The app on a real threaded HTTP server on loopback (for browsers and raw sockets), with
    the pipeline running behind it."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, name="web", daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
