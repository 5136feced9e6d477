"""The pipeline benchmark's rows for its live phases, from what they recorded: commands accepted
per second, answer → visible with the hops it splits into, the burst's drain, and what the
workers' processes did meanwhile (Celery's task events)."""

from __future__ import annotations

from bench.probes import KafkaArrivals, TaskEvents
from bench.procfile import PROJECT_TASK, RELAY_TASK
from bench.table import Row, distribution
from bench.workload import WATCH_INTERVAL_SECONDS, Answer, Readers, Visibility
from harness.stats import percentiles


def api_row(name: str, answers: list[Answer], notes: str) -> Row:
    """Commands accepted per second, from the first send to the last answer; p = request time."""
    accepted = [a for a in answers if a.ok]
    failed = len(answers) - len(accepted)
    wall = (max(a.returned for a in answers) - min(a.sent for a in answers)) if answers else 0.0
    return Row.timed(
        name,
        len(accepted),
        wall,
        notes=f"p = request time; {notes}" + (f"; {failed} FAILED" if failed else ""),
        ok=failed == 0,
        **percentiles([a.request_ms for a in accepted]),
    )


def latency_rows(
    answers: list[Answer],
    readers: Readers,
    visibility: Visibility,
    arrivals: KafkaArrivals,
    read_wait_seconds: float,
    read_every: int,
) -> list[Row]:
    """Answer → visible to a client (?minVersion), and the hops it splits into."""
    accepted = [a for a in answers if a.ok]
    by_read = [1000 * (readers.seen[a.key] - a.returned) for a in accepted if a.key in readers.seen]
    in_store = [a for a in accepted if a.key in visibility.seen]
    applied = [1000 * max(0.0, visibility.seen[a.key] - a.returned) for a in in_store]
    reached_kafka = [(a, arrivals.arrivals[a.key]) for a in in_store if a.key in arrivals.arrivals]
    to_send = [1000 * (k.created_wall - a.returned_wall) for a, k in reached_kafka]
    send_to_receive = [1000 * (k.received_wall - k.created_wall) for _, k in reached_kafka]
    receive_to_applied = [
        1000 * (visibility.seen[a.key] - k.received_mono) for a, k in reached_kafka
    ]
    asked = len(readers.asked)
    missing = asked - len(by_read)
    extra = []
    if readers.behind:
        extra.append(f"{readers.behind} x 503 after {read_wait_seconds:g} s, re-read")
    if readers.refused:
        extra.append(f"{readers.refused} x 503 at once (server's waiters full), re-read")
    if readers.errors:
        extra.append(f"{len(readers.errors)} read errors, e.g. {readers.errors[0]}")
    return [
        Row(
            "Command answer → visible via GET ?minVersion=N",
            n=len(by_read),
            notes="; ".join(
                [
                    f"{len(by_read)}/{asked} read back (1 command in {read_every})",
                    "threaded reads gunicorn",
                    *extra,
                ]
            ),
            ok=missing == 0,
            **percentiles(by_read),
        ),
        distribution(
            "  · answer → applied in Redis (store poll)",
            applied,
            f"MGET every ≥{1000 * WATCH_INTERVAL_SECONDS:.0f} ms; ?minVersion polls each 20 ms",
        ),
        distribution(
            "  · answer → relay send() (Kafka CreateTime)",
            to_send,
            "nudge → Celery → relay claim (ms clock)",
        ),
        distribution(
            "  · relay send() → Kafka receive",
            send_to_receive,
            "linger, acks=all, fetch (ms clock)",
        ),
        distribution(
            "  · Kafka receive → applied in Redis",
            receive_to_applied,
            "consumer poll → Celery task → projection",
        ),
    ]


def burst_drain_row(answers: list[Answer], visibility: Visibility) -> Row:
    """The whole pipeline under the burst: first command sent → last one applied in Redis."""
    accepted = [a for a in answers if a.ok]
    applied = [a for a in accepted if a.key in visibility.seen]
    if not applied:
        return Row("Burst: first command → all applied in Redis", n=0, ok=False)
    wall = max(visibility.seen[a.key] for a in applied) - min(a.sent for a in answers)
    return Row.timed(
        "Burst: first command → all applied in Redis",
        len(applied),
        wall,
        notes=f"p = answer → applied; {len(applied)}/{len(accepted)} applied; whole pipeline",
        ok=len(applied) == len(accepted),
        **percentiles([1000 * max(0.0, visibility.seen[a.key] - a.returned) for a in applied]),
    )


def worker_rows(tasks: TaskEvents, since: float, until: float, during: str) -> list[Row]:
    """What the worker's processes did meanwhile: relay runs (one per command, via the nudge,
    plus beat's) and projection tasks; p = runtime."""
    window = until - since
    rows = []
    for label, name in (("relay tasks", RELAY_TASK), ("projection tasks", PROJECT_TASK)):
        records = tasks.window(name, since, until)
        runtimes = [1000 * r["runtime"] for r in records if r.get("runtime") is not None]
        pickup = percentiles([1000 * (r["started"] - r["sent"]) for r in records if "started" in r])
        expired = sum(1 for r in records if r.get("expired"))
        idle = sum(1 for r in records if name == RELAY_TASK and r.get("result") == "0")
        busy = sum(runtimes) / 1000
        notes = (
            f"p = runtime; {busy:.1f} s of worker time in {window:.1f} s; "
            f"wait in queue p50 {pickup['p50'] or 0:.0f} ms, max {pickup['max'] or 0:.0f} ms"
        )
        retried = sum(r["retries"] for r in records)
        if retried:
            notes += f"; {retried} retries"
        if idle:
            notes += f"; {idle} found nothing to publish"
        if expired:
            notes += f"; {expired} expired unrun"
        rows.append(distribution(f"  · {label} sent during the {during}", runtimes, notes))
        rows[-1].n = len(records)
    return rows
