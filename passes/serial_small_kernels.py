"""Small kernels run on one thread: starting the CPU thread pool costs more than they compute."""

from __future__ import annotations

import math

import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir.analysis import estimate_tir_flops

from .rewrite_functions import rewrite_kernels

#: Work (FLOPs, or elements of the largest buffer, whichever is more) below which a kernel runs serial.
#: A parallel region costs a few microseconds to start and join; a gated network calls hundreds of
#: kernels that compute a few thousand elements each (gate decisions, gathers, residual adds).
DEFAULT_MAX_WORK = 8192


def kernel_work(func: tirx.PrimFunc) -> float:
    """What a kernel computes: its FLOPs, or the elements of its largest buffer for data movement."""
    largest = max(
        (math.prod(int(extent) for extent in param.ty.shape) for param in func.params if isinstance(param.ty, tirx.BufferType)),
        default=0,
    )
    return max(float(estimate_tir_flops(tvm.IRModule({"main": func}))), float(largest))


def _serial(loop: tirx.For) -> tirx.For:
    if loop.kind != tirx.ForKind.PARALLEL:
        return loop
    return tirx.For(loop.loop_var, loop.min, loop.extent, tirx.ForKind.SERIAL, loop.body, loop.thread_binding, loop.annotations)


@tvm.transform.module_pass(opt_level=0, name="SerialSmallKernels")
class SerialSmallKernels:
    """Turn the parallel loops of kernels whose work is below ``max_work`` into serial loops.

    Expects: scheduled PrimFuncs (after the schedules phase; CPU kernels carry
    ``parallel`` loops, GPU kernels thread bindings, which are left alone).
    Produces: the same module, small kernels without parallel loops. Their
    results do not change (a parallel loop's iterations are independent);
    larger kernels keep their tuned schedules untouched.
    """

    def __init__(self, max_work: float = DEFAULT_MAX_WORK):
        self.max_work = max_work

    def transform_module(self, mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_kernels(mod, self._rewrite)

    def _rewrite(self, func: tirx.PrimFunc) -> tirx.PrimFunc:
        if kernel_work(func) >= self.max_work:
            return func
        return tvm_ffi.structural_map(func, [(tirx.For, _serial)])
