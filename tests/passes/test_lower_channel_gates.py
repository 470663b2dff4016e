"""LowerChannelGates: structure (Before/Expected), bucket choice, and numbers (compiled vs eager)."""

import numpy as np
import pytest
import torch
import tvm
from lcnet_tvm.passes.executed_work import ExposeExecutedWork
from lcnet_tvm.passes.gate_kernels import channel_decision, channel_gather
from lcnet_tvm.passes.gate_regions import find_gate_regions
from lcnet_tvm.passes.lower_channel_gates import LowerChannelGates
from torch import nn
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.compiler.gate_forms import channel_buckets
from lcnet_tvm.compiler.importer import import_model
from lcnet_tvm.model.resnet import GatedBasicBlock

from ..conftest import randomize
from ..equivalence import check_against_eager
from .test_gate_regions import LayerGatedBlock


@I.ir_module
class ChannelGatedPair:
    @R.function
    def main(
        x: R.Tensor((2, 3, 8, 8), "float32"),
        w1: R.Tensor((2, 3, 3, 3), "float32"),
        bias1: R.Tensor((1, 2, 1, 1), "float32"),
        w2: R.Tensor((4, 2, 3, 3), "float32"),
        gate_w: R.Tensor((3, 2), "float32"),
    ):
        with R.dataflow():
            pooled = R.mean(x, axis=[2, 3])
            gate_logits = R.matmul(pooled, gate_w)
            score = R.clip(gate_logits, 0, 1)
            score_2d = R.expand_dims(score, axis=[2])
            score_4d = R.expand_dims(score_2d, axis=[3])
            conv1 = R.nn.conv2d(x, w1, padding=[1, 1, 1, 1])
            biased = R.add(conv1, bias1)
            relu1 = R.nn.relu(biased)
            gated = R.multiply(relu1, score_4d)
            conv2 = R.nn.conv2d(gated, w2, padding=[1, 1, 1, 1])
            gv = (conv2, score)
            R.output(gv)
        return gv


