"""Capacity: the highest offered rate at which commands still show in the read model quickly.

The offered rate steps up (25, 50, 100, … commands/s, `--capacity-seconds` each) until a step
fails, then `--capacity-refine` steps bisect (geometrically) between the last rate that passed
and the first that failed. A step passes when every command was accepted and applied and the
p99 of command → visible is within the target. Latency runs from the command's *scheduled*
send time, not from when a client thread got round to it: an open-loop client that falls behind
must not hide the queueing (coordinated omission). A step also fails when the client cannot
offer the rate (it runs more than LAG_LIMIT_SECONDS behind its schedule, or too many commands
wait for a free client), because then the figure would be this client's, not the pipeline's.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import click

from bench.processes import Processes
from bench.table import Row
from bench.workload import Answer, Driver, Visibility
from harness.script import Session

TARGET_P99_MS = 250.0
FIRST_RATE = 25.0
CLIENTS = 64  # client threads: enough for ~250 ms answers at a few hundred commands/s
LAG_LIMIT_SECONDS = 0.5
BACKLOG_LIMIT_SECONDS = 2.0  # commands waiting for a client, in seconds of the offered rate
DRAIN_LIMIT_SECONDS = 20.0  # after the last send, for the rest to show
LIVE_PER_RATE = 0.1  # arenas in play per command/s: each has one command in flight at most


@dataclass
class Step:
    rate: float
    sent: int = 0
    applied: int = 0
    failed: int = 0
    wall: float = 0.0
    p50: float | None = None
    p99: float | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason

    def summary(self) -> str:
        outcome = "✓" if self.ok else f"✗ {self.reason}"
        p99 = "—" if self.p99 is None else f"{self.p99:,.0f}"
        return f"{self.rate:g}/s p99 {p99} ms {outcome}"


def _nearest_rank(values: list[float], share: float) -> float | None:
    """A percentile that copes with commands never shown (infinite latency)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def run_step(
    port: int,
    visibility: Visibility,
    processes: Processes,
    rate: float,
    seconds: float,
    target_ms: float,
) -> Step:
    """Offer `rate` commands/s for `seconds`; answers the step's figures and verdict."""
    step = Step(rate)
    driver = Driver(port, f"cap-{rate:g}", max(8, math.ceil(rate * LIVE_PER_RATE)))
    lock = threading.Lock()
    due_of: dict[str, float] = {}
    answers: list[Answer] = []

    def one(session: Session, due: float) -> None:
        answer = driver.run(session)
        visibility.expect(answer)
        with lock:
            due_of[answer.key] = due
            answers.append(answer)

    count = max(1, round(rate * seconds))
    futures: list[Future[None]] = []
    with ThreadPoolExecutor(CLIENTS, thread_name_prefix="capacity") as pool:
        started = time.monotonic() + 0.05
        with click.progressbar(range(count), label=f"capacity: {rate:>5g}/s      ") as bar:
            for index in bar:
                due = started + index / rate
                now = time.monotonic()
                if now - due > LAG_LIMIT_SECONDS:
                    step.reason = f"could not be offered (client {now - due:.1f} s behind)"
                    break
                with lock:
                    waiting = len(futures) - len(answers)
                if waiting > CLIENTS + rate * BACKLOG_LIMIT_SECONDS:
                    step.reason = f"API fell behind ({waiting} commands waiting for an answer)"
                    break
                if due > now:
                    time.sleep(due - now)
                futures.append(pool.submit(one, driver.take(), due))
        for future in futures:
            future.result()
    step.wall = time.monotonic() - started
    step.sent = len(answers)
    accepted = [a for a in answers if a.ok]
    step.failed = step.sent - len(accepted)
    deadline = time.monotonic() + DRAIN_LIMIT_SECONDS
    while time.monotonic() < deadline and any(a.key not in visibility.seen for a in accepted):
        processes.check()
        time.sleep(0.1)
    latencies = [
        1000 * (visibility.seen[a.key] - due_of[a.key]) if a.key in visibility.seen else math.inf
        for a in accepted
    ]
    step.applied = sum(1 for value in latencies if value != math.inf)
    step.p50, step.p99 = _nearest_rank(latencies, 0.50), _nearest_rank(latencies, 0.99)
    if not step.reason and step.failed:
        step.reason = f"{step.failed} commands failed"
    elif not step.reason and step.applied < len(accepted):
        step.reason = f"{len(accepted) - step.applied} not applied {DRAIN_LIMIT_SECONDS:g} s later"
    elif not step.reason and (step.p99 is None or step.p99 > target_ms):
        step.reason = f"p99 over {target_ms:g} ms"
    return step


def capacity_rows(
    port: int,
    visibility: Visibility,
    processes: Processes,
    seconds: float,
    refine: int,
    deadline: float,
    target_ms: float = TARGET_P99_MS,
) -> list[Row]:
    """Step the offered rate up until a step fails, refine, and answer the rows."""
    steps: list[Step] = []
    rate = FIRST_RATE
    while time.monotonic() < deadline:
        steps.append(run_step(port, visibility, processes, rate, seconds, target_ms))
        if not steps[-1].ok:
            break
        rate *= 2
    while not any(s.ok for s in steps) and rate > FIRST_RATE / 4 and time.monotonic() < deadline:
        rate /= 2  # not even the first rate: step down, so that there is a figure to compare
        steps.append(run_step(port, visibility, processes, rate, seconds, target_ms))
    for _ in range(refine):
        passed = [s.rate for s in steps if s.ok]
        failed = [s.rate for s in steps if not s.ok]
        if not passed or not failed or time.monotonic() > deadline:
            break
        low, high = max(passed), min(r for r in failed if r > max(passed))
        middle = float(round(math.sqrt(low * high)))
        if middle in (low, high):
            break
        steps.append(run_step(port, visibility, processes, middle, seconds, target_ms))
    best = max((s for s in steps if s.ok), key=lambda s: s.rate, default=None)
    tried = ", ".join(s.summary() for s in sorted(steps, key=lambda s: s.rate))
    summary = Row(
        f"Capacity: highest offered commands/s with command → visible p99 ≤ {target_ms:g} ms",
        n=best.applied if best else 0,
        rate=best.rate if best else None,
        p50=best.p50 if best else None,
        p99=best.p99 if best else None,
        notes=(
            f"events/s = offered rate; p from scheduled send to applied in Redis (open loop, "
            f"{seconds:g} s steps); " + (tried if best else f"none passed: {tried}")
        ),
        ok=best is not None,
    )
    rows = [summary]
    for step in sorted(steps, key=lambda s: s.rate):
        rows.append(
            Row.timed(
                f"  · capacity step, offered {step.rate:g}/s",
                step.applied,
                step.wall,
                p50=step.p50,
                p99=step.p99,
                notes=("passed" if step.ok else f"failed: {step.reason}")
                + f"; events/s = applied ÷ sending time; {step.sent} sent",
            )
        )
    return rows
