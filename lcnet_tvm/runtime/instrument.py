"""What a compiled model calls, and where its time goes.

A model compiled as a host program (:mod:`lcnet_tvm.passes.host_program`)
has a twin ``main_timed`` that counts and times each kernel's calls inside
the inference, on the clock ``time.perf_counter`` reads. A model the Relax
VM runs call by call is watched through the VM's call
instrument, which sees kernels (compiled TensorIR), builtins (allocation,
shape checks, tuples, branch conditions) and Relax functions (branch
functions ``gate{i}_branch`` / ``_channels{b}`` / ``_skipped``).
:func:`observe_kernels` says how often each kernel runs on real inputs and how
long it takes there (the tuning budget follows it); :func:`profile_kernels` says where an inference's
time goes (``bench --profile``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.passes.host_program import HOST_PROGRAM, TIMED
from lcnet_tvm.runtime.compiled_model import CompiledModel

#: Name fragments of a kernel -> the category its time is filed under (first match wins).
KERNEL_CATEGORIES = (
    ("convolutions", ("conv2d",)),
    # A lowered channel gate decides in gate<K>_decision (passes/gate_kernels.py); its buckets' convolutions
    # gather what they read themselves (fused_gate<K>_channels<B>_conv2d...), a gather read by anything else
    # is a kernel of its own, gate<K>_channels<B>_gather<I>.
    ("channel gathers and scatters", ("_gather", "take", "scatter", "strided_slice", "argsort", "where", "broadcast_to")),
    ("gate networks and decisions", ("_decision", "mean", "matmul", "clip", "greater", "less", "max", "sum")),
)
OTHER_KERNELS = "other kernels (residual adds, ReLUs, ...)"
#: Everything an inference spends outside kernels: the host program or the VM's interpreter, builtins (memory
#: allocation, shape checks, tuples, branch conditions), Relax function calls, the call from Python.
OUTSIDE_KERNELS = "outside kernels: dispatch (host program or VM), allocation, branches"
#: VM calls that are not kernels, by kind (their counts are reported; their time is OUTSIDE_KERNELS).
_CALL_KINDS = (("memory allocation", ("vm.builtin.alloc",)), ("other VM builtins", ("vm.",)))
_RELAX_FUNCTION_CALLS = "Relax function calls (branch and bucket functions)"
_HOST_PROGRAM_CALLS = "host program calls"
#: Turns plain and timed inferences take in a profile.
_TURNS = 5
#: observe_kernels times passes over its batches for this long, at most this many.
OBSERVE_SECONDS, OBSERVE_PASSES = 2.0, 9


class _Runner:
    """A fresh VM for ``compiled`` (this machine) and the batches as device tensors."""

    def __init__(self, compiled: CompiledModel, batches: Sequence[np.ndarray]):
        compiled.target.check_runnable(compiled.metadata.target)
        # The executable, not the metadata, says: an artifact from before the metadata said it may have one.
        if not compiled.metadata.timed_kernels and _library_with(compiled.executable, HOST_PROGRAM) is not None:
            raise LcnetError(
                f"{compiled.metadata.model} runs main as a host program built without its timed twin, so its "
                "kernel calls cannot be counted or timed: compile it with CompileOptions(timed=True), or with "
                "host_program=False to count and time them through the Relax VM"
            )
        device = compiled.target.device()
        self.vm = relax.VirtualMachine(compiled.executable, device)
        self.main = self.vm["main"]
        #: The kernels ``main_timed`` counts and times, in the order of its clock (none: no host program).
        self.timed_kernels = compiled.metadata.timed_kernels
        self.timed = self.vm["main" + TIMED] if self.timed_kernels else None
        self.inputs = [tvm.runtime.tensor(batch, device) for batch in batches]

    def run(self, rounds: int) -> float:
        """Milliseconds per inference over ``rounds`` inferences cycling through the batches."""
        started = time.perf_counter()
        for index in range(rounds):
            self.main(self.inputs[index % len(self.inputs)])
        return (time.perf_counter() - started) * 1e3 / rounds

    def run_timed(self, rounds: int) -> tuple[float, np.ndarray]:
        """Through ``main_timed``: milliseconds per inference, and per kernel (rows in ``timed_kernels``'
        order) its calls and milliseconds per inference, all on one clock."""
        total_ns, clock = 0, np.zeros(2 * len(self.timed_kernels), np.int64)
        for index in range(rounds):
            started = time.perf_counter_ns()
            _, kernels = self.timed(self.inputs[index % len(self.inputs)])
            total_ns += time.perf_counter_ns() - started
            clock += kernels.numpy()[: len(clock)]
        per_kernel = clock.reshape(-1, 2) / rounds
        per_kernel[:, 1] /= 1e6
        return total_ns / 1e6 / rounds, per_kernel

    def record(self, keep_arguments: bool) -> _Recorder:
        """One inference per batch, every VM call recorded."""
        recorder = _Recorder(keep_arguments)
        self.vm.set_instrument(recorder)
        self.run(len(self.inputs))
        self.vm.set_instrument(None)
        return recorder


@dataclass(frozen=True)
class KernelUse:
    """How a kernel ran in :func:`observe_kernels`: calls per inference, and their milliseconds per inference
    timed in place (``None`` through the Relax VM, which only counts)."""

    calls: float
    ms: float | None


def observe_kernels(compiled: CompiledModel, batches: Sequence[np.ndarray]) -> dict[str, KernelUse]:
    """Each kernel's (and, through the VM, each VM symbol's) use per inference, one inference per batch.

    A host program's twin times the kernels in place, in passes over the
    batches until :data:`OBSERVE_SECONDS` have gone by (at most
    :data:`OBSERVE_PASSES`); each kernel's time is its median over the passes:
    from three passes on, that leaves out the first (code paged in, the thread
    pool started) and a pass a busy machine slowed. A model whose pass takes
    longer than that is timed in one pass.
    """
    runner = _Runner(compiled, batches)
    if runner.timed is None:
        recorder = runner.record(keep_arguments=False)
        return {symbol: KernelUse(count / len(batches), None) for symbol, count in recorder.calls.items()}
    passes, started = [], time.perf_counter()
    while not passes or (len(passes) < OBSERVE_PASSES and time.perf_counter() - started < OBSERVE_SECONDS):
        passes.append(runner.run_timed(len(batches))[1])
    per_kernel = np.median(passes, axis=0)
    return {name: KernelUse(calls, ms) for name, (calls, ms) in zip(runner.timed_kernels, per_kernel.tolist())}


class _Recorder:
    """Records how often each symbol is called, which are kernels, and each kernel's first arguments.

    Called by the VM before and after each of its calls.
    """

    def __init__(self, keep_arguments: bool):
        self.keep_arguments = keep_arguments
        self.calls: dict[str, int] = defaultdict(int)
        self.kinds: dict[str, str] = {}
        self.arguments: dict[str, list] = {}

    def __call__(self, func, symbol, before_run, _ret, *args):
        if before_run:
            if symbol not in self.kinds:
                self.kinds[symbol] = _kind(symbol, func)
            self.calls[symbol] += 1
            if self.keep_arguments and self.kinds[symbol] == "kernel" and symbol not in self.arguments:
                # Copies: memory is reused, so the originals change after the call.
                self.arguments[symbol] = [_copy(arg) for arg in args]
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual


def _kind(symbol: str, func) -> str:
    if symbol.startswith("vm."):
        return next(kind for kind, fragments in _CALL_KINDS if any(symbol.startswith(f) for f in fragments))
    if symbol.startswith(HOST_PROGRAM):
        return _HOST_PROGRAM_CALLS
    # Relax functions are closures of the VM; kernels are functions of the compiled library.
    return "kernel" if type(func).__name__ == "Function" else _RELAX_FUNCTION_CALLS


def _copy(argument):
    return tvm.runtime.tensor(argument.numpy(), argument.device) if isinstance(argument, tvm.runtime.Tensor) else argument


def _library_with(executable: tvm.runtime.Module, symbol: str) -> tvm.runtime.Module | None:
    """The module among the executable's imports that holds function ``symbol`` (None: none does)."""
    # A compiled executable keeps its kernels in ``mod``; a loaded artifact is the library module itself.
    pending = [getattr(executable, "mod", executable)]
    while pending:
        module = pending.pop()
        if module.implements_function(symbol):
            return module
        pending.extend(module.imports)
    return None


