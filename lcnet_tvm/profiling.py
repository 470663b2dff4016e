"""What a compiled model calls, and for how long: the Relax VM's call instrument.

The VM calls the instrument before and after every call it makes: kernels,
builtins (allocation, shape checks, branch conditions) and outlined functions
(our passes name branch functions ``gate{i}_branch`` / ``_channels`` / ``_skipped``).
:func:`count_calls` says how often each kernel runs on real inputs (the tuning
budget follows it); :func:`profile_calls` says where the time goes (``bench --profile``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import tvm
from tvm import relax

from .runtime import CompiledModel

#: Name fragments -> the category a VM call's time is filed under (first match wins).
PROFILE_CATEGORIES = (
    ("convolutions", ("conv2d",)),
    ("channel gathers and scatters", ("take", "scatter", "strided_slice", "argsort", "where", "broadcast_to")),
    ("gate networks and decisions", ("mean", "matmul", "clip", "greater", "less", "max", "sum")),
    ("VM: memory allocation", ("vm.builtin.alloc",)),
    ("VM: branch functions and other builtins", ("_branch", "_channels", "_skipped", "vm.")),
)
OTHER_CATEGORY = "other kernels (residual adds, ReLUs, ...)"
OUTSIDE_CALLS = "VM: main's interpreter loop and the call from Python"


class _CallTimer:
    """A VM instrument: per called symbol, how many calls and their time exclusive of nested calls."""

    def __init__(self):
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self._open: list[list[float]] = []  # per open call: [start, time spent in the calls it made]

    def __call__(self, _func, symbol, before_run, _ret, *_args):
        now = time.perf_counter()
        if before_run:
            self._open.append([now, 0.0])
        else:
            started, nested = self._open.pop()
            self.seconds[symbol] += now - started - nested
            self.calls[symbol] += 1
            if self._open:
                self._open[-1][1] += now - started
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual


class _Runner:
    """A fresh VM for ``compiled`` (this machine) and the batches as device tensors."""

    def __init__(self, compiled: CompiledModel, batches: Sequence[np.ndarray]):
        compiled.target.check_runnable(compiled.metadata["target"])
        device = compiled.target.device()
        self.vm = relax.VirtualMachine(compiled.executable, device)
        self.main = self.vm["main"]
        self.inputs = [tvm.runtime.tensor(batch, device) for batch in batches]

    def run(self, rounds: int) -> float:
        """Milliseconds per inference over ``rounds`` inferences cycling through the batches."""
        started = time.perf_counter()
        for index in range(rounds):
            self.main(self.inputs[index % len(self.inputs)])
        return (time.perf_counter() - started) * 1e3 / rounds

    def instrumented(self, rounds: int) -> tuple[_CallTimer, float]:
        timer = _CallTimer()
        self.vm.set_instrument(timer)
        return timer, self.run(rounds)


def count_calls(compiled: CompiledModel, batches: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean calls per inference of each VM symbol, over one inference per batch."""
    timer, _ = _Runner(compiled, batches).instrumented(len(batches))
    return {symbol: count / len(batches) for symbol, count in timer.calls.items()}


def profile_calls(compiled: CompiledModel, batches: Sequence[np.ndarray], rounds: int) -> dict:
    """Where ``compiled`` spends its time, per VM call and per category.

    Each call is timed exclusive of the calls it makes. The instrument is a
    Python callback before and after every call, so an instrumented inference
    takes longer than a plain one. That difference, spread evenly over the
    calls, is the instrument's cost per call; each symbol's estimate is its
    measured time less that cost for each of its calls; a symbol with many
    near-free calls (VM builtins) can come out below zero, a sign that its
    calls cost less than the average. Time in the VM's interpreter loop falls
    to the function being interpreted (a branch function), or, for ``main``
    itself and the call from Python, to :data:`OUTSIDE_CALLS`; so the
    categories add up to the plain inference time.
    """
    runner = _Runner(compiled, batches)
    runner.run(len(batches))  # warm-up
    plain_ms = runner.run(rounds)
    timer, instrumented_ms = runner.instrumented(rounds)
    calls_per_round = sum(timer.calls.values()) / rounds
    overhead_ms = (instrumented_ms - plain_ms) / calls_per_round
    estimated = {
        symbol: (seconds * 1e3 - overhead_ms * timer.calls[symbol]) / rounds for symbol, seconds in timer.seconds.items()
    }
    categories: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "calls": 0.0})
    for symbol, ms in estimated.items():
        category = categories[_category(symbol)]
        category["ms"] += ms
        category["calls"] += timer.calls[symbol] / rounds
    categories[OUTSIDE_CALLS]["ms"] = plain_ms - sum(estimated.values())
    return {
        "rounds": rounds,
        "plain_ms": plain_ms,
        "instrumented_ms": instrumented_ms,
        "vm_calls": calls_per_round,
        "instrument_overhead_us_per_call": overhead_ms * 1e3,
        "categories": dict(sorted(categories.items(), key=lambda item: item[1]["ms"], reverse=True)),
        "kernels": [
            {"name": symbol, "ms": ms, "calls": timer.calls[symbol] / rounds}
            for symbol, ms in sorted(estimated.items(), key=lambda item: item[1], reverse=True)
        ],
    }


def _category(symbol: str) -> str:
    for category, fragments in PROFILE_CATEGORIES:
        if any(fragment in symbol for fragment in fragments):
            return category
    return OTHER_CATEGORY
