"""What the benchmarks watch while the pipeline runs, each in a thread: every event's arrival in
Kafka (to split a command's latency into hops), Celery's own task events (what the workers spend
their time on), and the Celery queues' depths."""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask
from kafka import KafkaConsumer, TopicPartition
from kombu.connection import Connection
from kombu.exceptions import ChannelError

from arena.bootstrap import components
from arena.messaging.queues import BROKER_ERRORS, BROKER_TIMEOUT_SECONDS
from arena.settings import Settings
from bench.procfile import PROJECT_TASK, RELAY_TASK
from harness.services import broker_connection


@dataclass(frozen=True, slots=True)
class Arrival:
    received_mono: float
    received_wall: float
    created_wall: float  # the record's CreateTime: when the relay called producer.send()


class KafkaArrivals(threading.Thread):
    """Consumes the bench topic from its current end, noting when each event arrives."""

    def __init__(self, settings: Settings, deadline_seconds: float) -> None:
        super().__init__(name="kafka-arrivals", daemon=True)
        self.arrivals: dict[str, Arrival] = {}
        self._stopping = threading.Event()
        self._deadline = time.monotonic() + deadline_seconds
        self._consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=settings.kafka_consumer_group,
            client_id="arena-bench-latency",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        topic = settings.kafka_events_topic
        partitions = self._consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"no partitions for {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)  # no group join to wait for
        self._consumer.seek_to_end()
        for tp in tps:
            self._consumer.position(tp)  # resolve "the end" now, before any command is sent

    def run(self) -> None:
        try:
            while not self._stopping.is_set() and time.monotonic() < self._deadline:
                batch = self._consumer.poll(timeout_ms=100)
                received_mono, received_wall = time.monotonic(), time.time()
                for record in itertools.chain.from_iterable(batch.values()):
                    headers = dict(record.headers or [])
                    correlation = headers.get("correlationId", b"").decode()
                    arrival = Arrival(received_mono, received_wall, record.timestamp / 1000)
                    self.arrivals.setdefault(correlation, arrival)
        finally:
            self._consumer.close()

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=10)


class TaskEvents(threading.Thread):
    """Celery's own task events (the app turns them on) for this run's relay and projection
    tasks, received in a thread: when each was sent (by the API, beat or the consumer), started,
    how long it ran, what it returned, and whether it was retried or discarded as expired.
    Shows what the workers spend their time on."""

    def __init__(self, flask_app: Flask, worker_prefix: str, queues: set[str]) -> None:
        super().__init__(name="celery-events", daemon=True)
        self._celery = components(flask_app).celery
        self._worker_prefix = worker_prefix
        self._queues = queues
        self._receiver: Any = None
        self._lock = threading.Lock()
        self._tasks: dict[str, dict[str, Any]] = {}
        self.ready = threading.Event()

    def run(self) -> None:
        with self._celery.connection_for_read() as connection:
            self._receiver = self._celery.events.Receiver(connection, handlers={"*": self._on})
            self.ready.set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self.join(timeout=10)

    def _on(self, message: dict[str, Any]) -> None:
        kind, task_id = message.get("type", ""), message.get("uuid")
        if not kind.startswith("task-") or task_id is None:
            return
        with self._lock:
            if kind == "task-sent":  # a retry is sent again under the same id
                name = message.get("name")
                if name in (RELAY_TASK, PROJECT_TASK) and message.get("queue") in self._queues:
                    sent = self._tasks.setdefault(task_id, {"name": name, "retries": 0})
                    sent.setdefault("sent", message.get("timestamp"))
                return
            record = self._tasks.get(task_id)
            if record is None or not str(message.get("hostname", "")).startswith(
                self._worker_prefix
            ):
                return  # not ours: another engineer's worker on the shared broker
            if kind == "task-started":
                record.setdefault("started", message.get("timestamp"))
            elif kind == "task-retried":
                record["retries"] += 1
            elif kind == "task-succeeded":
                record["runtime"] = message.get("runtime")
                record["result"] = message.get("result")
            elif kind == "task-revoked":
                record["expired"] = bool(message.get("expired"))

    def window(self, name: str, since: float, until: float = float("inf")) -> list[dict[str, Any]]:
        """Tasks `name` first sent between the two wall-clock times."""
        with self._lock:
            return [
                dict(r)
                for r in self._tasks.values()
                if r["name"] == name and since <= (r.get("sent") or 0) <= until
            ]


class QueueDepthProbe(threading.Thread):
    """Samples the Celery queues' depths (the tasks ready; not those the workers hold): with one
    queue, relay nudges and projection tasks wait there together; a tree may give each its own.

    A passive declare per queue, which creates nothing, on one long-lived connection (a connection
    per sample would add its set-up, four times a second, to the CPU the broker is measured for);
    kombu answers it for RabbitMQ and for an older tree's Redis broker alike. A queue not declared
    yet counts 0."""

    def __init__(self, settings: Settings, queues: set[str]) -> None:
        super().__init__(name="queue-depth", daemon=True)
        self._broker_url = settings.celery_broker_url
        self._connection = self._connect()
        # The broker away: the socket's, kombu's, AMQP's or the transport's own (Redis) errors.
        self._errors = (
            *BROKER_ERRORS,
            *self._connection.connection_errors,
            *self._connection.channel_errors,
        )
        self._missing = (ChannelError, *self._connection.channel_errors)  # NOT_FOUND
        self._queues = sorted(queues)
        self._stop_flag = threading.Event()
        self.samples: list[tuple[float, dict[str, int]]] = []

    def _connect(self) -> Connection:
        return broker_connection(self._broker_url, BROKER_TIMEOUT_SECONDS)

    def _depths(self) -> dict[str, int]:
        self._connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)  # type: ignore[no-untyped-call]
        channel = self._connection.default_channel
        depths = {}
        for queue in self._queues:
            try:
                _, depths[queue], _ = channel.queue_declare(queue, passive=True)  # type: ignore[no-untyped-call]
            except self._missing:
                # RabbitMQ closes the channel that asked; pyamqp opens it again before raising.
                depths[queue] = 0
        return depths

    def run(self) -> None:
        while not self._stop_flag.wait(0.25):
            try:
                depths = self._depths()
            except self._errors:  # no sample while the broker is away; connect anew next time
                with contextlib.suppress(*self._errors):
                    self._connection.release()  # type: ignore[no-untyped-call]
                self._connection = self._connect()
                continue
            self.samples.append((time.monotonic(), depths))

    def peak(self, since: float, until: float) -> str:
        """The peak depth in the window, per queue when there are several."""
        window = [depths for at, depths in self.samples if since <= at <= until]
        peaks = {q: max((d[q] for d in window), default=0) for q in self._queues}
        if len(peaks) == 1:
            return str(next(iter(peaks.values())))
        return ", ".join(
            f"{q.rsplit('.', 1)[-1] if '.' in q else 'default'} {n}" for q, n in peaks.items()
        )

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=5)
        with contextlib.suppress(*self._errors):
            self._connection.release()  # type: ignore[no-untyped-call]
