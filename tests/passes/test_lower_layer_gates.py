"""LowerLayerGates: structure (Before/Expected) and numbers (compiled vs eager)."""

import pytest
import tvm
from lcnet_tvm.passes.executed_work import ExposeExecutedWork
from lcnet_tvm.passes.gate_kernels import layer_decision
from lcnet_tvm.passes.lower_layer_gates import LowerLayerGates
from tvm.script import ir as I
from tvm.script import relax as R
from tvm.script import tirx as T

from lcnet_tvm.compiler.importer import import_model

from ..architectures import VGGWithChannelGates
from .test_gate_regions import LayerGatedBlock


@I.ir_module
class Expected:
    # Made by gate_kernels.layer_decision (tested numerically there); filled in by ``expected()``.
    @T.prim_func(private=True)
    def gate0_decision(score: T.Buffer((1, 1), "float32"), keep: T.Buffer((), "bool"), largest: T.Buffer((), "float32")):
        T.evaluate(0)

    @R.function(private=True)
    def gate0_branch(
        x: R.Tensor((1, 4, 8, 8), "float32"),
        w1: R.Tensor((4, 4, 3, 3), "float32"),
        w2: R.Tensor((4, 4, 3, 3), "float32"),
        score_4d: R.Tensor((1, 1, 1, 1), "float32"),
    ) -> R.Tuple(R.Tensor((1, 4, 8, 8), "float32"), R.Tensor((1,), "float32")):
        conv1 = R.nn.conv2d(x, w1, padding=[1, 1, 1, 1])
        relu1 = R.nn.relu(conv1)
        conv2 = R.nn.conv2d(relu1, w2, padding=[1, 1, 1, 1])
        gated = R.multiply(conv2, score_4d)
        return (gated, R.const([1.0], "float32"))

    @R.function(private=True)
    def gate0_skipped(
        largest_score: R.Tensor((), "float32"),
    ) -> R.Tuple(R.Tensor((1, 4, 8, 8), "float32"), R.Tensor((1,), "float32")):
        zeros = R.broadcast_to(largest_score, R.shape([1, 4, 8, 8]))
        not_ran = R.broadcast_to(largest_score, R.shape([1]))
        result = (zeros, not_ran)
        return result

    @R.function
    def main(
        x: R.Tensor((1, 4, 8, 8), "float32"),
        w1: R.Tensor((4, 4, 3, 3), "float32"),
        w2: R.Tensor((4, 4, 3, 3), "float32"),
        gate_w: R.Tensor((4, 1), "float32"),
    ):
        R.func_attr({"lcnet_num_gates": 1, "lcnet_lowered_gates": [0]})
        cls = Expected
        pooled = R.mean(x, axis=[2, 3])
        gate_logits = R.matmul(pooled, gate_w)
        score = R.clip(gate_logits, 0, 1)
        score_2d = R.expand_dims(score, axis=[2])
        score_4d = R.expand_dims(score_2d, axis=[3])
        gate0_decision = R.call_tir(
            cls.gate0_decision, (score,), out_ty=[R.Tensor((), "bool"), R.Tensor((), "float32")]
        )
        gate0_keep = gate0_decision[0]
        gate0_max_score = gate0_decision[1]
        if gate0_keep:
            gate0_outcome = cls.gate0_branch(x, w1, w2, score_4d)
        else:
            gate0_outcome = cls.gate0_skipped(gate0_max_score)
        gated = gate0_outcome[0]
        gate0_computed = gate0_outcome[1]
        out = R.add(x, gated)
        return (out, score, gate0_computed)


def expected() -> tvm.IRModule:
    mod = tvm.IRModule(dict(Expected.functions_items()))
    mod.update_func(mod.get_global_var("gate0_decision"), layer_decision(tvm.relax.TensorType((1, 1), "float32")))
    return mod


def test_the_branch_moves_under_an_if_on_the_gate_decision():
    after = LowerLayerGates()(ExposeExecutedWork()(LayerGatedBlock))
    tvm.ir.assert_structural_equal(after, expected())


def test_a_model_without_layer_gates_is_unchanged():
    imported = ExposeExecutedWork()(import_model(VGGWithChannelGates(), (1, 3, 8, 8)).mod)
    tvm.ir.assert_structural_equal(LowerLayerGates()(imported), imported)


def test_lowering_without_work_flags_says_what_to_run_first():
    with pytest.raises(ValueError, match="run ExposeExecutedWork before it"):
        LowerLayerGates()(LayerGatedBlock)
