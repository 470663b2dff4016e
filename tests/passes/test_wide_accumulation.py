"""legalize_mean and legalize_matmul: the kernels they make (Before/Expected), and their numbers against float64."""

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from lcnet_tvm.passes.wide_accumulation import WIDE_ACCUMULATION

WIDE = relax.transform.LegalizeOps(WIDE_ACCUMULATION)


def test_a_mean_becomes_one_kernel_that_sums_in_float64():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 4, 8, 8), "float32")):
            with R.dataflow():
                y = R.mean(x, axis=[2, 3], keepdims=False)
                R.output(y)
            return y

    @I.ir_module
    class Expected:
        @T.prim_func(private=True, s_tir=True)
        def mean(x: T.Buffer((T.int64(1), T.int64(4), T.int64(8), T.int64(8)), "float32"), mean: T.Buffer((T.int64(1), T.int64(4)), "float32")):
            T.func_attr({"tirx.noalias": True})
            total = T.sblock_alloc_buffer((T.int64(1), T.int64(4)), "float64")
            for i0, i1, k2, k3 in T.grid(T.int64(1), T.int64(4), T.int64(8), T.int64(8)):
                with T.sblock("total"):
                    v_i0, v_i1, v_k2, v_k3 = T.axis.remap("SSRR", [i0, i1, k2, k3])
                    T.reads(x[v_i0, v_i1, v_k2, v_k3])
                    T.writes(total[v_i0, v_i1])
                    with T.init():
                        total[v_i0, v_i1] = T.float64(0.0)
                    total[v_i0, v_i1] = total[v_i0, v_i1] + T.Cast("float64", x[v_i0, v_i1, v_k2, v_k3])
            for i0, i1 in T.grid(T.int64(1), T.int64(4)):
                with T.sblock("mean"):
                    v_i0, v_i1 = T.axis.remap("SS", [i0, i1])
                    T.reads(total[v_i0, v_i1])
                    T.writes(mean[v_i0, v_i1])
                    mean[v_i0, v_i1] = T.Cast("float32", total[v_i0, v_i1] / T.float64(64.0))

        @R.function
        def main(x: R.Tensor((1, 4, 8, 8), dtype="float32")) -> R.Tensor((1, 4), dtype="float32"):
            cls = Expected
            with R.dataflow():
                y = R.call_tir(cls.mean, (x,), out_ty=R.Tensor((1, 4), dtype="float32"))
                R.output(y)
            return y

    tvm.ir.assert_structural_equal(WIDE(Before), Expected)


def test_other_reductions_are_legalized_as_by_default():
    @I.ir_module
    class Plain:
        @R.function
        def main(x: R.Tensor((1, 4, 8, 8), "float32")):
            with R.dataflow():
                y = R.sum(x, axis=[2, 3])
                # A batched matmul: only 2-D ones (linear layers) are widened.
                z = R.matmul(x, x)
                R.output(y, z)
            return (y, z)

    tvm.ir.assert_structural_equal(WIDE(Plain), relax.transform.LegalizeOps()(Plain))


def _outputs(mod: tvm.IRModule, *inputs: np.ndarray) -> list[np.ndarray]:
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    outputs = vm["main"](*(tvm.runtime.tensor(array) for array in inputs))
    return [out.numpy() for out in (outputs if isinstance(outputs, tvm.ir.Array) else [outputs])]


@pytest.mark.parametrize("offset", [0.0, 1.0, 1000.0])
def test_every_reduction_shape_equals_the_float64_mean_rounded_to_float32(offset):
    @I.ir_module
    class Means:
        @R.function
        def main(x: R.Tensor((2, 3, 32, 32), "float32")):
            with R.dataflow():
                pooled = R.mean(x, axis=[2, 3], keepdims=False)
                kept = R.mean(x, axis=[-3], keepdims=True)
                everything = R.mean(x)
                R.output(pooled, kept, everything)
            return (pooled, kept, everything)

    # An offset makes each term's low bits what a float32 running sum loses.
    x = (offset + np.random.default_rng(0).uniform(size=(2, 3, 32, 32))).astype("float32")
    exact = x.astype(np.float64)
    pooled, kept, everything = _outputs(WIDE(Means), x)
    np.testing.assert_array_equal(pooled, exact.mean(axis=(2, 3)).astype("float32"))
    np.testing.assert_array_equal(kept, exact.mean(axis=1, keepdims=True).astype("float32"))
    np.testing.assert_array_equal(everything, np.float32(exact.mean()))


