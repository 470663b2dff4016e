"""Side-by-side latency measurement: systems take turns so machine drift hits all alike."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

#: A system's turn in a timed round: untimed calls first, then timed ones. Calling systems in turn
#: one call each is unfair on a small machine: PyTorch's OpenMP threads and TVM's pool both keep
#: working or spinning after a call, and the next system's first calls pay for it (the gated
#: ResNet-20 measured 0.85 ms alone, 2.5 to 8.6 ms called right after PyTorch on 2 cores). A pool
#: that went to sleep between turns also needs several calls to get up to speed: ONNX Runtime's
#: dense ResNet-20 read 0.37 or 0.6 ms per turn, at random, after 2 settling calls, and a steady
#: 0.35-0.41 ms after 8. Short turns (2 timed calls) make more rounds, so machine drift is spread
#: over more of them.
SETTLE_CALLS = 8
TIMED_CALLS = 2


#: A system's turn: ``(untimed calls, timed calls) -> the timed calls' latencies in ms``.
Turn = Callable[[int, int], list[float]]


def take_turn(call: Callable[[], object], settle: int, timed: int) -> list[float]:
    """``settle`` untimed calls of ``call``, then ``timed`` timed ones; their latencies in ms."""
    for _ in range(settle):
        call()
    latencies = []
    for _ in range(timed):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1e3)
    return latencies


def in_process(call: Callable[[], object]) -> Turn:
    """The turn of a system called in this process."""
    return lambda settle, timed: take_turn(call, settle, timed)


def measure_interleaved(
    systems: dict[str, Turn],
    iterations: int,
    warmup: int = 3,
    after_round: Callable[[], object] | None = None,
) -> dict[str, dict]:
    """``warmup`` untimed rounds calling each system once, then timed rounds until each system has
    ``iterations`` timed calls; in a timed round each system takes a turn (:data:`SETTLE_CALLS`
    untimed calls, then up to :data:`TIMED_CALLS` timed ones).

    ``after_round`` (untimed) runs after every round, warm-up included, e.g. to
    move on to the next input. Returns per system its median, p90 and p99
    latency in milliseconds over all timed calls, and the spread over rounds:
    the quartiles of the rounds' medians.
    """
    rounds: dict[str, list[list[float]]] = {name: [] for name in systems}
    for _ in range(warmup):
        for turn in systems.values():
            turn(1, 0)
        if after_round is not None:
            after_round()
    for round_index in range(timed_rounds(iterations)):
        timed = min(TIMED_CALLS, iterations - round_index * TIMED_CALLS)
        for name, turn in systems.items():
            rounds[name].append(turn(SETTLE_CALLS, timed))
        if after_round is not None:
            after_round()
    return {name: _statistics(turns, iterations) for name, turns in rounds.items()}


def _statistics(turns: list[list[float]], iterations: int) -> dict:
    values = np.concatenate(turns)
    round_q25, round_q75 = np.percentile([np.median(turn) for turn in turns], [25, 75])
    return {
        "median_ms": float(np.median(values)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "iterations": iterations,
        "rounds": len(turns),
        "round_median_q25_ms": float(round_q25),
        "round_median_q75_ms": float(round_q75),
    }


def timed_rounds(iterations: int) -> int:
    """How many timed rounds :func:`measure_interleaved` runs for ``iterations`` timed calls per system."""
    return math.ceil(iterations / TIMED_CALLS)
