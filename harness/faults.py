"""The chaos matrix's faults: each one injected into a running pipeline, held, and recovered.

A process fault kills with SIGKILL (nothing is flushed, acked or committed) and starts the
process again a few seconds later, as `make run`'s supervisor or compose's restart policy would.
A service fault stops the service (`scripts/services.sh`) for a while and starts it again.

The faults of a topology's nodes (`TOPOLOGY_FAULTS["cluster"]`, run on the replicated stack of
stack/topology.py) SIGKILL one node, chosen by what it leads, and start it again with `python -m
stack … up` after the window; the recovery ends when the node is back in every in-sync replica
set of the run's topics, so the next row never starts with a partition one loss from stopping.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from celery import Celery
from redis import Redis

from arena.messaging.queues import queue_depths
from arena.readmodel.store import ArenaViews
from arena.settings import Settings
from harness.pipeline import Pipeline, produce
from harness.poison import poisoned_arena
from harness.processes import ROOT
from harness.waiting import wait_until
from stack.kafka_describe import Leadership, leadership
from stack.topology import Topology, cluster

SERVICES = ROOT / "scripts" / "services.sh"
RESTART_AFTER_SECONDS = 3.0  # how soon a supervisor starts a killed process again
STALL_WITHIN_SECONDS = 120.0
STACK_TIMEOUT_SECONDS = 300.0  # a node's cold start on a busy two-core machine
IN_SYNC_WITHIN_SECONDS = 180.0  # a restarted Kafka node back in every in-sync replica set


@dataclass
class Lab:
    """What a fault acts on: the pipeline's processes, the services, the read model."""

    pipeline: Pipeline
    settings: Settings
    views: ArenaViews
    celery_app: Celery
    notes: list[str] = field(default_factory=list)  # what the fault observed, for the table


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Lab], None]
    recover: Callable[[Lab], None]
    hold_seconds: float | None = None  # None: the matrix's --fault-seconds


def services(*command: str) -> None:
    subprocess.run(
        ["bash", str(SERVICES), *command], cwd=ROOT, check=True, timeout=180, capture_output=True
    )


def _killed(process: str) -> Fault:
    return Fault(
        f"SIGKILL {process}",
        lambda lab: lab.pipeline.kill(process),
        lambda lab: lab.pipeline.start(process),
        RESTART_AFTER_SECONDS,
    )


def _kill_worker_holding_tasks(lab: Lab) -> None:
    """Freeze the projection worker until tasks wait for it: RabbitMQ leaves none waiting while a
    consumer has a free prefetch slot, so the frozen worker then holds all it may; kill it.

    Beat is frozen meanwhile, and the queue drained of what it had sent, so that what waits (and
    what the worker holds) are projection tasks, not tick scheduling."""
    queue = lab.settings.celery_queue
    lab.pipeline.pause("beat")
    try:
        wait_until(
            lambda: queue_depths(lab.celery_app, [queue])[0].waiting == 0,
            deadline_seconds=30,
            what="beat's tasks taken from the queue",
        )
        lab.pipeline.pause("worker")
        try:
            wait_until(
                lambda: queue_depths(lab.celery_app, [queue])[0].waiting >= 1,
                deadline_seconds=30,
                what="projection tasks waiting for the worker",
            )
            lab.notes.append("killed holding tasks")
        except AssertionError:
            lab.notes.append("no projection task waited: killed without a backlog")
        lab.pipeline.kill("worker")
    finally:
        lab.pipeline.resume("beat")


def _restarted(service: str, label: str) -> Fault:
    return Fault(
        f"restart {label}",
        lambda _: services(f"stop-{service}"),
        lambda _: services(f"start-{service}"),
    )


def _poison(lab: Lab) -> None:
    """An arena none of the load's, whose third event no projection knows: it must stall, with its
    poison in the DLQ, while every other arena flows."""
    arena, _, envelopes = poisoned_arena()
    produce(lab.settings, envelopes)
    wait_until(
        lambda: any(s.arena_id == str(arena.id) for s in lab.views.stalls()),
        deadline_seconds=STALL_WITHIN_SECONDS,
        what="the poisoned arena stalled",
    )
    lab.notes.append("poisoned arena stalled, others flowed")


def _read_model(lab: Lab) -> Redis:
    return Redis.from_url(lab.settings.redis_url, socket_timeout=5)


def _refuse_writes(lab: Lab) -> None:
    """What a full disk does to Redis's writes (an append-only file it cannot grow): refused with
    an error, reads still served. A memory cap below what it holds does the same, reversibly."""
    redis = _read_model(lab)
    used = int(redis.info("memory")["used_memory"])
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", max(1, used // 2))
    redis.close()


