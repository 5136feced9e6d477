"""The soak: a steady load for minutes, and each pipeline process's memory over it.

The target: at half the capacity for ten minutes, no process's resident memory grows by more
than 10%. The first `warmup` seconds fill pools, caches and lazy imports, so growth counts
from the sample taken then to the last one. Memory is the resident set (VmRSS, /proc) of each
pipeline process with its children (gunicorn and Celery with their workers), by kind.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.compare import Measure
from bench.processes import Processes
from bench.workload import Driver, Visibility, steady, wait_until_applied

SAMPLE_SECONDS = 10.0
MAX_GROWTH = 0.10


def resident_mib(roots: dict[int, str]) -> dict[str, float]:
    """MiB resident per kind of process, each with all its descendants."""
    parents: dict[int, int] = {}
    resident: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            status = dict(
                line.split(":", 1) for line in (entry / "status").read_text().splitlines()
            )
            parents[int(entry.name)] = int(status["PPid"])
            resident[int(entry.name)] = int(status.get("VmRSS", "0 kB").split()[0]) / 1024
    totals: dict[str, float] = {}
    for pid, label in roots.items():
        family, stack = 0.0, [pid]
        while stack:
            current = stack.pop()
            family += resident.get(current, 0.0)
            stack += [child for child, parent in parents.items() if parent == current]
        totals[label] = totals.get(label, 0.0) + family
    return totals


class MemorySampler(threading.Thread):
    def __init__(self, processes: Processes) -> None:
        super().__init__(name="memory", daemon=True)
        self._processes = processes
        self._stop_flag = threading.Event()
        self.samples: list[tuple[float, dict[str, float]]] = []

    def run(self) -> None:
        started = time.monotonic()
        while True:
            self.samples.append((time.monotonic() - started, resident_mib(self._processes.roots())))
            if self._stop_flag.wait(SAMPLE_SECONDS):
                return

    def stop(self) -> None:
        self._stop_flag.set()
        self.join(timeout=30)


def soak(
    port: int,
    visibility: Visibility,
    processes: Processes,
    pool: ThreadPoolExecutor,
    rate: float,
    seconds: float,
    warmup_seconds: float,
    live_arenas: int,
) -> list[Measure]:
    """`rate` commands/s for `seconds`; a measure per kind of process: MiB then, now, growth."""
    sampler = MemorySampler(processes)
    sampler.start()
    deadline = time.monotonic() + seconds + 120
    try:
        answers = steady(
            Driver(port, "soak", live_arenas),
            round(rate * seconds),
            rate,
            pool,
            visibility.expect,
            f"soak: {rate:g} commands/s  ",
            deadline,
        )
        applied = wait_until_applied(
            visibility, answers, processes, "soak: applied         ", deadline
        )
    finally:
        sampler.stop()
    first = next((s for at, s in sampler.samples if at >= warmup_seconds), sampler.samples[0][1])
    last = sampler.samples[-1][1]
    measures = []
    for label in sorted(first.keys() & last.keys()):
        growth = last[label] / first[label] - 1 if first[label] else 0.0
        measures.append(
            Measure(
                f"Soak: resident memory, {label}",
                {
                    "MiB after warm-up": first[label],
                    "MiB at end": last[label],
                    "growth %": 100 * growth,
                },
                f"{rate:g} commands/s for {seconds:g} s, from {warmup_seconds:g} s on; "
                f"{sum(a.ok for a in answers):,} commands"
                + ("" if applied else ", NOT ALL APPLIED"),
                ok=applied and growth <= MAX_GROWTH,
            )
        )
    return measures
