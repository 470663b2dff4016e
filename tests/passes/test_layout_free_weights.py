"""Layout-free weights: marking (Before/Expected, no-op), unmarking unscheduled kernels, repacking at compile time."""

import numpy as np
import tvm
from tvm import relax
from tvm.s_tir import Schedule
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from lcnet_tvm.passes.layout_free_weights import (
    LAYOUT_FREE_ATTR,
    REPACKING_BLOCK_ATTR,
    MarkLayoutFreeWeights,
    RepackConstantWeights,
    UnmarkUnscheduledKernels,
)

WEIGHT = np.arange(8, dtype="float32").reshape(2, 4)


@I.ir_module
class Before:
    @T.prim_func(private=True, s_tir=True)
    def scale(x: T.Buffer((2, 4), "float32"), w: T.Buffer((2, 4), "float32"), out: T.Buffer((2, 4), "float32")):
        for i, j in T.grid(2, 4):
            with T.sblock("scale"):
                vi, vj = T.axis.remap("SS", [i, j])
                out[vi, vj] = x[vi, vj] * w[vi, vj]

    @T.prim_func(private=True, s_tir=True)
    def add(a: T.Buffer((2, 4), "float32"), b: T.Buffer((2, 4), "float32"), out: T.Buffer((2, 4), "float32")):
        for i, j in T.grid(2, 4):
            with T.sblock("add"):
                vi, vj = T.axis.remap("SS", [i, j])
                out[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((2, 4), "float32")):
        cls = Before
        with R.dataflow():
            scaled = R.call_tir(cls.scale, (x, R.const(WEIGHT)), out_ty=R.Tensor((2, 4), "float32"))
            # `add` reads a constant at a different position in each call: neither is a weight at every call
            shifted = R.call_tir(cls.add, (scaled, R.const(WEIGHT)), out_ty=R.Tensor((2, 4), "float32"))
            result = R.call_tir(cls.add, (R.const(WEIGHT), shifted), out_ty=R.Tensor((2, 4), "float32"))
            R.output(result)
        return result


@I.ir_module
class Expected:
    @T.prim_func(private=True, s_tir=True)
    def scale(x: T.Buffer((2, 4), "float32"), w: T.Buffer((2, 4), "float32"), out: T.Buffer((2, 4), "float32")):
        T.func_attr({"layout_free_buffers": [1]})
        for i, j in T.grid(2, 4):
            with T.sblock("scale"):
                vi, vj = T.axis.remap("SS", [i, j])
                out[vi, vj] = x[vi, vj] * w[vi, vj]

    @T.prim_func(private=True, s_tir=True)
    def add(a: T.Buffer((2, 4), "float32"), b: T.Buffer((2, 4), "float32"), out: T.Buffer((2, 4), "float32")):
        for i, j in T.grid(2, 4):
            with T.sblock("add"):
                vi, vj = T.axis.remap("SS", [i, j])
                out[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((2, 4), "float32")):
        cls = Expected
        with R.dataflow():
            scaled = R.call_tir(cls.scale, (x, R.const(WEIGHT)), out_ty=R.Tensor((2, 4), "float32"))
            shifted = R.call_tir(cls.add, (scaled, R.const(WEIGHT)), out_ty=R.Tensor((2, 4), "float32"))
            result = R.call_tir(cls.add, (R.const(WEIGHT), shifted), out_ty=R.Tensor((2, 4), "float32"))
            R.output(result)
        return result


def test_parameters_every_caller_passes_a_constant_are_marked():
    tvm.ir.assert_structural_equal(MarkLayoutFreeWeights()(Before), Expected)


@I.ir_module
class NoWeights:
    @T.prim_func(private=True, s_tir=True)
    def add(a: T.Buffer((2, 4), "float32"), b: T.Buffer((2, 4), "float32"), out: T.Buffer((2, 4), "float32")):
        for i, j in T.grid(2, 4):
            with T.sblock("add"):
                vi, vj = T.axis.remap("SS", [i, j])
                out[vi, vj] = a[vi, vj] + b[vi, vj]

    @R.function
    def main(x: R.Tensor((2, 4), "float32")):
        cls = NoWeights
        with R.dataflow():
            result = R.call_tir(cls.add, (x, x), out_ty=R.Tensor((2, 4), "float32"))
            R.output(result)
        return result


def test_a_module_whose_kernels_read_no_constant_is_unchanged():
    assert MarkLayoutFreeWeights()(NoWeights).same_as(NoWeights)


def test_unscheduled_kernels_lose_the_mark_and_scheduled_ones_keep_it():
    marked = MarkLayoutFreeWeights()(Before)
    scale = marked.get_global_var("scale")
    scheduled = marked.clone()
    scheduled[scale] = marked[scale].with_attr("tirx.is_scheduled", True)
    assert LAYOUT_FREE_ATTR in UnmarkUnscheduledKernels()(scheduled)["scale"].attrs
    tvm.ir.assert_structural_equal(UnmarkUnscheduledKernels()(marked), Before)


def _scheduled_with_repacked_weight(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with ``scale`` scheduled as MetaSchedule's RewriteLayout leaves a kernel that chose a weight layout:
    it begins by copying its weight into a transposed buffer, in a block marked as repacking."""
    schedule = Schedule(mod["scale"])
    repack = schedule.cache_read(schedule.get_sblock("scale"), 1, "global")
    schedule.transform_layout(repack, ("write", 0), lambda i, j: (j, i))
    schedule.annotate(repack, REPACKING_BLOCK_ATTR, 1)
    scheduled = mod.clone()
    scheduled[mod.get_global_var("scale")] = schedule.mod["main"].with_attr("tirx.is_scheduled", True)
    return scheduled


def _run(mod: tvm.IRModule, x: np.ndarray) -> np.ndarray:
    return relax.VirtualMachine(relax.build(mod, "llvm"), tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()


def test_a_weight_repacked_at_compile_time_gives_the_same_results():
    scheduled = _scheduled_with_repacked_weight(MarkLayoutFreeWeights()(Before))
    repacked = RepackConstantWeights()(scheduled)
    kernels = {gv.name_hint for gv, func in repacked.functions_items() if isinstance(func, tvm.tirx.PrimFunc)}
    assert kernels == {"scale_prepacked", "add"}  # the repacking ran here; the original kernel is gone
    constants = []
    relax.analysis.post_order_visit(repacked["main"], lambda e: constants.append(e) if isinstance(e, tvm.ir.expr.GenericConst) else None)
    np.testing.assert_array_equal(constants[0].value.numpy(), WEIGHT.T)  # the artifact stores the repacked weight
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    np.testing.assert_allclose(_run(repacked, x), _run(Before, x), rtol=0, atol=0)


def test_kernels_that_repack_nothing_are_left_alone():
    marked = MarkLayoutFreeWeights()(Before)
    assert RepackConstantWeights()(marked).same_as(marked)
