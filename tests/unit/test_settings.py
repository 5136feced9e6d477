"""Settings.from_env: the defaults for local services, overrides from a mapping, and to_env."""

import dataclasses

import pytest

from arena.settings import Settings

LOCAL_DEFAULTS = {
    "database_url": "postgresql+psycopg://arena:arena@127.0.0.1:5432/arena",
    "celery_queue": "arena",
    "kafka_bootstrap_servers": "127.0.0.1:9092",
    "kafka_events_topic": "arena.events",
    "kafka_dlq_topic": "arena.events.dlq",
    "kafka_events_partitions": 6,
    "kafka_consumer_group": "arena-projections",
    "kafka_session_timeout_seconds": 10.0,
    "read_model_prefix": "arena",
    "outbox_relay_interval_seconds": 1.0,
    "outbox_relay_drain_seconds": 10.0,
    "outbox_relay_drainers": 1,
    "outbox_batch_size": 2000,
    "outbox_nudge": True,
    "idempotency_retention_seconds": 86400,
    "max_body_bytes": 65536,
    "read_max_waiters": 4,
    "rate_limit_create": "30/minute",
    "rate_limit_join": "60/minute",
    "rate_limit_failed_auth": "20/minute",
    "rate_limit_storage_url": "",
    "log_level": "INFO",
}


def _values(settings: Settings) -> dict[str, object]:
    return dataclasses.asdict(settings)


def test_empty_mapping_gives_the_local_service_defaults():
    values = _values(Settings.from_env({}))

    assert {name: values[name] for name in LOCAL_DEFAULTS} == LOCAL_DEFAULTS


def test_empty_mapping_does_not_fall_back_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")

    assert (
        Settings.from_env({}).kafka_bootstrap_servers == LOCAL_DEFAULTS["kafka_bootstrap_servers"]
    )


def test_no_mapping_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/9")
    monkeypatch.setenv("OUTBOX_BATCH_SIZE", "25")

    settings = Settings.from_env()

    assert settings.redis_url == "redis://elsewhere:6379/9"
    assert settings.outbox_batch_size == 25


def test_overrides_are_parsed_to_each_settings_type():
    settings = Settings.from_env(
        {
            "KAFKA_EVENTS_PARTITIONS": "3",
            "OUTBOX_RELAY_INTERVAL_SECONDS": "0.25",
            "OUTBOX_NUDGE": "false",
            "CELERY_QUEUE": "q",
        }
    )

    assert settings.kafka_events_partitions == 3
    assert settings.outbox_relay_interval_seconds == 0.25
    assert settings.outbox_nudge is False
    assert settings.celery_queue == "q"


def test_a_partial_mapping_overrides_only_what_it_names():
    settings = Settings.from_env({"CELERY_QUEUE": "other"})

    assert settings.celery_queue == "other"
    assert settings.kafka_bootstrap_servers == LOCAL_DEFAULTS["kafka_bootstrap_servers"]


def test_to_env_reproduces_the_same_settings_in_another_process():
    settings = Settings.from_env({"OUTBOX_NUDGE": "off", "KAFKA_EVENTS_PARTITIONS": "2"})

    assert Settings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    "name", ["KAFKA_EVENTS_PARTITIONS", "OUTBOX_BATCH_SIZE", "OUTBOX_RELAY_INTERVAL_SECONDS"]
)
def test_a_non_numeric_number_setting_fails_loudly(name):
    with pytest.raises(ValueError):
        Settings.from_env({name: "lots"})


def test_a_flag_that_is_neither_true_nor_false_fails_loudly():
    with pytest.raises(ValueError):
        Settings.from_env({"OUTBOX_NUDGE": "perhaps"})


def test_a_rate_limit_that_does_not_parse_fails_loudly():
    with pytest.raises(ValueError):
        Settings.from_env({"RATE_LIMIT_CREATE": "thirty a minute"})


@pytest.mark.parametrize("limits", ["5/second;100/hour", ""])
def test_a_rate_limit_may_be_several_or_none(limits):
    assert Settings.from_env({"RATE_LIMIT_JOIN": limits}).rate_limit_join == limits
