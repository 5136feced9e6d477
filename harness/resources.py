"""A run's own resources on the shared local services, and their clean-up: what the benchmarks
and the chaos matrix (harness/chaos.py) run on.

The services (PostgreSQL, RabbitMQ, Redis, Kafka on 127.0.0.1) are shared with other engineers'
tests, so a run touches only what it names after its random run id: a database
`arena_bench_<id>`, topics `arena.events[.dlq].bench-<id>`, a read-model prefix, Celery queues,
worker names and consumer groups. `drop_resources` removes them all, also after a failure or
Ctrl-C, and says what it could not remove.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import psycopg
from flask import Flask
from flask_migrate import upgrade
from redis import Redis
from sqlalchemy.engine import make_url

from arena import create_app
from arena.extensions import db
from arena.messaging.celery_setup import relay_queue
from arena.messaging.kafka import admin_client, ensure_topics, kafka_reachable
from arena.messaging.queues import BROKER_TIMEOUT_SECONDS
from arena.settings import Settings
from harness.processes import ROOT
from harness.services import (
    broker_connection,
    delete_celery_queues,
    isolated_settings,
    libpq_dsn,
)
from stack.topology import TOPOLOGIES, application_env, topology

SERVICE_WAIT_SECONDS = 300  # Kafka may be mid-restart (another engineer's tests)
DROP_DATABASE_SECONDS = 60.0  # an autovacuum worker in the run's database holds the drop up
RABBITMQ = "RabbitMQ"  # what `wait_for` calls the Celery broker unless told otherwise


@dataclass(frozen=True)
class Run:
    """One benchmark run: its id, its isolated settings, the base settings and a log directory."""

    run_id: str
    base: Settings
    settings: Settings
    workdir: Path

    @property
    def dsn(self) -> str:
        return libpq_dsn(self.settings)

    @property
    def worker_prefix(self) -> str:
        return f"bench-{self.run_id}"


UNREACHED_RATE_LIMIT = "100000/second"


def on_kafka(settings: Settings, kafka_topology: str) -> Settings:
    """`settings` pointed at the Kafka of a topology of stack/topology.py: `single` leaves them
    as the environment has them (`make services`' node); `cluster` gives the settings `python -m
    stack kafka env --topology cluster` prints (its three nodes, topics made with 3 replicas)."""
    if kafka_topology not in TOPOLOGIES:
        raise KeyError(f"no topology {kafka_topology!r}; there are {', '.join(TOPOLOGIES)}")
    if kafka_topology == "single":
        return settings
    # Every variable the topology sets, over the settings as they are (whatever else they say).
    return Settings.from_env(settings.to_env() | application_env(topology(kafka_topology, ROOT)))


def bench_settings(
    base: Settings, run_id: str, relay_interval: float, *, kafka_topology: str = "single"
) -> Settings:
    """The environment's settings with every shared resource renamed after the run id, any
    queue a newer Settings names included, on the Kafka of `kafka_topology` (`on_kafka`); rate
    limits far above what the load sends from its one address, so the limiter's cost (a Redis
    round trip a command) is in the figures but it never refuses."""
    settings = isolated_settings(
        on_kafka(base, kafka_topology),
        "bench",
        run_id,
        outbox_relay_interval_seconds=relay_interval,
        rate_limit_create=UNREACHED_RATE_LIMIT,
        rate_limit_join=UNREACHED_RATE_LIMIT,
        rate_limit_failed_auth=UNREACHED_RATE_LIMIT,
    )
    # Field names known only at run time: their values are all queue names (str).
    other_queues: dict[str, Any] = {
        f.name: f"{getattr(settings, f.name)}-bench-{run_id}"
        for f in dataclasses.fields(settings)
        if f.name.endswith("_queue") and f.name != "celery_queue"
    }
    return dataclasses.replace(settings, **other_queues)


def _answers(call: Callable[[], object]) -> bool:
    try:
        call()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not (yet) reachable"
        return False


def _ping(redis_url: str) -> None:
    client = Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _connect(broker_url: str) -> None:
    with broker_connection(broker_url, BROKER_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


def wait_for(settings: Settings, *services: str, broker: str = RABBITMQ) -> None:
    """Wait (bounded) until each named service answers; Kafka may be restarting. "Redis" is the
    read model; `broker` is the name the caller gives the Celery broker (CELERY_BROKER_URL, which
    kombu connects to whatever it is)."""
    probes: dict[str, Callable[[], bool]] = {
        "PostgreSQL": lambda: _answers(
            lambda: psycopg.connect(libpq_dsn(settings), connect_timeout=2).close()
        ),
        "Redis": lambda: _answers(lambda: _ping(settings.redis_url)),
        broker: lambda: _answers(lambda: _connect(settings.celery_broker_url)),
        "Kafka": lambda: kafka_reachable(settings, timeout_seconds=3),
    }
    deadline = time.monotonic() + SERVICE_WAIT_SECONDS
    for name in services:
        warned = False
        while not probes[name]():
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} unreachable for {SERVICE_WAIT_SECONDS}s")
            if not warned:
                click.echo(f"waiting for {name} (bash scripts/services.sh status)…", err=True)
                warned = True
            time.sleep(2)


def make_app(settings: Settings) -> Flask:
    app = create_app(settings)
    app.config["TESTING"] = True
    return app


def create_database(run: Run) -> None:
    """The run's empty database, made on the server of the environment's one."""
    name = make_url(run.settings.database_url).database
    with psycopg.connect(libpq_dsn(run.base), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')


def create_resources(run: Run) -> Flask:
    """The run's database with this checkout's migrations, and its topics; answers the API app
    on them."""
    create_database(run)
    app = make_app(run.settings)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # alembic.ini's fileConfig points the root logger at the console: keep ours.
    with app.app_context(), contextlib.redirect_stderr(io.StringIO()):
        upgrade(directory=str(ROOT / "migrations"))
    root.handlers[:], root.level = handlers, level
    wait_for(run.settings, "Kafka")
    ensure_topics(run.settings)
    return app


def queue_names(settings: Settings) -> set[str]:
    """The run's Celery queues by name: the default one, the relay's, and any other queue a
    newer Settings names (`bench_settings` renamed them all after the run)."""
    fields = dataclasses.fields(settings)
    named = {getattr(settings, f.name) for f in fields if f.name.endswith("_queue")}
    return named | {relay_queue(settings)}


QueueRemover = Callable[[set[str]], None]  # takes a run's queues off its broker


def drop_resources(
    run: Run,
    apps: list[Flask],
    queues: Collection[str] = (),
    groups: Collection[str] = (),
    *,
    topics: Collection[str] = (),
    remove_queues: QueueRemover | None = None,
) -> list[str]:
    """Remove everything the run made (its database, topics, main consumer group, queues and
    read-model keys, and `queues`, `groups` and `topics` besides); answers what could not be
    removed (never raises). The queues are deleted from RabbitMQ with whatever they still hold,
    unless `remove_queues` takes them off the broker instead."""
    settings, problems = run.settings, []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except BaseException as error:  # noqa: BLE001 - clean up the rest regardless
            problems.append(f"could not {what}: {error!r}")

    def drop_database() -> None:
        for app in apps:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        name = make_url(settings.database_url).database
        # FORCE ends our own sessions, but not an autovacuum worker's (a superuser's), which a
        # run's churn often has in the database at the end: it moves on within seconds.
        deadline = time.monotonic() + DROP_DATABASE_SECONDS
        with psycopg.connect(libpq_dsn(run.base), autocommit=True) as connection:
            while True:
                try:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    return
                except psycopg.errors.InsufficientPrivilege:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)

    def delete_topics_and_groups() -> None:
        wait_for(settings, "Kafka")
        admin = admin_client(settings, "arena-bench-admin")
        try:
            events, dlq = settings.kafka_events_topic, settings.kafka_dlq_topic
            ours = {events, dlq, *topics}
            doomed = sorted(ours & set(admin.list_topics()))
            if doomed:
                admin.delete_topics(doomed)
            # {group: "OK" or the error's name}; a group nobody committed to is not found.
            outcomes = admin.delete_groups([settings.kafka_consumer_group, *groups])
            problems.extend(
                f"could not delete consumer group {group}: {outcome}"
                for group, outcome in dict(outcomes).items()
                if str(outcome) not in {"OK", "GroupIdNotFoundError"}
            )
        finally:
            admin.close()

    def delete_queues() -> None:
        names = queue_names(settings) | set(queues)
        if remove_queues is not None:
            remove_queues(names)
        else:  # RabbitMQ drops the workers' pidbox and event queues itself (auto-delete)
            delete_celery_queues(settings.celery_broker_url, sorted(names))

    def delete_read_model_keys() -> None:
        read_model = Redis.from_url(settings.redis_url, socket_timeout=5)
        try:
            keys = set(read_model.scan_iter(match=f"{settings.read_model_prefix}:*", count=1000))
            if keys:
                read_model.delete(*keys)
        finally:
            read_model.close()

    attempt("drop the database", drop_database)
    attempt("delete the Kafka topics and consumer groups", delete_topics_and_groups)
    attempt("delete the Celery queues", delete_queues)
    attempt("delete the read-model keys", delete_read_model_keys)
    return problems
