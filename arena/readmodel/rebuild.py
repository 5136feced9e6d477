"""Rebuilding the whole read model from the Kafka log, beside the live one.

The events topic keeps every event, so replaying it from the beginning into a fresh generation
reproduces the read model. While it runs, live projections write each event to the new generation
too (once its predecessor is there). An event that arrives for an arena the replay has not
reached yet finds no predecessor there and is left to the replay; so, before switching, the
replay drains again to the log's new end until no arena's view in the new generation is behind
its view in the old one (ticking arenas publish all the time, so this matters). Then one SET
switches readers over, a final pass applies whatever was published around the switch, and the
old generation is dropped after a short grace period.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from arena.domain.envelope import EventEnvelope
from arena.domain.events import PoisonEvent
from arena.messaging.kafka import topic_partitions, topic_reader
from arena.messaging.records import ReceivedRecord
from arena.readmodel.intake import POISON, parse
from arena.readmodel.store import ArenaViews, load
from arena.readmodel.writer import EventOutOfOrder, Outcome, apply_events, stall
from arena.settings import Settings

DRAIN_DEADLINE_SECONDS = 1800
MAX_CATCH_UP_PASSES = 50
COMPARE_CHUNK = 1000
OLD_GENERATION_GRACE_SECONDS = 2.0


@dataclass
class RebuildSummary:
    generation: str = ""
    previous_generation: str = ""
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    stalled_arenas: set[str] = field(default_factory=set)
    keys_dropped: int = 0
    seconds: float = 0.0


def rebuild(
    views: ArenaViews,
    settings: Settings,
    *,
    on_start: Callable[[int], None] = lambda total: None,
    on_progress: Callable[[int], None] = lambda count: None,
) -> RebuildSummary:
    """Replay the events topic into a new generation, switch readers to it, drop the old one.

    `on_start` gets the number of events to replay, `on_progress` each batch's count.
    """
    started = time.monotonic()
    summary = RebuildSummary(generation=f"g{int(time.time())}-{uuid.uuid4().hex[:6]}")
    consumer = topic_reader(settings, "arena-projections-rebuild")
    # Before the end offsets are read: every event after them reaches the new generation live.
    views.start_building(summary.generation)
    try:
        partitions = topic_partitions(consumer, settings.kafka_events_topic)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        beginnings = consumer.beginning_offsets(partitions)
        targets = consumer.end_offsets(partitions)
        on_start(sum(targets[p] - beginnings[p] for p in partitions))
        _drain(consumer, targets, views, summary, on_progress)
        for _ in range(MAX_CATCH_UP_PASSES):
            if not lagging_arenas(views, views.generation(), summary.generation):
                break
            _drain(consumer, consumer.end_offsets(partitions), views, summary, on_progress)
        summary.previous_generation = views.switch_to(summary.generation)
        _drain(consumer, consumer.end_offsets(partitions), views, summary, on_progress)
    finally:
        views.stop_building()
        consumer.close(autocommit=False)
    time.sleep(OLD_GENERATION_GRACE_SECONDS)  # let requests that resolved the old one finish
    summary.keys_dropped = views.drop(summary.previous_generation)
    summary.seconds = time.monotonic() - started
    return summary


def lagging_arenas(views: ArenaViews, old: str, new: str) -> list[str]:
    """Arenas whose view in generation `new` is at a lower version than in `old`."""
    old_keys, new_keys = views.keys(old), views.keys(new)
    redis = views.redis
    ids = [raw.decode() for raw in redis.zrange(old_keys.by_created, 0, -1)]
    behind = []
    for start in range(0, len(ids), COMPARE_CHUNK):
        chunk = ids[start : start + COMPARE_CHUNK]
        before = redis.mget([old_keys.view(arena_id) for arena_id in chunk])
        after = redis.mget([new_keys.view(arena_id) for arena_id in chunk])
        for arena_id, was, now in zip(chunk, before, after, strict=True):
            if _version(was) > _version(now):
                behind.append(arena_id)
    return behind


def _version(raw: bytes | None) -> int:
    view = load(raw)
    return int(view["version"]) if view else 0


def _drain(
    consumer: KafkaConsumer,
    targets: dict[TopicPartition, int],
    views: ArenaViews,
    summary: RebuildSummary,
    on_progress: Callable[[int], None],
) -> None:
    deadline = time.monotonic() + DRAIN_DEADLINE_SECONDS
    while any(consumer.position(p) < offset for p, offset in targets.items()):
        if time.monotonic() > deadline:
            raise TimeoutError("the rebuild did not reach the end of the log in time")
        batch = consumer.poll(timeout_ms=500, max_records=1000)
        records = [
            ReceivedRecord.from_record(record)
            for partition_records in batch.values()
            for record in partition_records
        ]
        _apply(views, records, summary)
        summary.events += len(records)
        on_progress(len(records))


def _apply(views: ArenaViews, records: list[ReceivedRecord], summary: RebuildSummary) -> None:
    """Apply to the new generation in batches; a poison event stalls its arena there, as it did
    live, and the writer parks its later events behind it."""
    batch: list[tuple[ReceivedRecord, EventEnvelope]] = []
    for received in records:
        try:
            batch.append((received, parse(received)))
        except POISON as unreadable:
            _apply_batch(views, batch, summary)  # what came before it, first
            batch = []
            _stall(views, received, unreadable, summary)
    _apply_batch(views, batch, summary)


def _apply_batch(
    views: ArenaViews, batch: list[tuple[ReceivedRecord, EventEnvelope]], summary: RebuildSummary
) -> None:
    envelopes = [envelope for _, envelope in batch]
    results = apply_events(views, envelopes, generation=summary.generation)
    for (received, envelope), result in zip(batch, results, strict=True):
        if result is None or isinstance(result, PoisonEvent):
            # rejected, or after a rejected one: one at a time, so the rejected one stalls its
            # arena before the later ones arrive (and park)
            [result] = apply_events(views, [envelope], generation=summary.generation)
            if isinstance(result, PoisonEvent):
                _stall(views, received, result, summary)
                continue
        if isinstance(result, EventOutOfOrder):
            raise result  # the log holds every event in order: a gap means it lost one
        assert result is not None
        summary.outcomes[result] += 1


def _stall(
    views: ArenaViews, received: ReceivedRecord, error: Exception, summary: RebuildSummary
) -> None:
    if received.key:
        stall(
            views,
            received.key,
            version=None,
            raw_event=received.value,
            reason=f"{type(error).__name__}: {error}",
            generation=summary.generation,
        )
        summary.stalled_arenas.add(received.key)
    summary.outcomes[Outcome.PARKED] += 1
