"""DropProvenParamChecks: structure (Before/Expected), no-op, and numbers."""

import numpy as np
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from lcnet_tvm.passes.drop_proven_param_checks import DropProvenParamChecks


@I.ir_module
class Source:
    @R.function(private=True)
    def exact(y: R.Tensor((1, 4), "float32")) -> R.Tensor((1, 4), "float32"):
        R.func_attr({"relax.force_pure": True})
        return y

    @R.function(private=True)
    def loose(y: R.Tensor(ndim=2, dtype="float32")) -> R.Tensor(ndim=2, dtype="float32"):
        R.func_attr({"relax.force_pure": True})
        return y

    @R.function
    def main(x: R.Tensor((1, 4), "float32")):
        R.func_attr({"relax.force_pure": True})
        cls = Source
        a = cls.exact(x)
        b = cls.loose(x)
        return (a, b)


#: What the pass expects: every function checks its parameters on entry.
Before = relax.transform.VMShapeLower()(Source)


@I.ir_module
class Expected:
    @R.function(private=True)
    def exact(y: R.Tensor((1, 4), dtype="float32")) -> R.Tensor((1, 4), dtype="float32"):
        R.func_attr({"relax.force_pure": True})
        return y

    # Called with a (1, 4) tensor, but the parameter's type is not exact: its check stays.
    @R.function(private=True)
    def loose(y: R.Tensor(dtype="float32", ndim=2)) -> R.Tensor(dtype="float32", ndim=2):
        R.func_attr({"relax.force_pure": True})
        shape_heap: R.Any = R.null_value()
        R.call_packed("vm.builtin.check_tensor_info", y, 2, R.dtype("float32"), R.str("ErrorContext(fn=loose, loc=param[0], param=y, annotation=R.Tensor(dtype=\"float32\", ndim=2)) "), ty_args=(R.Tuple,))
        return y

    # The entry function checks what its caller passes.
    @R.function
    def main(x: R.Tensor((1, 4), dtype="float32")) -> R.Tuple(R.Tensor((1, 4), dtype="float32"), R.Tensor(dtype="float32", ndim=2)):
        R.func_attr({"relax.force_pure": True})
        cls = Expected
        shape_heap: R.Any = R.null_value()
        R.call_packed("vm.builtin.check_tensor_info", x, 2, R.dtype("float32"), R.str("ErrorContext(fn=main, loc=param[0], param=x, annotation=R.Tensor((1, 4), dtype=\"float32\")) "), ty_args=(R.Tuple,))
        R.call_packed("vm.builtin.match_shape", x, shape_heap, 2, 0, 1, 0, 4, R.str("ErrorContext(fn=main, loc=param[0], param=x, annotation=R.Tensor((1, 4), dtype=\"float32\")) "), ty_args=(R.Tuple,))
        a: R.Tensor((1, 4), dtype="float32") = cls.exact(x)
        b: R.Tensor(dtype="float32", ndim=2) = cls.loose(x)
        return (a, b)


def test_checks_of_exactly_typed_arguments_go_the_entrys_and_the_others_stay():
    tvm.ir.assert_structural_equal(DropProvenParamChecks()(Before), Expected)


def test_a_module_whose_checks_are_all_needed_is_unchanged():
    assert DropProvenParamChecks()(Expected).same_as(Expected)


def test_the_checked_and_unchecked_modules_compute_the_same():
    x = np.arange(4, dtype="float32").reshape(1, 4)
    for mod in (Before, DropProvenParamChecks()(Before)):
        executable = relax.build(mod, "llvm", relax_pipeline=relax.transform.AttachGlobalSymbol())
        a, b = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x))
        np.testing.assert_array_equal(a.numpy(), x)
        np.testing.assert_array_equal(b.numpy(), x)
