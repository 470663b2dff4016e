"""FuseChannelGathers and InlineChannelGathers: structure (Before/Expected), what stays, and numbers (the kernels
phase vs the mask form)."""

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from lcnet_tvm.passes.executed_work import ExposeExecutedWork
from lcnet_tvm.passes.fuse_channel_gathers import FuseChannelGathers, InlineChannelGathers
from lcnet_tvm.passes.gate_kernels import channel_gather
from lcnet_tvm.passes.lower_channel_gates import LowerChannelGates

from .test_lower_channel_gates import ChannelGatedPair
from .test_lower_channel_gates import _run as run_pair


# The kernels stand in with their signatures: the pass reads only the gathers' attribute.
@I.ir_module
class Before:
    @T.prim_func(private=True)
    def gate0_channels2_gather0(order: T.Buffer((4,), "int64"), w1: T.Buffer((4, 3, 3, 3), "float32"), rows: T.Buffer((2, 3, 3, 3), "float32")):
        T.func_attr({"lcnet.channel_gather_axis": 0})
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels2_gather1(order: T.Buffer((4,), "int64"), bias: T.Buffer((1, 4, 1, 1), "float32"), kept: T.Buffer((1, 2, 1, 1), "float32")):
        T.func_attr({"lcnet.channel_gather_axis": 1})
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels2_gather2(order: T.Buffer((4,), "int64"), w2: T.Buffer((5, 4, 3, 3), "float32"), columns: T.Buffer((5, 2, 3, 3), "float32")):
        T.func_attr({"lcnet.channel_gather_axis": 1})
        T.evaluate(0)

    @T.prim_func(private=True)
    def conv2d(x: T.Buffer((1, 3, 8, 8), "float32"), w: T.Buffer((2, 3, 3, 3), "float32"), y: T.Buffer((1, 2, 8, 8), "float32")):
        T.evaluate(0)

    @T.prim_func(private=True)
    def add(y: T.Buffer((1, 2, 8, 8), "float32"), b: T.Buffer((1, 2, 1, 1), "float32"), z: T.Buffer((1, 2, 8, 8), "float32")):
        T.evaluate(0)

    @T.prim_func(private=True)
    def conv2d1(h: T.Buffer((1, 2, 8, 8), "float32"), w: T.Buffer((5, 2, 3, 3), "float32"), out: T.Buffer((1, 5, 8, 8), "float32")):
        T.evaluate(0)

    @R.function(private=True)
    def fused_conv2d_add(
        x: R.Tensor((1, 3, 8, 8), "float32"), w: R.Tensor((2, 3, 3, 3), "float32"), b: R.Tensor((1, 2, 1, 1), "float32")
    ) -> R.Tensor((1, 2, 8, 8), "float32"):
        R.func_attr({"Primitive": True})
        cls = Before
        with R.dataflow():
            y = R.call_tir(cls.conv2d, (x, w), out_ty=R.Tensor((1, 2, 8, 8), "float32"))
            z = R.call_tir(cls.add, (y, b), out_ty=R.Tensor((1, 2, 8, 8), "float32"))
            R.output(z)
        return z

    @R.function(private=True)
    def gate0_channels2(
        x: R.Tensor((1, 3, 8, 8), "float32"),
        w1: R.Tensor((4, 3, 3, 3), "float32"),
        bias: R.Tensor((1, 4, 1, 1), "float32"),
        w2: R.Tensor((5, 4, 3, 3), "float32"),
        order: R.Tensor((4,), "int64"),
    ) -> R.Tensor((1, 5, 8, 8), "float32"):
        cls = Before
        with R.dataflow():
            rows = R.call_tir(cls.gate0_channels2_gather0, (order, w1), out_ty=R.Tensor((2, 3, 3, 3), "float32"))
            kept = R.call_tir(cls.gate0_channels2_gather1, (order, bias), out_ty=R.Tensor((1, 2, 1, 1), "float32"))
            columns = R.call_tir(cls.gate0_channels2_gather2, (order, w2), out_ty=R.Tensor((5, 2, 3, 3), "float32"))
            h = cls.fused_conv2d_add(x, rows, kept)
            out = R.call_tir(cls.conv2d1, (h, columns), out_ty=R.Tensor((1, 5, 8, 8), "float32"))
            R.output(out)
        return out