@I.ir_module
class Expected:
    # The decision and gather kernels are made by gate_kernels (tested numerically in test_gate_kernels):
    # here they stand in with their signatures, and ``expected()`` fills in the kernels the pass makes.
    @T.prim_func(private=True)
    def gate0_decision(
        score: T.Buffer((2, 2), "float32"),
        order: T.Buffer((2,), "int64"),
        computed: T.Buffer((2,), "float32"),
        largest: T.Buffer((), "float32"),
        at_most_0: T.Buffer((), "bool"),
        at_most_1: T.Buffer((), "bool"),
    ):
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels1_gather0(
        order: T.Buffer((2,), "int64"), w1: T.Buffer((2, 3, 3, 3), "float32"), w1_rows: T.Buffer((1, 3, 3, 3), "float32")
    ):
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels1_gather1(
        order: T.Buffer((2,), "int64"), bias1: T.Buffer((1, 2, 1, 1), "float32"), bias1_kept: T.Buffer((1, 1, 1, 1), "float32")
    ):
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels1_gather2(
        order: T.Buffer((2,), "int64"), score_4d: T.Buffer((2, 2, 1, 1), "float32"), score_kept: T.Buffer((2, 1, 1, 1), "float32")
    ):
        T.evaluate(0)

    @T.prim_func(private=True)
    def gate0_channels1_gather3(
        order: T.Buffer((2,), "int64"), w2: T.Buffer((4, 2, 3, 3), "float32"), w2_columns: T.Buffer((4, 1, 3, 3), "float32")
    ):
        T.evaluate(0)

    @R.function(private=True)
    def gate0_channels0(largest_score: R.Tensor((), "float32")) -> R.Tensor((2, 4, 8, 8), "float32"):
        zeros = R.broadcast_to(largest_score, R.shape([2, 4, 8, 8]))
        return zeros

    @R.function(private=True)
    def gate0_channels1(
        x: R.Tensor((2, 3, 8, 8), "float32"),
        w1: R.Tensor((2, 3, 3, 3), "float32"),
        bias1: R.Tensor((1, 2, 1, 1), "float32"),
        score_4d: R.Tensor((2, 2, 1, 1), "float32"),
        w2: R.Tensor((4, 2, 3, 3), "float32"),
        order: R.Tensor((2,), "int64"),
    ) -> R.Tensor((2, 4, 8, 8), "float32"):
        cls = Expected
        with R.dataflow():
            w1_rows = R.call_tir(cls.gate0_channels1_gather0, (order, w1), out_ty=R.Tensor((1, 3, 3, 3), "float32"))
            bias1_kept = R.call_tir(cls.gate0_channels1_gather1, (order, bias1), out_ty=R.Tensor((1, 1, 1, 1), "float32"))
            score_kept = R.call_tir(cls.gate0_channels1_gather2, (order, score_4d), out_ty=R.Tensor((2, 1, 1, 1), "float32"))
            w2_columns = R.call_tir(cls.gate0_channels1_gather3, (order, w2), out_ty=R.Tensor((4, 1, 3, 3), "float32"))
            conv1 = R.nn.conv2d(x, w1_rows, padding=[1, 1, 1, 1])
            biased = R.add(conv1, bias1_kept)
            relu1 = R.nn.relu(biased)
            gated = R.multiply(relu1, score_kept)
            conv2 = R.nn.conv2d(gated, w2_columns, padding=[1, 1, 1, 1])
            R.output(conv2)
        return conv2

    @R.function(private=True)
    def gate0_channels2(
        x: R.Tensor((2, 3, 8, 8), "float32"),
        w1: R.Tensor((2, 3, 3, 3), "float32"),
        bias1: R.Tensor((1, 2, 1, 1), "float32"),
        score_4d: R.Tensor((2, 2, 1, 1), "float32"),
        w2: R.Tensor((4, 2, 3, 3), "float32"),
        order: R.Tensor((2,), "int64"),
    ) -> R.Tensor((2, 4, 8, 8), "float32"):
        with R.dataflow():
            conv1 = R.nn.conv2d(x, w1, padding=[1, 1, 1, 1])
            biased = R.add(conv1, bias1)
            relu1 = R.nn.relu(biased)
            gated = R.multiply(relu1, score_4d)
            conv2 = R.nn.conv2d(gated, w2, padding=[1, 1, 1, 1])
            R.output(conv2)
        return conv2

    @R.function
    def main(
        x: R.Tensor((2, 3, 8, 8), "float32"),
        w1: R.Tensor((2, 3, 3, 3), "float32"),
        bias1: R.Tensor((1, 2, 1, 1), "float32"),
        w2: R.Tensor((4, 2, 3, 3), "float32"),
        gate_w: R.Tensor((3, 2), "float32"),
    ):
        R.func_attr({"lcnet_num_gates": 1, "lcnet_lowered_gates": [0]})
        cls = Expected
        pooled = R.mean(x, axis=[2, 3])
        gate_logits = R.matmul(pooled, gate_w)
        score = R.clip(gate_logits, 0, 1)
        score_2d = R.expand_dims(score, axis=[2])
        score_4d = R.expand_dims(score_2d, axis=[3])
        decision = R.call_tir(
            cls.gate0_decision,
            (score,),
            out_ty=[
                R.Tensor((2,), "int64"),
                R.Tensor((2,), "float32"),
                R.Tensor((), "float32"),
                R.Tensor((), "bool"),
                R.Tensor((), "bool"),
            ],
        )
        order = decision[0]
        computed = decision[1]
        largest_score = decision[2]
        at_most_0 = decision[3]
        at_most_1 = decision[4]
        if at_most_0:
            conv2 = cls.gate0_channels0(largest_score)
        else:
            if at_most_1:
                conv2 = cls.gate0_channels1(x, w1, bias1, score_4d, w2, order)
            else:
                conv2 = cls.gate0_channels2(x, w1, bias1, score_4d, w2, order)
        return (conv2, score, computed)


def expected() -> tvm.IRModule:
    """:class:`Expected` with its kernels made as the pass makes them."""
    mod = tvm.IRModule(dict(Expected.functions_items()))
    score = tvm.relax.TensorType((2, 2), "float32")
    operands = [((2, 3, 3, 3), 0), ((1, 2, 1, 1), 1), ((2, 2, 1, 1), 1), ((4, 2, 3, 3), 1)]
    kernels = {"gate0_decision": channel_decision(score, [1, 2])}
    for position, (shape, axis) in enumerate(operands):
        kernels[f"gate0_channels1_gather{position}"] = channel_gather(2, 1, tvm.relax.TensorType(shape, "float32"), axis)
    for name, kernel in kernels.items():
        mod.update_func(mod.get_global_var(name), kernel)
    return mod


