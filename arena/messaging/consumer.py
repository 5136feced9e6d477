"""The long-running consumer loop behind `flask consume`.

Offsets are committed only up to records already handed to the Celery broker, so a crash
re-delivers (never drops) records; projections are idempotent, so re-delivery is harmless.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from arena.messaging.dispatch import BatchTooLargeForBroker
from arena.messaging.records import ReceivedRecord
from arena.pacing import Pace

log = logging.getLogger(__name__)


Handle = str  # names a dispatched batch (its Celery task id) until it has finished


def consume(
    consumer: KafkaConsumer,
    dispatch: Callable[[list[ReceivedRecord]], Handle | None],
    should_stop: Callable[[], bool],
    *,
    still_running: Callable[[set[Handle]], set[Handle]] = lambda handles: set(),
    max_per_dispatch: int = 1000,
    max_bytes_per_dispatch: int = 16 * 1024 * 1024,
    poll_timeout_ms: int = 500,
    busy_poll_timeout_ms: int = 5,
    max_records: int = 1000,
    max_buffered: int = 20_000,
    max_buffered_bytes: int = 64 * 1024 * 1024,
    commit_interval_seconds: float = 0.0,
    pace: Pace | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Poll, dispatch, commit until `should_stop()`; return how many records were dispatched.

    Each partition is a lane with at most one dispatched batch unfinished (`still_running` tells
    which handles are): while one runs, its partition's records gather. A batch takes the
    records of every partition with nothing in flight (up to `max_per_dispatch` in all, and up to
    `max_bytes_per_dispatch` of them as a task carries them; a larger record goes alone), so one
    task serves many partitions and batches grow with the load (one event each when idle,
    hundreds when busy), which is what makes per-task cost small per event; beyond `pace`,
    records wait for its next token, so that under load they gather into fewer, larger tasks
    instead of each paying a task's fixed cost. Since an arena's
    events share a partition, projections of one arena never race. A dispatch returning None has
    finished already. Offsets are committed up to the last record handed on, per partition, at
    most every `commit_interval_seconds` and once more on a clean stop (each commit is a broker
    write; a crash re-delivers what was not yet committed, which projections ignore); a
    partition with `max_buffered` records, or `max_buffered_bytes` of them, waiting is paused
    (records may be as large as a Kafka message: a count alone would let one lane hold
    gigabytes). A dispatch raising BatchTooLargeForBroker keeps its records, which go again in
    batches of at most the bytes it names.
    """
    lanes = _Lanes(max_per_dispatch, max_bytes_per_dispatch, max_buffered, max_buffered_bytes)
    pace = pace or Pace.unlimited()
    dispatched = uncommitted = 0
    last_commit = clock()

    def commit() -> None:
        nonlocal uncommitted, last_commit
        log.info("dispatched %d event(s), %d in total", uncommitted, dispatched)
        _commit(consumer, lanes.take_offsets())
        uncommitted, last_commit = 0, clock()

    try:
        while not should_stop():
            timeout_ms = busy_poll_timeout_ms if lanes.blocked() else poll_timeout_ms
            if lanes.ready() and (gather := pace.wait_seconds()) > 0:
                timeout_ms = min(timeout_ms, math.ceil(gather * 1000))
            try:
                batch = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
            except KafkaError as error:
                log.warning("poll failed (%r); polling again in a second", error)
                time.sleep(1.0)
                continue
            lanes.keep_only(consumer.assignment())
            for partition, records in batch.items():
                lanes.add(partition, [ReceivedRecord.from_record(r) for r in records])
            # Every time round while a batch runs, not only once records wait behind it: a
            # finished mark is read soon after it is written, long before it expires.
            lanes.finished(still_running)
            sent = lanes.dispatch(dispatch, pace)
            dispatched, uncommitted = dispatched + sent, uncommitted + sent
            if uncommitted and clock() - last_commit >= commit_interval_seconds:
                commit()
            lanes.apply_back_pressure(consumer)
        if uncommitted:
            commit()
    finally:
        consumer.close(autocommit=False)
    return dispatched