@I.ir_module
class Expected:
    @T.prim_func(private=True)
    def gate0_channels2_gather0(order: T.Buffer((4,), "int64"), w1: T.Buffer((4, 3, 3, 3), "float32"), rows: T.Buffer((2, 3, 3, 3), "float32")):
        T.func_attr({"lcnet.channel_gather_axis": 0})
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels2_gather1(order: T.Buffer((4,), "int64"), bias: T.Buffer((1, 4, 1, 1), "float32"), kept: T.Buffer((1, 2, 1, 1), "float32")):
        T.func_attr({"lcnet.channel_gather_axis": 1})
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels2_gather2(order: T.Buffer((4,), "int64"), w2: T.Buffer((5, 4, 3, 3), "float32"), columns: T.Buffer((5, 2, 3, 3), "float32")):
        T.func_attr({"lcnet.channel_gather_axis": 1})
        T.evaluate(0)

    @T.prim_func(private=True)
    def conv2d(x: T.Buffer((1, 3, 8, 8), "float32"), w: T.Buffer((2, 3, 3, 3), "float32"), y: T.Buffer((1, 2, 8, 8), "float32")):
        T.evaluate(0)

    @T.prim_func(private=True)
    def add(y: T.Buffer((1, 2, 8, 8), "float32"), b: T.Buffer((1, 2, 1, 1), "float32"), z: T.Buffer((1, 2, 8, 8), "float32")):
        T.evaluate(0)

    @T.prim_func(private=True)
    def conv2d1(h: T.Buffer((1, 2, 8, 8), "float32"), w: T.Buffer((5, 2, 3, 3), "float32"), out: T.Buffer((1, 5, 8, 8), "float32")):
        T.evaluate(0)

    # The grouped convolution now gathers its weight rows and bias itself; the lone convolution, its columns.
    @R.function(private=True)
    def fused_gate0_channels2_conv2d_add(
        order: R.Tensor((4,), "int64"),
        w1: R.Tensor((4, 3, 3, 3), "float32"),
        bias: R.Tensor((1, 4, 1, 1), "float32"),
        x: R.Tensor((1, 3, 8, 8), "float32"),
    ) -> R.Tensor((1, 2, 8, 8), "float32"):
        R.func_attr({"Primitive": True})
        cls = Expected
        with R.dataflow():
            rows = R.call_tir(cls.gate0_channels2_gather0, (order, w1), out_ty=R.Tensor((2, 3, 3, 3), "float32"))
            kept = R.call_tir(cls.gate0_channels2_gather1, (order, bias), out_ty=R.Tensor((1, 2, 1, 1), "float32"))
            y = R.call_tir(cls.conv2d, (x, rows), out_ty=R.Tensor((1, 2, 8, 8), "float32"))
            z = R.call_tir(cls.add, (y, kept), out_ty=R.Tensor((1, 2, 8, 8), "float32"))
            R.output(z)
        return z

    @R.function(private=True)
    def fused_gate0_channels2_conv2d1(
        order: R.Tensor((4,), "int64"), w2: R.Tensor((5, 4, 3, 3), "float32"), h: R.Tensor((1, 2, 8, 8), "float32")
    ) -> R.Tensor((1, 5, 8, 8), "float32"):
        R.func_attr({"Primitive": True})
        cls = Expected
        with R.dataflow():
            columns = R.call_tir(cls.gate0_channels2_gather2, (order, w2), out_ty=R.Tensor((5, 2, 3, 3), "float32"))
            out = R.call_tir(cls.conv2d1, (h, columns), out_ty=R.Tensor((1, 5, 8, 8), "float32"))
            R.output(out)
        return out

    @R.function(private=True)
    def gate0_channels2(
        x: R.Tensor((1, 3, 8, 8), "float32"),
        w1: R.Tensor((4, 3, 3, 3), "float32"),
        bias: R.Tensor((1, 4, 1, 1), "float32"),
        w2: R.Tensor((5, 4, 3, 3), "float32"),
        order: R.Tensor((4,), "int64"),
    ) -> R.Tensor((1, 5, 8, 8), "float32"):
        cls = Expected
        with R.dataflow():
            h = cls.fused_gate0_channels2_conv2d_add(order, w1, bias, x)
            out = cls.fused_gate0_channels2_conv2d1(order, w2, h)
            R.output(out)
        return out


def test_each_gather_moves_into_the_kernel_that_reads_it():
    tvm.ir.assert_structural_equal(FuseChannelGathers()(Before), Expected)


def test_a_gather_read_twice_stays_a_kernel_of_its_own():
    @I.ir_module
    class ReadTwice:
        @T.prim_func(private=True)
        def gate0_channels2_gather1(order: T.Buffer((4,), "int64"), bias: T.Buffer((1, 4, 1, 1), "float32"), kept: T.Buffer((1, 2, 1, 1), "float32")):
            T.func_attr({"lcnet.channel_gather_axis": 1})
            T.evaluate(0)

        @T.prim_func(private=True)
        def add(y: T.Buffer((1, 2, 1, 1), "float32"), b: T.Buffer((1, 2, 1, 1), "float32"), z: T.Buffer((1, 2, 1, 1), "float32")):
            T.evaluate(0)

        @R.function(private=True)
        def bucket(bias: R.Tensor((1, 4, 1, 1), "float32"), order: R.Tensor((4,), "int64")) -> R.Tensor((1, 2, 1, 1), "float32"):
            cls = ReadTwice
            with R.dataflow():
                kept = R.call_tir(cls.gate0_channels2_gather1, (order, bias), out_ty=R.Tensor((1, 2, 1, 1), "float32"))
                twice = R.call_tir(cls.add, (kept, kept), out_ty=R.Tensor((1, 2, 1, 1), "float32"))
                R.output(twice)
            return twice

    tvm.ir.assert_structural_equal(FuseChannelGathers()(ReadTwice), ReadTwice)