def test_the_gated_pair_becomes_a_dispatch_over_channel_buckets():
    after = LowerChannelGates(buckets=2)(ExposeExecutedWork()(ChannelGatedPair))
    tvm.ir.assert_structural_equal(after, expected())


def test_a_module_without_channel_gates_is_unchanged():
    exposed = ExposeExecutedWork()(LayerGatedBlock)
    tvm.ir.assert_structural_equal(LowerChannelGates(buckets=2)(exposed), exposed)


def test_buckets_are_static_channel_counts_up_to_the_width():
    assert channel_buckets(16, 8) == [2, 4, 6, 8, 10, 12, 14, 16]
    assert channel_buckets(6, 8) == [1, 2, 3, 4, 5, 6]
    assert channel_buckets(10, 4) == [3, 5, 8, 10]
    assert channel_buckets(5, 1) == [5]
    with pytest.raises(ValueError, match="at least 1, got 0"):
        channel_buckets(16, 0)


def _run(mod, x, w1, bias1, w2, gate_w):
    with tvm.target.Target({"kind": "llvm"}):
        executable = tvm.compile(mod, target="llvm")
    vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
    device_args = [tvm.runtime.tensor(a) for a in (x, w1, bias1, w2, gate_w)]
    return [output.numpy() for output in vm["main"](*device_args)]


@pytest.mark.parametrize("gate_bias", [-5.0, 0.0, 5.0], ids=["none-kept", "input-dependent", "all-kept"])
def test_every_bucket_equals_the_mask_form(gate_bias):
    """The dispatch computes exactly what the mask form computes, whichever bucket runs."""
    rng = np.random.default_rng(0)
    mask_form = ExposeExecutedWork()(ChannelGatedPair)
    lowered = LowerChannelGates(buckets=2)(mask_form)
    counts = set()
    for _ in range(8):
        x = (rng.normal(size=(2, 3, 8, 8)) + 1.0).astype("float32")  # channel means near 1
        weights = [rng.normal(size=shape).astype("float32") for shape in [(2, 3, 3, 3), (1, 2, 1, 1), (4, 2, 3, 3)]]
        gate_w = (rng.normal(size=(3, 2)) + gate_bias).astype("float32")
        expected, score, mask_computed = _run(mask_form, x, *weights, gate_w)
        got, got_score, computed = _run(lowered, x, *weights, gate_w)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got_score, score)
        assert mask_computed.tolist() == [1.0, 1.0]  # mask form computes everything
        kept = (score > 0).any(axis=0)  # union over the batch
        assert (computed > 0)[kept].all(), "a kept channel was not computed"
        bucket = 0 if not kept.any() else min(size for size in channel_buckets(2, 2) if size >= kept.sum())
        assert (computed > 0).sum() == bucket
        counts.add(int(kept.sum()))
    if gate_bias == 0.0:
        assert 1 in counts, counts  # the gathered bucket ran
    else:
        assert counts == {-5.0: {0}, 5.0: {2}}[gate_bias]


class WidthOneBlockNet(nn.Module):
    """One basic block of width 1 with both gates: the channel gate's score is (N, 1), like the layer gate's."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
        self.block = GatedBasicBlock(4, 1, 1, layer_gate=True, channel_gate=True)
        self.head = nn.Linear(1, 3)

    def forward(self, x):
        return self.head(self.block(self.stem(x)).mean(dim=(2, 3)))


def test_a_width_one_channel_gate_skips_its_channel():
    shape = (3, 4, 4)
    torch.manual_seed(3)  # a seed where both gates' decisions vary with the input
    model = randomize(WidthOneBlockNet(), torch.randn(64, *shape, generator=torch.Generator().manual_seed(0)), seed=3)
    imported = import_model(model, (1, *shape))
    assert [region.kind for region in find_gate_regions(imported.mod["main"])] == ["layer", "channel"]
    compiled = compile_model(model, shape, CompileOptions(batch_size=1, channel_buckets=1), name="width-one")
    assert [gate.lowered for gate in compiled.metadata.gates] == [True, True]
    x = torch.randn(48, *shape, generator=torch.Generator().manual_seed(1))
    result = check_against_eager(compiled, model, x, varying=False)
    # Some samples skip the channel, and check_against_eager held their work flags to "not computed".
    assert 0 < result.decisions[0].sum() < len(x) and 0 < result.decisions[1].sum() < len(x)
