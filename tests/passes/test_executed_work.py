"""ExposeExecutedWork: structure (Before/Expected)."""

import tvm
from lcnet_tvm.passes.executed_work import ExposeExecutedWork
from tvm.script import ir as I
from tvm.script import relax as R


@I.ir_module
class Imported:
    @R.function
    def main(x: R.Tensor((1, 4, 8, 8), "float32"), gate_w: R.Tensor((4, 3), "float32")):
        with R.dataflow():
            score = R.clip(R.matmul(R.mean(x, axis=[2, 3]), gate_w), 0, 1)
            layer_score = R.strided_slice(score, axes=[1], begin=[0], end=[1])
            logits = R.mean(x, axis=[1, 2, 3])
            gv = (logits, layer_score, score)
            R.output(gv)
        return gv


@I.ir_module
class WithWorkFlags:
    @R.function
    def main(x: R.Tensor((1, 4, 8, 8), "float32"), gate_w: R.Tensor((4, 3), "float32")):
        R.func_attr({"lcnet_num_gates": 2})
        pooled = R.mean(x, axis=[2, 3])
        gate_logits = R.matmul(pooled, gate_w)
        score = R.clip(gate_logits, 0, 1)
        layer_score = R.strided_slice(score, axes=[1], begin=[0], end=[1])
        logits = R.mean(x, axis=[1, 2, 3])
        return (logits, layer_score, score, R.const([1.0], "float32"), R.const([1.0, 1.0, 1.0], "float32"))


def test_every_gate_gets_a_work_flag_that_says_everything_ran():
    tvm.ir.assert_structural_equal(ExposeExecutedWork()(Imported), WithWorkFlags)


def test_a_module_with_work_flags_is_unchanged():
    again = ExposeExecutedWork()(WithWorkFlags)
    tvm.ir.assert_structural_equal(again, WithWorkFlags)