def test_a_module_without_gathers_is_unchanged():
    exposed = ExposeExecutedWork()(ChannelGatedPair)
    tvm.ir.assert_structural_equal(FuseChannelGathers()(exposed), exposed)


def _kernels(fuse_gathers: bool) -> tvm.transform.Pass:
    """The pipeline's graph and kernels phases for a module of Relax ops, with or without this pass."""
    return tvm.transform.Sequential([
        ExposeExecutedWork(),
        LowerChannelGates(buckets=2),
        relax.transform.ConvertToDataflow(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FuseOps(),
        FuseChannelGathers() if fuse_gathers else tvm.transform.Sequential([]),
        relax.transform.FuseTIR(),
        InlineChannelGathers(),
    ])


def test_the_lowered_pair_keeps_no_gather_kernel_of_its_own():
    fused = _kernels(fuse_gathers=True)(ChannelGatedPair)
    names = [gvar.name_hint for gvar in fused.functions]
    assert not any("_gather" in name for name in names), names
    assert "fused_gate0_channels1_conv2d_add_relu_multiply" in names and "fused_gate0_channels1_conv2d1" in names
    assert 'sblock("gathered' not in fused.script()  # each reads through the order, no copy left


@pytest.mark.parametrize("gate_bias", [-5.0, 0.0, 5.0], ids=["none-kept", "input-dependent", "all-kept"])
def test_convolutions_reading_through_the_order_equal_the_mask_form(gate_bias):
    rng = np.random.default_rng(1)
    mask_form = ExposeExecutedWork()(ChannelGatedPair)
    fused, separate = _kernels(fuse_gathers=True)(ChannelGatedPair), _kernels(fuse_gathers=False)(ChannelGatedPair)
    for _ in range(8):
        x = (rng.normal(size=(2, 3, 8, 8)) + 1.0).astype("float32")
        weights = [rng.normal(size=shape).astype("float32") for shape in [(2, 3, 3, 3), (1, 2, 1, 1), (4, 2, 3, 3)]]
        gate_w = (rng.normal(size=(3, 2)) + gate_bias).astype("float32")
        expected, score, _ = run_pair(mask_form, x, *weights, gate_w)
        got, got_score, computed = run_pair(fused, x, *weights, gate_w)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got_score, score)
        # The same sums in the same order as with the gathers as kernels of their own: bit for bit.
        np.testing.assert_array_equal(got, run_pair(separate, x, *weights, gate_w)[0])
        np.testing.assert_array_equal(computed, run_pair(separate, x, *weights, gate_w)[2])


@I.ir_module
class FusedKernel:
    @T.prim_func(private=True, s_tir=True)
    def fused_gate0_channels2_matvec(
        order: T.Buffer((4,), "int64"), w: T.Buffer((4, 3), "float32"), x: T.Buffer((3,), "float32"), out: T.Buffer((2,), "float32")
    ):
        gathered = T.sblock_alloc_buffer((2, 3))
        for o, c in T.grid(2, 3):
            with T.sblock("gathered"):
                vo, vc = T.axis.remap("SS", [o, c])
                gathered[vo, vc] = w[order[vo], vc]
        for o, c in T.grid(2, 3):
            with T.sblock("product"):
                vo, vc = T.axis.remap("SR", [o, c])
                with T.init():
                    out[vo] = T.float32(0)
                out[vo] = out[vo] + gathered[vo, vc] * x[vc]


@I.ir_module
class ReadingThroughTheOrder:
    @T.prim_func(private=True, s_tir=True)
    def fused_gate0_channels2_matvec(
        order: T.Buffer((4,), "int64"), w: T.Buffer((4, 3), "float32"), x: T.Buffer((3,), "float32"), out: T.Buffer((2,), "float32")
    ):
        for o, c in T.grid(2, 3):
            with T.sblock("product"):
                vo, vc = T.axis.remap("SR", [o, c])
                with T.init():
                    out[vo] = T.float32(0)
                out[vo] = out[vo] + w[order[vo], vc] * x[vc]


def test_a_fused_kernel_reads_through_the_order_where_it_read_a_gathered_copy():
    tvm.ir.assert_structural_equal(InlineChannelGathers()(FusedKernel), ReadingThroughTheOrder)


def test_a_gather_kernel_of_its_own_is_left_as_it_is():
    kernel = channel_gather(4, 2, relax.TensorType((4, 3), "float32"), 0)
    alone = tvm.IRModule({"gate0_channels2_gather0": kernel})
    tvm.ir.assert_structural_equal(InlineChannelGathers()(alone), alone)