def profile_kernels(compiled: CompiledModel, batches: Sequence[np.ndarray], rounds: int) -> dict:
    """Where ``compiled`` spends an inference's time, by kernel category and outside kernels.

    A host program is timed in place: ``rounds`` inferences through its twin
    ``main_timed``, each kernel call between two reads of the clock that also
    times the whole inference from Python. The kernels' intervals lie inside
    the inference's, so outside kernels (the host program's own work, the VM's
    call and its output tuple, the call from Python) can never come out
    negative, and the categories add up to that inference's time; ``plain_ms``
    (the same inferences without clock reads) says what timing cost. Through
    the VM, each kernel is timed alone on its recorded arguments
    (``time_evaluator``, in C++) instead, which leaves cold caches and thread
    wake-ups outside kernels and can come out below zero on a noisy machine.
    VM calls are counted through the VM's instrument, one inference per batch.
    """
    runner = _Runner(compiled, batches)
    runner.run(len(batches))  # warm-up
    recorder = runner.record(keep_arguments=runner.timed is None)
    if runner.timed is not None:
        method = "each kernel call timed in place"
        plain_ms, inference_ms, kernels = _kernels_in_place(runner, rounds)
    else:
        plain_ms = runner.run(rounds)
        inference_ms, method = plain_ms, "each kernel timed alone on its recorded arguments"
        kernels = _kernels_alone(compiled, recorder, len(batches))
    kernels.sort(key=lambda kernel: kernel["ms"], reverse=True)
    categories: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "calls": 0.0})
    for kernel in kernels:
        kernel["category"] = _category(kernel["name"])
        category = categories[kernel["category"]]
        category["ms"] += kernel["ms"]
        category["calls"] += kernel["calls"]
    kernel_ms = float(sum(kernel["ms"] for kernel in kernels))
    other_calls: dict[str, float] = defaultdict(float)
    for symbol, kind in recorder.kinds.items():
        if kind != "kernel":
            other_calls[kind] += recorder.calls[symbol] / len(batches)
    categories = dict(sorted(categories.items(), key=lambda item: item[1]["ms"], reverse=True))
    categories[OUTSIDE_KERNELS] = {"ms": inference_ms - kernel_ms, "calls": sum(other_calls.values())}
    return {
        "method": method,
        "rounds": rounds,
        "inference_ms": inference_ms,
        "plain_ms": plain_ms,
        "kernel_ms": kernel_ms,
        "kernel_calls": float(sum(kernel["calls"] for kernel in kernels)),
        "outside_kernels_ms": inference_ms - kernel_ms,
        "outside_kernels_fraction": (inference_ms - kernel_ms) / inference_ms,
        "vm_calls": sum(recorder.calls.values()) / len(batches),
        "calls_outside_kernels": dict(other_calls),
        "categories": categories,
        "kernels": kernels,
    }


