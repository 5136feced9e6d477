"""Settings.from_env: the defaults for local services, and overrides from a mapping."""

import pytest

from arena.config import Settings

DEFAULTS = Settings(
    database_url="postgresql+psycopg://arena:arena@127.0.0.1:5432/arena",
    redis_url="redis://127.0.0.1:6379/0",
    celery_broker_url="redis://127.0.0.1:6379/1",
    celery_queue="arena",
    kafka_bootstrap_servers="127.0.0.1:9092",
    kafka_events_topic="arena.events",
    kafka_dlq_topic="arena.events.dlq",
    kafka_events_partitions=6,
    kafka_consumer_group="arena-projections",
    read_model_prefix="arena",
    outbox_relay_interval_seconds=1.0,
    outbox_batch_size=500,
    idempotency_retention_seconds=86400,
    max_body_bytes=65536,
    log_level="INFO",
)


def test_empty_mapping_gives_the_local_service_defaults():
    assert Settings.from_env({}) == DEFAULTS


def test_empty_mapping_does_not_fall_back_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/9")

    assert Settings.from_env({}).redis_url == DEFAULTS.redis_url


def test_no_mapping_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/9")
    monkeypatch.setenv("OUTBOX_BATCH_SIZE", "25")

    settings = Settings.from_env()

    assert settings.redis_url == "redis://elsewhere:6379/9"
    assert settings.outbox_batch_size == 25


def test_every_setting_is_overridden_from_the_mapping_with_numbers_parsed():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u:p@db:5432/x",
            "REDIS_URL": "redis://r:6379/2",
            "CELERY_BROKER_URL": "redis://r:6379/3",
            "CELERY_QUEUE": "q",
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
            "KAFKA_EVENTS_TOPIC": "events",
            "KAFKA_DLQ_TOPIC": "events.dlq",
            "KAFKA_EVENTS_PARTITIONS": "3",
            "KAFKA_CONSUMER_GROUP": "group",
            "READ_MODEL_PREFIX": "pfx",
            "OUTBOX_RELAY_INTERVAL_SECONDS": "0.25",
            "OUTBOX_BATCH_SIZE": "50",
            "IDEMPOTENCY_RETENTION_SECONDS": "60",
            "MAX_BODY_BYTES": "1024",
            "LOG_LEVEL": "DEBUG",
        }
    )

    assert settings == Settings(
        database_url="postgresql+psycopg://u:p@db:5432/x",
        redis_url="redis://r:6379/2",
        celery_broker_url="redis://r:6379/3",
        celery_queue="q",
        kafka_bootstrap_servers="k1:9092,k2:9092",
        kafka_events_topic="events",
        kafka_dlq_topic="events.dlq",
        kafka_events_partitions=3,
        kafka_consumer_group="group",
        read_model_prefix="pfx",
        outbox_relay_interval_seconds=0.25,
        outbox_batch_size=50,
        idempotency_retention_seconds=60,
        max_body_bytes=1024,
        log_level="DEBUG",
    )


def test_a_partial_mapping_overrides_only_what_it_names():
    settings = Settings.from_env({"CELERY_QUEUE": "other"})

    assert settings.celery_queue == "other"
    assert settings.redis_url == DEFAULTS.redis_url
    assert settings.outbox_batch_size == DEFAULTS.outbox_batch_size


@pytest.mark.parametrize(
    "name", ["KAFKA_EVENTS_PARTITIONS", "OUTBOX_BATCH_SIZE", "OUTBOX_RELAY_INTERVAL_SECONDS"]
)
def test_a_non_numeric_number_setting_fails_loudly(name):
    with pytest.raises(ValueError):
        Settings.from_env({name: "lots"})