def _accept_writes(lab: Lab) -> None:
    redis = _read_model(lab)
    redis.config_set("maxmemory", 0)
    redis.close()


# --- the nodes of a replicated topology ------------------------------------------------------


def stack_kafka(stack: Topology, *command: str) -> None:
    """`python -m stack kafka COMMAND… --topology NAME`, as an operator runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "stack", "kafka", *command, "--topology", stack.name],
        cwd=ROOT,
        timeout=STACK_TIMEOUT_SECONDS,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stack kafka {' '.join(command)}: {done.stdout}{done.stderr}")


def _run_topics(lab: Lab) -> list[str]:
    return [lab.settings.kafka_events_topic, lab.settings.kafka_dlq_topic]


def busiest_leader(known: Leadership) -> int:
    """The broker leading the most partitions of the topics asked about; of several that lead as
    many, one that is not the controller leader (that is the other row's fault)."""
    led = known.partitions_led()
    most = max(led.values())
    tied = sorted(node for node, count in led.items() if count == most)
    return next((node for node in tied if node != known.controller_leader), tied[0])


def controller_leader(known: Leadership) -> int:
    return known.controller_leader


def _kill_kafka_node(stack: Topology, choose: Callable[[Leadership], int]) -> Callable[[Lab], None]:
    def inject(lab: Lab) -> None:
        known = leadership(stack, [lab.settings.kafka_events_topic])
        node = choose(known)
        led = known.partitions_led()
        role = " and the controller leader" if node == known.controller_leader else ""
        lab.notes.append(
            f"killed node {node} (leading {led[node]} of {sum(led.values())} partitions{role})"
        )
        stack_kafka(stack, "kill", str(node))

    return inject


def _kafka_node_back(stack: Topology) -> Callable[[Lab], None]:
    def recover(lab: Lab) -> None:
        started = time.monotonic()
        stack_kafka(stack, "up")  # starts the killed node only
        serving = time.monotonic() - started

        def all_in_sync() -> bool:
            partitions = [
                p for t in leadership(stack, _run_topics(lab)).topics for p in t["partitions"]
            ]
            return bool(partitions) and all(
                set(p["isr_nodes"]) == set(p["replica_nodes"]) for p in partitions
            )

        wait_until(
            all_in_sync,
            deadline_seconds=IN_SYNC_WITHIN_SECONDS,
            interval=0.5,
            what="the restarted node back in every in-sync replica set",
        )
        in_sync = time.monotonic() - started
        lab.notes.append(f"back: serving {serving:.0f} s, in sync {in_sync:.0f} s after `up`")

    return recover


def kafka_cluster_faults(stack: Topology) -> tuple[Fault, ...]:
    return (
        Fault(
            "SIGKILL busiest Kafka leader",
            _kill_kafka_node(stack, busiest_leader),
            _kafka_node_back(stack),
        ),
        Fault(
            "SIGKILL KRaft controller leader",
            _kill_kafka_node(stack, controller_leader),
            _kafka_node_back(stack),
        ),
    )


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        _killed("api"),
        _killed("relay"),
        Fault(
            "SIGKILL worker",
            _kill_worker_holding_tasks,
            lambda lab: lab.pipeline.start("worker"),
            RESTART_AFTER_SECONDS,
        ),
        _killed("beat"),
        _killed("consumer"),
        _restarted("kafka", "Kafka"),
        _restarted("rabbitmq", "RabbitMQ"),
        _restarted("readmodel", "read-model Redis"),
        _restarted("postgres", "PostgreSQL"),
        Fault("poison event", _poison, lambda _: None, 0.0),
        Fault("read model refuses writes", _refuse_writes, _accept_writes),
    )
}
SHORT = ("SIGKILL api", "SIGKILL relay", "poison event", "read model refuses writes")

# The faults of each topology's matrix. The cluster's rows for RabbitMQ, Redis, PostgreSQL, the
# consumers, a relay worker and a network cut join this tuple as those parts of issue 25 land.
CLUSTER_FAULTS: dict[str, Fault] = {
    fault.name: fault for fault in (*kafka_cluster_faults(cluster(ROOT)),)
}
CLUSTER_SHORT = ("SIGKILL busiest Kafka leader",)
TOPOLOGY_FAULTS: dict[str, dict[str, Fault]] = {"single": FAULTS, "cluster": CLUSTER_FAULTS}
