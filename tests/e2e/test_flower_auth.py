"""Flower, started as `make run` starts it (the Procfile's line, on a port of its own), asks for
FLOWER_BASIC_AUTH: without it a page is 401, with it 200; its health check stays open."""

from __future__ import annotations

import base64
import shlex
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from arena.settings import Settings
from harness.processes import BIN, ROOT, Supervisor, pipeline_env
from harness.waiting import wait_until

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _procfile_flower(port: int) -> list[str]:
    procfile = (ROOT / "Procfile").read_text().splitlines()
    [line] = [line for line in procfile if line.startswith("flower:")]
    program, *arguments = shlex.split(line.removeprefix("flower:"))
    port_option = f"--port={port}"
    return [str(BIN / program), *(port_option if a.startswith("--port") else a for a in arguments)]


def _status(url: str, credentials: str | None = None) -> int:
    request = urllib.request.Request(url)
    if credentials is not None:
        request.add_header(
            "Authorization", f"Basic {base64.b64encode(credentials.encode()).decode()}"
        )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


@pytest.fixture(scope="module")
def flower(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    supervisor = Supervisor(tmp_path_factory.mktemp("flower"))
    supervisor.start("flower", _procfile_flower(port), pipeline_env(None))
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        supervisor.assert_running()
        try:
            return _status(f"{base}/healthcheck") == 200
        except OSError:  # not listening yet
            return False

    try:
        wait_until(healthy, deadline_seconds=60, interval=0.2, what="Flower's health check")
        yield base
    finally:
        supervisor.stop_all()


@pytest.mark.parametrize("path", ["/", "/tasks", "/api/workers"])
def test_flower_refuses_whoever_lacks_the_password(flower: str, path: str) -> None:
    assert _status(flower + path) == 401
    assert _status(flower + path, "arena:guess") == 401


def test_flower_serves_the_configured_user(flower: str) -> None:
    assert _status(flower + "/", Settings.from_env().flower_basic_auth) == 200
