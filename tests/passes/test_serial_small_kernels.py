"""SerialSmallKernels: structure (Before/Expected), no-op, and numbers."""

import numpy as np
import tvm
from tvm.script import ir as I
from tvm.script import tirx as T

from lcnet_tvm.passes.serial_small_kernels import SerialSmallKernels, kernel_work


@I.ir_module
class Before:
    @T.prim_func(private=True, s_tir=True)
    def small(a: T.Buffer((16, 64), "float32"), b: T.Buffer((16, 64), "float32")):
        for i in T.parallel(16):
            for j in T.vectorized(64):
                with T.sblock("add"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    b[vi, vj] = a[vi, vj] + T.float32(1.0)

    @T.prim_func(private=True, s_tir=True)
    def large(a: T.Buffer((256, 1024), "float32"), b: T.Buffer((256, 1024), "float32")):
        for i in T.parallel(256):
            for j in T.vectorized(1024):
                with T.sblock("add"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    b[vi, vj] = a[vi, vj] + T.float32(1.0)


@I.ir_module
class Expected:
    @T.prim_func(private=True, s_tir=True)
    def small(a: T.Buffer((16, 64), "float32"), b: T.Buffer((16, 64), "float32")):
        for i in range(16):
            for j in T.vectorized(64):
                with T.sblock("add"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    b[vi, vj] = a[vi, vj] + T.float32(1.0)

    @T.prim_func(private=True, s_tir=True)
    def large(a: T.Buffer((256, 1024), "float32"), b: T.Buffer((256, 1024), "float32")):
        for i in T.parallel(256):
            for j in T.vectorized(1024):
                with T.sblock("add"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    b[vi, vj] = a[vi, vj] + T.float32(1.0)


def test_small_kernels_lose_their_parallel_loops_large_ones_keep_them():
    assert kernel_work(Before["small"]) == 16 * 64 < 8192 < kernel_work(Before["large"])
    tvm.ir.assert_structural_equal(SerialSmallKernels()(Before), Expected)


def test_a_module_without_small_parallel_kernels_is_unchanged():
    unchanged = SerialSmallKernels(max_work=100)(Before)
    assert unchanged.same_as(Before)


def test_serial_kernels_compute_the_same():
    a = np.random.default_rng(0).standard_normal((16, 64)).astype("float32")
    results = []
    for mod in (Before, SerialSmallKernels()(Before)):
        library = tvm.compile(tvm.IRModule({"small": mod["small"].with_attr("global_symbol", "small")}), "llvm")
        out = tvm.runtime.empty((16, 64), "float32")
        library["small"](tvm.runtime.tensor(a), out)
        results.append(out.numpy())
    np.testing.assert_array_equal(results[0], a + 1)
    np.testing.assert_array_equal(results[1], results[0])
