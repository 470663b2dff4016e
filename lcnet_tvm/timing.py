"""Side-by-side latency measurement: systems run interleaved so machine drift hits all alike."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def measure_interleaved(
    systems: dict[str, Callable[[], object]],
    iterations: int,
    warmup: int = 3,
    after_round: Callable[[], object] | None = None,
) -> dict[str, dict]:
    """Call each system ``warmup`` times, then ``iterations`` rounds of one call each, in turn.

    ``after_round`` (untimed) runs after each round, e.g. to move on to the next input.
    Returns per system its median, p90 and p99 latency in milliseconds.
    """
    for run in systems.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(iterations):
        for name, run in systems.items():
            started = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - started) * 1e3)
        if after_round is not None:
            after_round()
    return {
        name: {
            "median_ms": float(np.median(values)),
            "p90_ms": float(np.percentile(values, 90)),
            "p99_ms": float(np.percentile(values, 99)),
            "iterations": iterations,
        }
        for name, values in samples.items()
    }
