"""What a compiled model calls, and where its time goes.

A model compiled for a CPU runs ``main`` as one host program that calls the
kernels itself (:mod:`lcnet_tvm.passes.host_program`); its twin
``main_traced`` reports each kernel call before making it. A model the Relax
VM runs call by call (GPU targets) is watched through the VM's call
instrument, which sees kernels (compiled TensorIR), builtins (allocation,
shape checks, tuples, branch conditions) and Relax functions (branch
functions ``gate{i}_branch`` / ``_channels{b}`` / ``_skipped``).
:func:`count_calls` says how often each kernel runs on real inputs (the
tuning budget follows it); :func:`profile_kernels` says where an inference's
time goes (``bench --profile``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from lcnet_tvm.passes.host_program import HOST_PROGRAM, KERNEL_CALLED, TRACED
from lcnet_tvm.runtime.compiled_model import CompiledModel

#: Name fragments of a kernel -> the category its time is filed under (first match wins).
KERNEL_CATEGORIES = (
    ("convolutions", ("conv2d",)),
    ("channel gathers and scatters", ("take", "scatter", "strided_slice", "argsort", "where", "broadcast_to")),
    ("gate networks and decisions", ("mean", "matmul", "clip", "greater", "less", "max", "sum")),
)
OTHER_KERNELS = "other kernels (residual adds, ReLUs, ...)"
#: Everything an inference spends outside kernels: the host program or the VM's interpreter, builtins (memory
#: allocation, shape checks, tuples, branch conditions), Relax function calls, the call from Python.
OUTSIDE_KERNELS = "outside kernels: dispatch (host program or VM), allocation, branches"
#: VM calls that are not kernels, by kind (their counts are reported; their time is OUTSIDE_KERNELS).
_CALL_KINDS = (("memory allocation", ("vm.builtin.alloc",)), ("other VM builtins", ("vm.",)))
_RELAX_FUNCTION_CALLS = "Relax function calls (branch and bucket functions)"
_HOST_PROGRAM_CALLS = "host program calls"


class _Runner:
    """A fresh VM for ``compiled`` (this machine) and the batches as device tensors."""

    def __init__(self, compiled: CompiledModel, batches: Sequence[np.ndarray]):
        compiled.target.check_runnable(compiled.metadata.target)
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

    def record(self, keep_arguments: bool) -> _Recorder:
        """One inference per batch, every call recorded: through ``main_traced`` where the model has one."""
        recorder = _Recorder(keep_arguments)
        self.vm.set_instrument(recorder)
        try:
            traced = self.vm["main" + TRACED]
        except (AttributeError, RuntimeError):
            self.run(len(self.inputs))
            return recorder
        tvm_ffi.register_global_func(KERNEL_CALLED, recorder.kernel_called, override=True)
        for batch in self.inputs:
            traced(batch)
        return recorder


def count_calls(compiled: CompiledModel, batches: Sequence[np.ndarray]) -> dict[str, float]:
    """Mean calls per inference of each kernel and VM symbol, over one inference per batch."""
    recorder = _Runner(compiled, batches).record(keep_arguments=False)
    return {symbol: count / len(batches) for symbol, count in recorder.calls.items()}


class _Recorder:
    """Records how often each symbol is called, which are kernels, and each kernel's first arguments.

    Called by the VM before and after each of its calls (``__call__``), and by
    a traced host program before each kernel call (``kernel_called``).
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
            self._called(symbol, self.kinds[symbol], args)
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

    def kernel_called(self, symbol: str, *args) -> None:
        self.kinds[symbol] = "kernel"
        self._called(symbol, "kernel", args)

    def _called(self, symbol: str, kind: str, args) -> None:
        self.calls[symbol] += 1
        if self.keep_arguments and kind == "kernel" and symbol not in self.arguments:
            # Copies: memory is reused, so the originals change after the call.
            self.arguments[symbol] = [_copy(arg) for arg in args]