def test_the_default_legalization_loses_what_the_wide_sum_keeps():
    """Why the pipeline replaces it: a float32 running sum over a gate's 32x32 positions rounds off many ulps."""

    @I.ir_module
    class Pool:
        @R.function
        def main(x: R.Tensor((1, 16, 32, 32), "float32")):
            with R.dataflow():
                y = R.mean(x, axis=[2, 3])
                R.output(y)
            return y

    x = (1.0 + np.random.default_rng(1).uniform(size=(1, 16, 32, 32))).astype("float32")
    exact = x.astype(np.float64).mean(axis=(2, 3)).astype("float32")
    (default,) = _outputs(relax.transform.LegalizeOps()(Pool), x)
    (wide,) = _outputs(WIDE(Pool), x)
    ulp = np.spacing(exact)
    assert np.abs(default - exact).max() > 4 * ulp.max()
    np.testing.assert_array_equal(wide, exact)


def test_a_linear_layers_matmul_becomes_one_kernel_that_sums_in_float64():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 4), "float32"), w: R.Tensor((4, 3), "float32")):
            with R.dataflow():
                y = R.matmul(x, w, out_dtype="float32")
                R.output(y)
            return y

    @I.ir_module
    class Expected:
        @T.prim_func(private=True, s_tir=True)
        def matmul(x: T.Buffer((T.int64(1), T.int64(4)), "float32"), w: T.Buffer((T.int64(4), T.int64(3)), "float32"), matmul: T.Buffer((T.int64(1), T.int64(3)), "float32")):
            T.func_attr({"tirx.noalias": True})
            total = T.sblock_alloc_buffer((T.int64(1), T.int64(3)), "float64")
            for i, j, k in T.grid(T.int64(1), T.int64(3), T.int64(4)):
                with T.sblock("total"):
                    v_i, v_j, v_k = T.axis.remap("SSR", [i, j, k])
                    T.reads(x[v_i, v_k], w[v_k, v_j])
                    T.writes(total[v_i, v_j])
                    with T.init():
                        total[v_i, v_j] = T.float64(0.0)
                    total[v_i, v_j] = total[v_i, v_j] + T.Cast("float64", x[v_i, v_k]) * T.Cast("float64", w[v_k, v_j])
            for i, j in T.grid(T.int64(1), T.int64(3)):
                with T.sblock("matmul"):
                    v_i, v_j = T.axis.remap("SS", [i, j])
                    T.reads(total[v_i, v_j])
                    T.writes(matmul[v_i, v_j])
                    matmul[v_i, v_j] = T.Cast("float32", total[v_i, v_j])

        @R.function
        def main(x: R.Tensor((1, 4), dtype="float32"), w: R.Tensor((4, 3), dtype="float32")) -> R.Tensor((1, 3), dtype="float32"):
            cls = Expected
            with R.dataflow():
                y = R.call_tir(cls.matmul, (x, w), out_ty=R.Tensor((1, 3), dtype="float32"))
                R.output(y)
            return y

    tvm.ir.assert_structural_equal(WIDE(Before), Expected)


def test_a_linear_layer_with_cancelling_products_rounds_once():
    """Large products that cancel (a gate whose folded norm scaled its weights up): the float64 sum rounds only at the end."""

    @I.ir_module
    class Linear:
        @R.function
        def main(x: R.Tensor((3, 64), "float32"), w: R.Tensor((64, 16), "float32")):
            with R.dataflow():
                y = R.matmul(x, w)
                R.output(y)
            return y

    rng = np.random.default_rng(2)
    x = rng.uniform(size=(3, 64)).astype("float32")
    w = (1000 * rng.normal(size=(64, 16))).astype("float32")
    w[-1] = -(x[:, :-1].astype(np.float64) @ w[:-1].astype(np.float64)).mean(axis=0) / x[:, -1].mean()  # logits near 0
    exact = (x.astype(np.float64) @ w.astype(np.float64)).astype("float32")
    (result,) = _outputs(WIDE(Linear), x, w)
    np.testing.assert_array_equal(result, exact)
