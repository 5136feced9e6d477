"""The read model's Redis has a memory cap and never evicts (issue 23, item 4): started by
scripts/services.sh as `make services` starts it, past the cap it refuses writes and keeps every
key; `/metrics` tells how near the cap it is."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from redis.exceptions import OutOfMemoryError

from arena.bootstrap import components
from arena.local_secrets import LOCAL_CREDENTIALS, local_credentials
from arena.readmodel.memory import memory_use

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CAP = 4 * 1024 * 1024


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def capped_redis(tmp_path: Path) -> Iterator[Redis]:
    """A read-model Redis of its own, started by the project's script in a checkout of its own
    (its var/ under tmp_path), capped at 4 MiB."""
    for part in ("scripts/services.sh", "arena/local_secrets.py"):  # the script runs the second
        (tmp_path / part).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / part, tmp_path / part)
    port = _free_port()
    env = os.environ | {"READMODEL_REDIS_PORT": str(port), "READMODEL_REDIS_MAXMEMORY": "4mb"}
    script = str(tmp_path / "scripts" / "services.sh")
    subprocess.run([script, "start-readmodel"], env=env, check=True, timeout=60)
    password = local_credentials(tmp_path / LOCAL_CREDENTIALS)["READMODEL_REDIS_PASSWORD"]
    client = Redis(port=port, password=password)
    try:
        yield client
    finally:
        client.close()
        subprocess.run([script, "stop-readmodel"], env=env, check=True, timeout=60)


def test_past_its_cap_the_read_model_refuses_writes_and_evicts_nothing(
    capped_redis: Redis,
) -> None:
    assert capped_redis.config_get("maxmemory") == {"maxmemory": str(CAP)}
    assert capped_redis.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    written = 0
    with pytest.raises(OutOfMemoryError):
        for written in range(1, 100):  # far more than 4 MiB
            capped_redis.set(f"view:{written}", b"v" * 100_000)
    assert written > 1
    assert capped_redis.dbsize() == written - 1  # every write that succeeded is still there
    assert memory_use(capped_redis).used_ratio == pytest.approx(1.0, abs=0.1)


def test_metrics_tell_how_near_the_cap_the_read_model_is(
    app: Flask, client: FlaskClient, capped_redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    uncapped = client.get("/metrics").get_data(as_text=True)
    assert "\narena_read_model_memory_used_bytes " in uncapped
    with app.app_context():
        monkeypatch.setattr(components().views, "_redis", capped_redis)
    capped_redis.set("view", b"v" * 1_000_000)

    lines = client.get("/metrics").get_data(as_text=True).splitlines()

    samples = {
        name: float(value)
        for name, value in (line.split(" ") for line in lines if line.startswith("arena_read_"))
    }
    assert samples["arena_read_model_memory_max_bytes"] == CAP
    ratio = samples["arena_read_model_memory_used_ratio"]
    assert ratio == samples["arena_read_model_memory_used_bytes"] / CAP
    assert 1_000_000 / CAP < ratio < 1.0
