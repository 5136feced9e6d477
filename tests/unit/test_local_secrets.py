"""Secrets made once into var/ for local runs: the idempotency secret and the local services'
passwords (var/credentials). Each test runs in a directory of its own, so its var/ is new."""

from __future__ import annotations

import base64
import multiprocessing
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from arena.bootstrap import SECRET_BYTES, idempotency_secret
from arena.settings import Settings

PROCESSES = 12
ROUNDS = 30


@pytest.fixture(autouse=True)
def new_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _local_secret() -> bytes:
    return idempotency_secret(Settings.from_env({}))


def _broker_url() -> str:
    return Settings.from_env({}).celery_broker_url


def _at_once(make: Callable[[], object], directory: Path) -> set[object]:
    """`make` run in PROCESSES processes let go at the same moment, in `directory`, a checkout
    with no var/ yet; what they got."""
    directory.mkdir()
    os.chdir(directory)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(PROCESSES)
    results = context.SimpleQueue()

    def race() -> None:
        start.wait()
        results.put(make())

    racers = [context.Process(target=race) for _ in range(PROCESSES)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert [racer.exitcode for racer in racers] == [0] * PROCESSES
    return {results.get() for _ in racers}


def _private(path: Path) -> Path:
    """`path`, readable by its owner alone, and no temporary file left beside it."""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [other.name for other in path.parent.iterdir() if other.name.startswith(".")] == []
    return path


def test_the_local_secret_is_made_once_whole_and_private(new_checkout: Path) -> None:
    secret = _local_secret()

    assert len(secret) == SECRET_BYTES
    assert _local_secret() == secret
    assert _private(new_checkout / "var" / "idempotency.secret").read_bytes() == secret


def test_processes_starting_at_once_all_get_the_one_secret_that_was_kept(
    new_checkout: Path,
) -> None:
    """Many rounds: a reader that comes between another's create and write is rare (when the
    file was made first and written then, about one round in six here gave an empty secret)."""
    for attempt in range(ROUNDS):
        secrets = _at_once(_local_secret, new_checkout / str(attempt))

        assert secrets == {_private(Path("var") / "idempotency.secret").read_bytes()}


@pytest.mark.parametrize("held", [b"", b"short"])
def test_a_local_secret_file_too_short_stops_the_process(new_checkout: Path, held: bytes) -> None:
    (new_checkout / "var").mkdir()
    (new_checkout / "var" / "idempotency.secret").write_bytes(held)

    with pytest.raises(ValueError, match=f"idempotency.secret holds {len(held)} bytes"):
        _local_secret()


def test_a_configured_secret_too_short_stops_the_process() -> None:
    short = base64.urlsafe_b64encode(bytes(SECRET_BYTES - 1)).decode()

    with pytest.raises(ValueError, match="IDEMPOTENCY_SECRET holds 31 bytes"):
        idempotency_secret(Settings.from_env({"IDEMPOTENCY_SECRET": short}))


def test_a_configured_secret_is_used_and_no_file_is_made(new_checkout: Path) -> None:
    secret = bytes(range(SECRET_BYTES))
    configured = base64.urlsafe_b64encode(secret).decode().rstrip("=")

    assert idempotency_secret(Settings.from_env({"IDEMPOTENCY_SECRET": configured})) == secret
    assert not (new_checkout / "var" / "idempotency.secret").exists()


def test_local_services_get_passwords_made_once_into_var(new_checkout: Path) -> None:
    settings = Settings.from_env({})

    credentials = dict(
        line.split("=", 1)
        for line in _private(new_checkout / "var" / "credentials").read_text().splitlines()
    )
    assert settings.celery_broker_url == (
        f"amqp://arena:{credentials['RABBITMQ_PASSWORD']}@127.0.0.1:5672//"
    )
    assert settings.redis_url == (
        f"redis://:{credentials['READMODEL_REDIS_PASSWORD']}@127.0.0.1:6380/0"
    )
    assert settings.flower_basic_auth == f"arena:{credentials['FLOWER_PASSWORD']}"
    assert len(set(credentials.values())) == 3
    assert all(len(password) >= 32 for password in credentials.values())
    assert Settings.from_env({}) == settings


def test_processes_starting_at_once_all_get_the_same_passwords(new_checkout: Path) -> None:
    for attempt in range(ROUNDS // 3):
        assert len(_at_once(_broker_url, new_checkout / str(attempt))) == 1


def test_configured_urls_need_no_local_passwords(new_checkout: Path) -> None:
    settings = Settings.from_env(
        {
            "CELERY_BROKER_URL": "amqp://u:p@broker:5672//",
            "REDIS_URL": "redis://:p@redis:6379/0",
            "FLOWER_BASIC_AUTH": "u:p",
        }
    )

    assert (settings.celery_broker_url, settings.redis_url, settings.flower_basic_auth) == (
        "amqp://u:p@broker:5672//",
        "redis://:p@redis:6379/0",
        "u:p",
    )
    assert not (new_checkout / "var").exists()
