"""legalize_mean: the kernel it makes (Before/Expected), and its numbers against float64."""

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from lcnet_tvm.passes.wide_mean import legalize_mean

WIDE_MEAN = relax.transform.LegalizeOps({"relax.mean": legalize_mean})


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

    tvm.ir.assert_structural_equal(WIDE_MEAN(Before), Expected)


def test_a_module_without_a_mean_is_legalized_as_by_default():
    @I.ir_module
    class Plain:
        @R.function
        def main(x: R.Tensor((1, 4, 8, 8), "float32")):
            with R.dataflow():
                y = R.sum(x, axis=[2, 3])
                R.output(y)
            return y

    tvm.ir.assert_structural_equal(WIDE_MEAN(Plain), relax.transform.LegalizeOps()(Plain))


def _means(mod: tvm.IRModule, x: np.ndarray) -> list[np.ndarray]:
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    outputs = vm["main"](tvm.runtime.tensor(x))
    return [out.numpy() for out in (outputs if isinstance(outputs, tvm.ir.Array) else [outputs])]


@pytest.mark.parametrize("offset", [0.0, 1.0, 1000.0])
def test_every_reduction_shape_is_float64_exact_up_to_its_final_rounding(offset):
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
    pooled, kept, everything = _means(WIDE_MEAN(Means), x)
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
    (default,) = _means(relax.transform.LegalizeOps()(Pool), x)
    (wide,) = _means(WIDE_MEAN(Pool), x)
    ulp = np.spacing(exact)
    assert np.abs(default - exact).max() > 4 * ulp.max()
    np.testing.assert_array_equal(wide, exact)
