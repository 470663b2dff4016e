"""RemoveUnusedTuples: structure (Before/Expected), no-op, and numbers."""

import numpy as np
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from lcnet_tvm.passes.remove_unused_tuples import RemoveUnusedTuples


@I.ir_module
class Before:
    @R.function
    def main(x: R.Tensor((2,), "float32"), y: R.Tensor((2,), "float32")):
        R.func_attr({"relax.force_pure": True})
        outputs = (x, y)  # read only by an unused tuple
        nested = (outputs, x)  # read by nothing
        returned = (y, x)
        return returned


@I.ir_module
class Expected:
    @R.function
    def main(x: R.Tensor((2,), "float32"), y: R.Tensor((2,), "float32")):
        R.func_attr({"relax.force_pure": True})
        returned = (y, x)
        return returned


def test_tuples_nothing_reads_go_and_read_ones_stay():
    tvm.ir.assert_structural_equal(RemoveUnusedTuples()(Before), Expected)


def test_a_module_whose_tuples_are_all_read_is_unchanged():
    assert RemoveUnusedTuples()(Expected).same_as(Expected)


def test_the_module_computes_the_same_without_its_unused_tuples():
    x, y = np.float32([1, 2]), np.float32([3, 4])
    for mod in (Before, RemoveUnusedTuples()(Before)):
        first, second = relax.VirtualMachine(relax.build(mod, "llvm"), tvm.cpu())["main"](
            tvm.runtime.tensor(x), tvm.runtime.tensor(y)
        )
        np.testing.assert_array_equal(first.numpy(), y)
        np.testing.assert_array_equal(second.numpy(), x)
