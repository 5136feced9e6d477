"""Scale-out: two relay workers, two consumers and two projection workers at once.

Each stage runs twice, the shape docs/scaling.md sizes: two relay worker nodes on the relay
queue, both allowed to drain (`OUTBOX_RELAY_DRAINERS=2`), two `flask consume` members of one
group splitting the partitions, and two projection worker nodes. A burst on 40 arenas must reach
Kafka exactly once per event and in version order per arena, and the read model must converge to
the write model (`flask verify`, the operator's own check).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from arena.messaging.kafka import admin_client, topic_partitions, topic_reader
from arena.settings import Settings
from harness.pipeline import Pipeline, running_pipeline
from harness.waiting import wait_until
from tests.support.load import CommandLoad

pytestmark = pytest.mark.e2e

ARENAS_IN_BURST = 40
VERIFY_WAIT_SECONDS = 90
ON_KAFKA_DEADLINE_SECONDS = 60
READY_DEADLINE_SECONDS = 90
COMMAND_PAUSE_SECONDS = 0.08  # per command and load thread: ~50 commands/s in all


@pytest.fixture(scope="module")
def pipeline(
    settings: Settings, kafka_topics: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    logs = tmp_path_factory.mktemp("scale-out-logs")
    with running_pipeline(
        settings,
        logs,
        concurrency=1,
        workers=2,
        relay_workers=2,
        consumers=2,
        OUTBOX_RELAY_DRAINERS="2",
    ) as started:
        yield started


def _versions_on_kafka(settings: Settings, arena_ids: set[str]) -> dict[str, list[int]]:
    """Every version of these arenas on the events topic, in partition order."""
    reader = topic_reader(settings, "arena-test-scale-out")
    try:
        partitions = topic_partitions(reader, settings.kafka_events_topic)
        reader.assign(partitions)
        reader.seek_to_beginning(*partitions)
        ends = reader.end_offsets(partitions)
        versions: dict[str, list[int]] = defaultdict(list)
        while any(reader.position(p) < ends[p] for p in partitions):
            for records in reader.poll(timeout_ms=500).values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if key in arena_ids:
                        versions[key].append(json.loads(record.value)["aggregateVersion"])
        return versions
    finally:
        reader.close()


def _group_members(settings: Settings) -> int:
    """Members of the projection consumer group once it is stable (0 while it rebalances)."""
    admin = admin_client(settings, "arena-test-scale-out")
    try:
        group = admin.describe_groups([settings.kafka_consumer_group])[
            settings.kafka_consumer_group
        ]
    finally:
        admin.close()
    return len(group["members"]) if group["group_state"] == "Stable" else 0


def _ready(pipeline: Pipeline, settings: Settings) -> bool:
    workers = ("relay", "relay-2", "worker", "worker-2")
    return all(" ready." in pipeline.tail(name, 100_000) for name in workers) and (
        _group_members(settings) == 2
    )


def test_every_stage_twice_keeps_order_and_loses_nothing(
    app: Flask, client: FlaskClient, settings: Settings, pipeline: Pipeline
) -> None:
    name = f"scale-out {uuid.uuid4().hex[:8]}"
    # Every process is up, and both consumers share the partitions, before the first command.
    wait_until(
        lambda: pipeline.assert_running() or _ready(pipeline, settings),
        deadline_seconds=READY_DEADLINE_SECONDS,
        interval=0.5,
        what=f"workers ready, two members in the consumer group (logs in {pipeline.logs})",
    )

    # Spread over ~10 s, so both relays are draining (and racing for rows) while it runs.
    load = CommandLoad(
        app,
        name=name,
        threads=4,
        arenas=ARENAS_IN_BURST,
        working_set=8,
        pause_seconds=COMMAND_PAUSE_SECONDS,
    ).run()

    assert load.failures == []
    assert len(load.arenas) == ARENAS_IN_BURST
    last_versions = {arena.id: arena.version for arena in load.arenas}
    pipeline.assert_verified(VERIFY_WAIT_SECONDS)
    # Every event reached Kafka once, in version order per arena, whichever relay sent it.
    found: dict[str, list[int]] = {}

    def all_on_kafka() -> bool:
        pipeline.assert_running()
        found.update(_versions_on_kafka(settings, set(last_versions)))
        return all(len(found.get(a, [])) >= v for a, v in last_versions.items())

    wait_until(all_on_kafka, deadline_seconds=ON_KAFKA_DEADLINE_SECONDS, what="events on Kafka")
    for arena_id, version in last_versions.items():
        assert found[arena_id] == list(range(1, version + 1)), arena_id
    load.assert_views_show_last_answers(client)
    # Each of the pair took part: published, dispatched, projected.
    for names, line in (
        (("relay", "relay-2"), "published "),
        (("consumer", "consumer-2"), "dispatched "),
        (("worker", "worker-2"), " event(s) of "),
    ):
        for process in names:
            assert line in pipeline.tail(process, 10_000_000), (process, line, pipeline.logs)
