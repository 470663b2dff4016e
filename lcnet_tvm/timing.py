"""Side-by-side latency measurement: systems take turns so machine drift hits all alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

#: A system's turn in a timed round: untimed calls first, then timed ones. Calling systems in turn
#: one call each is unfair on a small machine: PyTorch's OpenMP threads and TVM's pool both keep
#: working or spinning after a call, and the next system's first calls pay for it (the gated
#: ResNet-20 measured 0.85 ms alone, 2.5 to 8.6 ms called right after PyTorch on 2 cores). After
#: two settling calls both systems read within 30-40% of their alone figures, alike.
SETTLE_CALLS = 2
TIMED_CALLS = 4


def measure_interleaved(
    systems: dict[str, Callable[[], object]],
    iterations: int,
    warmup: int = 3,
    after_round: Callable[[], object] | None = None,
) -> dict[str, dict]:
    """``warmup`` untimed rounds calling each system once, then timed rounds until each system has
    ``iterations`` timed calls; in a timed round each system takes a turn (:data:`SETTLE_CALLS`
    untimed calls, then up to :data:`TIMED_CALLS` timed ones).

    ``after_round`` (untimed) runs after every round, warm-up included, e.g. to
    move on to the next input. Returns per system its median, p90 and p99
    latency in milliseconds.
    """
    samples: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(warmup):
        for run in systems.values():
            run()
        if after_round is not None:
            after_round()
    for round_index in range(timed_rounds(iterations)):
        timed = min(TIMED_CALLS, iterations - round_index * TIMED_CALLS)
        for name, run in systems.items():
            for _ in range(SETTLE_CALLS):
                run()
            for _ in range(timed):
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


def timed_rounds(iterations: int) -> int:
    """How many timed rounds :func:`measure_interleaved` runs for ``iterations`` timed calls per system."""
    return math.ceil(iterations / TIMED_CALLS)
