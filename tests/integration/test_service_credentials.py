"""The running services let in only who holds their passwords: RabbitMQ has no guest/guest, the
read model's Redis answers no command before AUTH; the configured URLs get in."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from amqp.exceptions import AccessRefused
from kombu import Connection
from redis import Redis
from redis.exceptions import AuthenticationError

from arena.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def configured() -> Settings:
    return Settings.from_env()


def _amqp(url: str) -> None:
    with Connection(url, connect_timeout=5) as connection:
        connection.connect()


def test_rabbitmq_refuses_guest(configured: Settings) -> None:
    broker = urlsplit(configured.celery_broker_url)

    with pytest.raises(AccessRefused):
        _amqp(f"amqp://guest:guest@{broker.hostname}:{broker.port}//")


def test_rabbitmq_takes_the_configured_user(configured: Settings) -> None:
    _amqp(configured.celery_broker_url)


def test_redis_refuses_a_command_without_the_password(configured: Settings) -> None:
    read_model = urlsplit(configured.redis_url)
    with (
        Redis(host=read_model.hostname or "", port=read_model.port or 6379) as stranger,
        pytest.raises(AuthenticationError),
    ):
        stranger.get("any")


def test_redis_answers_the_configured_url(configured: Settings) -> None:
    with Redis.from_url(configured.redis_url) as read_model:
        assert read_model.ping()