def _kernels_in_place(runner: _Runner, rounds: int) -> tuple[float, float, list[dict]]:
    """Plain and timed milliseconds per inference, and each kernel's share of the timed inference."""
    runner.run_timed(len(runner.inputs))  # warm-up
    # Plain and timed inferences take turns, so that what timing costs is not a machine's change of pace.
    plain_ms = inference_ms = 0.0
    per_kernel = np.zeros((len(runner.timed_kernels), 2))
    turns = min(_TURNS, rounds)
    for turn in range(turns):
        count = rounds // turns + (turn < rounds % turns)
        timed_ms, turn_kernels = runner.run_timed(count)
        plain_ms += runner.run(count) * count / rounds
        inference_ms += timed_ms * count / rounds
        per_kernel += turn_kernels * count / rounds
    kernels = [
        {"name": name, "ms": float(ms), "calls": float(calls), "us_per_call": float(ms * 1e3 / calls)}
        for name, (calls, ms) in zip(runner.timed_kernels, per_kernel) if calls
    ]
    return plain_ms, inference_ms, kernels


def _kernels_alone(compiled: CompiledModel, recorder: _Recorder, inferences: int) -> list[dict]:
    """Each kernel the VM called, timed alone on its recorded arguments, times its calls per inference."""
    device = compiled.target.device()
    kernels = []
    for symbol, arguments in recorder.arguments.items():
        timer = _library_with(compiled.executable, symbol).time_evaluator(symbol, device, number=20, repeat=5)
        seconds = float(np.median(timer(*arguments).results))
        calls = recorder.calls[symbol] / inferences
        kernels.append({"name": symbol, "ms": seconds * 1e3 * calls, "calls": calls, "us_per_call": seconds * 1e6})
    return kernels


def _category(symbol: str) -> str:
    for category, fragments in KERNEL_CATEGORIES:
        if any(fragment in symbol for fragment in fragments):
            return category
    return OTHER_KERNELS
