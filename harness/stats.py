"""Percentiles of latencies, as the benchmarks' tables and the chaos matrix report them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import TypedDict


class Percentiles(TypedDict):
    """Milliseconds; None for no values at all."""

    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


def percentiles(values_ms: Sequence[float]) -> Percentiles:
    """p50/p95/p99/max (inclusive method: small samples stay within the data)."""
    if len(values_ms) < 2:
        only = float(values_ms[0]) if values_ms else None
        return {"p50": only, "p95": only, "p99": only, "max": only}
    cuts = statistics.quantiles(values_ms, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(values_ms)}