def _kind(symbol: str, func) -> str:
    if symbol.startswith("vm."):
        return next(kind for kind, fragments in _CALL_KINDS if any(symbol.startswith(f) for f in fragments))
    if symbol.startswith(HOST_PROGRAM):
        return _HOST_PROGRAM_CALLS
    # Relax functions are closures of the VM; kernels are functions of the compiled library.
    return "kernel" if type(func).__name__ == "Function" else _RELAX_FUNCTION_CALLS


def _copy(argument):
    return tvm.runtime.tensor(argument.numpy(), argument.device) if isinstance(argument, tvm.runtime.Tensor) else argument


def _kernel_library(executable: tvm.runtime.Module, symbol: str) -> tvm.runtime.Module:
    """The module among the executable's imports that holds kernel ``symbol``."""
    # A compiled executable keeps its kernels in ``mod``; a loaded artifact is the library module itself.
    pending = [getattr(executable, "mod", executable)]
    while pending:
        module = pending.pop()
        if module.implements_function(symbol):
            return module
        pending.extend(module.imports)
    raise LookupError(f"kernel {symbol!r} is not in the executable's library")


def profile_kernels(compiled: CompiledModel, batches: Sequence[np.ndarray], rounds: int) -> dict:
    """Where ``compiled`` spends an inference's time: each kernel timed alone, the rest outside kernels.

    ``plain_ms`` is an inference without any instrument (the mean over
    ``rounds`` inferences cycling through ``batches``). One recorded inference
    per batch (through ``main_traced`` where the model has one) counts the
    calls and records each kernel's arguments; each kernel is then timed alone on them, in C++
    (``time_evaluator``: no Python in the loop), and counts its mean calls per
    inference times that. What the kernels do not account for is time outside
    kernels: the host program or the VM's interpreter loop, builtins,
    allocation, branches, Relax function calls and the call from Python. So every category is measured, not
    estimated, kernel categories cannot be negative, and all categories add up
    to the plain time; a kernel alone runs with warm caches and a warm thread
    pool, so anything it costs more inside an inference counts as outside.
    """
    runner = _Runner(compiled, batches)
    runner.run(len(batches))  # warm-up
    plain_ms = runner.run(rounds)
    recorder = runner.record(keep_arguments=True)
    device = compiled.target.device()
    kernels = []
    for symbol, arguments in recorder.arguments.items():
        timer = _kernel_library(compiled.executable, symbol).time_evaluator(symbol, device, number=20, repeat=5)
        seconds = float(np.median(timer(*arguments).results))
        calls = recorder.calls[symbol] / len(batches)
        kernels.append({"name": symbol, "ms": seconds * 1e3 * calls, "calls": calls, "us_per_call": seconds * 1e6})
    kernels.sort(key=lambda kernel: kernel["ms"], reverse=True)
    categories: dict[str, dict] = defaultdict(lambda: {"ms": 0.0, "calls": 0.0})
    for kernel in kernels:
        category = categories[_category(kernel["name"])]
        category["ms"] += kernel["ms"]
        category["calls"] += kernel["calls"]
    kernel_ms = sum(kernel["ms"] for kernel in kernels)
    other_calls: dict[str, float] = defaultdict(float)
    for symbol, kind in recorder.kinds.items():
        if kind != "kernel":
            other_calls[kind] += recorder.calls[symbol] / len(batches)
    categories = dict(sorted(categories.items(), key=lambda item: item[1]["ms"], reverse=True))
    categories[OUTSIDE_KERNELS] = {"ms": plain_ms - kernel_ms, "calls": sum(other_calls.values())}
    return {
        "rounds": rounds,
        "plain_ms": plain_ms,
        "kernel_ms": kernel_ms,
        "outside_kernels_ms": plain_ms - kernel_ms,
        "outside_kernels_fraction": (plain_ms - kernel_ms) / plain_ms,
        "vm_calls": sum(recorder.calls.values()) / len(batches),
        "calls_outside_kernels": dict(other_calls),
        "categories": categories,
        "kernels": kernels,
    }


def _category(symbol: str) -> str:
    for category, fragments in KERNEL_CATEGORIES:
        if any(fragment in symbol for fragment in fragments):
            return category
    return OTHER_KERNELS
