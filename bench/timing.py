"""Small timing helpers: run a function N times and report milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    name: str
    runs: int
    p50_ms: float
    p95_ms: float
    max_ms: float


def time_it(name: str, action: Callable[[], object], *, runs: int = 30, warmup: int = 3) -> Timing:
    for _ in range(warmup):
        action()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return summarize(name, samples)


def summarize(name: str, samples_ms: list[float]) -> Timing:
    ordered = sorted(samples_ms)
    return Timing(
        name=name,
        runs=len(ordered),
        p50_ms=round(statistics.median(ordered), 2),
        p95_ms=round(percentile(ordered, 95), 2),
        max_ms=round(ordered[-1], 2),
    )


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]
