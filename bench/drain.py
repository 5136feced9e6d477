"""Relay drain: how fast the tree's own relay worker empties a backlog of pending outbox rows.

The relay benchmark (bench/relay_throughput.py) measures `relay_pending` in-process, which would
run this checkout's code whatever tree is measured. Here the rows are COPYed into the run's
outbox (after the replay, so they do not swell it; no consumer is running then) and the
tree's relay worker, started from its Procfile and woken as that tree wakes it (beat, its own
wake-ups), drains them. Timed from the first batch's claim (its rows' `published_at`, the
claiming transaction's start) until nothing is pending, so the rate does not depend on how the
relay is woken; the wake-up itself is in the notes.
"""

from __future__ import annotations

import time

import click
import psycopg

from bench.backlog import load_outbox, pending_rows
from bench.cpu import CpuMeter, Usage
from bench.processes import Processes
from bench.table import Row
from harness.resources import Run

DRAIN_ARENAS = 1000
POLL_SECONDS = 0.25


def relay_drain(
    run: Run,
    processes: Processes,
    meter: CpuMeter,
    count: int,
    deadline_seconds: float,
) -> tuple[Row, Usage]:
    """Load `count` pending rows, wait until the worker has published them; the row and CPU."""
    load_outbox(run, count, DRAIN_ARENAS, "relay drain: load     ")
    committed = time.time()
    window = meter.begin()
    deadline = time.monotonic() + deadline_seconds
    pending = count
    with click.progressbar(length=count, label="relay drain: publish  ") as bar:
        while time.monotonic() < deadline:
            now = pending_rows(run)
            bar.update(pending - now)
            pending = now
            if pending == 0:
                break
            processes.check()
            time.sleep(POLL_SECONDS)
    finished = time.time()
    usage = meter.end(window, count - pending)
    with psycopg.connect(run.dsn) as connection:
        first, published = connection.execute(
            "SELECT extract(epoch FROM min(published_at))::float8, count(*) FROM outbox"
            " WHERE published_at >= to_timestamp(%s)",
            (committed,),
        ).fetchone() or (None, 0)
    began = first if first is not None else committed
    wall = finished - began
    row = Row.timed(
        "Relay drain: pending outbox rows → Kafka",
        count - pending,
        wall,
        notes=(
            f"the tree's relay worker; from the first batch's claim to nothing pending (polled "
            f"every {POLL_SECONDS:g} s); first claim {began - committed:.2f} s after the COPY; "
            f"{published:,} marked published, {pending} left"
        ),
        ok=pending == 0,
    )
    return row, usage