class _Lanes:
    """Per partition: records not yet dispatched (and the bytes they add to tasks, kept as they
    come and go so that back-pressure costs nothing per poll), and the batch in flight."""

    def __init__(
        self,
        max_per_dispatch: int,
        max_bytes_per_dispatch: int,
        max_buffered: int,
        max_buffered_bytes: int,
    ) -> None:
        self._max_per_dispatch = max_per_dispatch
        self._max_bytes_per_dispatch = max_bytes_per_dispatch
        self._max_buffered = max_buffered
        self._max_buffered_bytes = max_buffered_bytes
        self._waiting: dict[TopicPartition, list[ReceivedRecord]] = {}
        self._bytes: dict[TopicPartition, int] = {}
        self._running: dict[TopicPartition, Handle] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()

    def blocked(self) -> bool:
        """Records wait behind a batch in flight. Only then is it worth polling briefly, to ask
        again soon which batches are done; otherwise new records wake the poll."""
        return any(waiting and p in self._running for p, waiting in self._waiting.items())

    def ready(self) -> bool:
        """Records wait with nothing in flight for their partition: a batch could go now."""
        return any(waiting and p not in self._running for p, waiting in self._waiting.items())

    def keep_only(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance, partitions taken away are another member's: their records come to
        it from the last committed offset."""
        for lane in (self._waiting, self._bytes, self._running, self._offsets):
            for partition in [p for p in lane if p not in assigned]:
                del lane[partition]
        self._paused &= assigned

    def add(self, partition: TopicPartition, events: list[ReceivedRecord]) -> None:
        self._waiting.setdefault(partition, []).extend(events)
        self._bytes[partition] = self._bytes.get(partition, 0) + _task_bytes(events)

    def finished(self, still_running: Callable[[set[Handle]], set[Handle]]) -> None:
        if not self._running:
            return
        running = still_running(set(self._running.values()))
        self._running = {p: h for p, h in self._running.items() if h in running}

    def dispatch(
        self, dispatch: Callable[[list[ReceivedRecord]], Handle | None], pace: Pace
    ) -> int:
        """Hand on batches, as `pace` allows, until every partition with records waiting has one
        in flight; a partition's records leave only once `dispatch` has accepted them."""
        sent = 0
        while pace.wait_seconds() == 0 and (taken := self._next_batch()):
            pace.take()
            try:
                handle = dispatch([event for _, events in taken for event in events])
            except BatchTooLargeForBroker as refusal:
                self._max_bytes_per_dispatch = min(
                    self._max_bytes_per_dispatch, refusal.max_record_bytes
                )
                continue
            for partition, events in taken:
                del self._waiting[partition][: len(events)]
                self._bytes[partition] -= _task_bytes(events)
                self._offsets[partition] = events[-1].offset + 1
                sent += len(events)
                if handle is not None:
                    self._running[partition] = handle
        return sent

    def _next_batch(self) -> list[tuple[TopicPartition, list[ReceivedRecord]]]:
        """The waiting records of partitions with nothing in flight, in order per partition, as
        many as the count and the bytes allow, and at least one."""
        taken: list[tuple[TopicPartition, list[ReceivedRecord]]] = []
        room, room_bytes = self._max_per_dispatch, self._max_bytes_per_dispatch
        for partition, waiting in self._waiting.items():
            if not waiting or partition in self._running:
                continue
            count = 0
            for event in waiting[:room]:
                if event.task_bytes > room_bytes and (count or taken):
                    break
                count, room_bytes = count + 1, room_bytes - event.task_bytes
            if count == 0:
                break
            taken.append((partition, waiting[:count]))
            room -= count
        return taken

    def take_offsets(self) -> dict[TopicPartition, OffsetAndMetadata]:
        offsets = {p: OffsetAndMetadata(o, "", -1) for p, o in self._offsets.items()}
        self._offsets.clear()
        return offsets

    def apply_back_pressure(self, consumer: KafkaConsumer) -> None:
        full = {
            p
            for p, waiting in self._waiting.items()
            if len(waiting) >= self._max_buffered or self._bytes[p] >= self._max_buffered_bytes
        }
        if pause := full - self._paused:
            consumer.pause(*pause)
        if resume := self._paused - full:
            consumer.resume(*resume)
        self._paused = full


def _task_bytes(events: list[ReceivedRecord]) -> int:
    return sum(event.task_bytes for event in events)


def _commit(consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
    """Commit what was dispatched; if Kafka is away, the records are delivered again later (or
    to another member after a rebalance), and projections ignore duplicates."""
    try:
        consumer.commit(offsets)
    except KafkaError as error:
        log.warning("offset commit failed (%r); carrying on", error)
