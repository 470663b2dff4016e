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
    """``warmup`` untimed rounds, then ``iterations`` timed rounds; a round calls each system once, in turn.

    ``after_round`` (untimed) runs after every round, warm-up included, e.g. to
    move on to the next input. Returns per system its median, p90 and p99
    latency in milliseconds.
    """
    samples: dict[str, list[float]] = {name: [] for name in systems}
    for round_index in range(warmup + iterations):
        for name, run in systems.items():
            started = time.perf_counter()
            run()
            if round_index >= warmup:
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
